"""The workflow's config file: reading (UTF-8, no duplicate keys, overlays merged), the JSON
schema with its defaults, and the cross-reference checks `ws2s validate` and the workflow
run before any job.

Kept apart from the typed stage configs (ws2s.config), which every stage imports: a change
here (a check, a message) changes no stage's code version, so it reruns nothing.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
from pathlib import Path

import jsonschema
import yaml

from ws2s.errors import Ws2sError

# package data (workflow/schemas/ links to it), so an installed ws2s validates without a checkout
SCHEMA_PATH = Path(__file__).resolve().parent / "resources" / "config.schema.yaml"


def _with_defaults(validator_class):
    """A validator that fills in each property's `default` before checking it."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
                elif "$ref" in sub and name not in instance:
                    resolved = validator._resolver.lookup(sub["$ref"]).contents
                    if "default" in resolved:
                        instance[name] = copy.deepcopy(resolved["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults}, type_checker=_TYPES)


def _is_integer(checker, instance) -> bool:
    # jsonschema counts 48.0 as an integer; a size, a seed or a count written as a float is a typo
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_number(checker, instance) -> bool:
    # NaN passes every minimum and maximum (each comparison is false): refused with its key
    return isinstance(instance, (int, float)) and not isinstance(instance, bool) and math.isfinite(instance)


_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many({"integer": _is_integer, "number": _is_number})
_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _where(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _float_error(error: jsonschema.ValidationError) -> jsonschema.ValidationError | None:
    """The error, or the first one among a oneOf's alternatives, that refuses a float as an
    integer: what a user who wrote 2.0 for 2 needs to hear, wherever the schema nests it."""
    for err in [error, *error.context]:
        if err.validator == "type" and isinstance(err.instance, float) and math.isfinite(err.instance):
            wanted = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
            if "integer" in wanted and err.instance.is_integer():
                return err
        if err is not error and (found := _float_error(err)) is not None:
            return found
    return None


def _one_line(error: jsonschema.ValidationError) -> str:
    if (as_float := _float_error(error)) is not None:
        return (f"config key '{_where(as_float.absolute_path)}' has value {as_float.instance}; an integer is needed "
                f"here (write {int(as_float.instance)})")
    where = _where(error.absolute_path)
    value = json.dumps(error.instance, default=str)
    if len(value) > 80:
        value = value[:77] + "..."
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"config key '{_where([*error.absolute_path, extra[0]])}' is not allowed; allowed keys here: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"config key '{where}' has value {value}; allowed: {', '.join(map(str, error.validator_value))}"
    if error.validator == "required":
        return f"config key '{where}': {error.message}"
    if error.validator in ("oneOf", "anyOf"):
        return f"config key '{where}' has value {value}; expected {error.schema.get('description', 'one of the documented forms')}"
    return f"config key '{where}' has value {value}; {error.message}"


@functools.cache
def _schema() -> dict:
    # read once a process: `ws2s validate` validates on load and again in `check`
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _registry_names(config: dict) -> dict[str, object]:
    """What each `x-registry` mark of the schema stands for: enum lists, or properties."""
    from ws2s import design
    from ws2s.data.classification import CLASSIFICATION_DATASETS

    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    own_tables = [f"table_{name}" for name, source in data.items() if isinstance(source, dict) and "format" in source]
    return {
        "classification_methods": design.methods_of("classification"),
        "generation_methods": design.methods_of("generation"),
        "ensemble_generation_methods": design.methods_of("generation", "ensemble"),
        "ablations": list(design.VARIANTS),
        "classification_datasets": {name: {"$ref": "#/$defs/source"} for name in CLASSIFICATION_DATASETS},
        "tables": {name: {"$ref": "#/$defs/table_format"} for name in [*design.TABLES, *own_tables]},
    }


def schema_for(config: dict) -> dict:
    """The schema with the registries' names filled in where it marks them (`x-registry`): an
    enum of names, or properties (a built-in data set's source, each table's format); a user's
    data set from a file adds its table, table_NAME."""
    names = _registry_names(config)

    def fill(node):
        if isinstance(node, dict):
            node = {key: fill(value) for key, value in node.items()}
            if (mark := node.pop("x-registry", None)) is not None:
                filled = names[mark]
                if isinstance(filled, dict):
                    node["properties"] = {**filled, **node.get("properties", {})}
                else:
                    node["enum"] = filled
            return node
        return [fill(item) for item in node] if isinstance(node, list) else node

    return fill(_schema())


def validate(config: dict) -> dict:
    """Fill defaults in place, check the schema and cross-references; raise Ws2sError on the first problem."""
    _drop_removed(config)
    _check_finite(config)
    errors = list(_Validator(schema_for(config)).iter_errors(config))
    if errors:
        # The most specific error is the deepest one; ties go to schema order.
        raise Ws2sError(_one_line(max(errors, key=lambda e: len(e.absolute_path))))
    _check_references(config)
    _check_generation(config)
    _check_cdpo(config)
    return config


def _check_finite(value, path: tuple = ()) -> None:
    """Every number of the config is finite: NaN and infinity are refused wherever they stand."""
    if isinstance(value, float) and not math.isfinite(value):
        raise Ws2sError(f"config key '{_where(path)}' has value {value}; numbers must be finite (not NaN or infinity)")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_finite(item, (*path, i))


def _drop_removed(config: dict) -> None:
    """An overlay removes a named ensemble (or its fixed weights) of the base config by setting
    it to null: Snakemake merges config files key by key, so it cannot otherwise drop one."""
    for track in ("classification", "generation"):
        section = config.get(track) or {}
        for key in ("ensembles", "fixed_weights"):
            tables = section.get(key) or {}
            nested = [tables] if track == "generation" else list(tables.values())
            for table in nested:
                if isinstance(table, dict):
                    for name in [n for n, v in table.items() if v is None]:
                        del table[name]


def _check_references(config: dict) -> None:
    from ws2s import design
    from ws2s.data.classification import CLASSIFICATION_DATASETS
    from ws2s.label_models import LABEL_MODELS

    models = config["models"]

    def need_model(name: str, key: str) -> None:
        if name not in models:
            raise Ws2sError(f"config key '{key}' names model '{name}', which is not in models ({', '.join(sorted(models))})")

    for name, spec in models.items():
        if "from" in spec:
            need_model(spec["from"], f"models.{name}.from")
    _check_from_cycles(models)
    for kind, res in config["resources"].items():
        if kind != "strong" and res["nodes"] > 1:
            raise Ws2sError(f"config key 'resources.{kind}.nodes' is {res['nodes']}; only strong training runs "
                            "over several nodes (ws2s launch), the other kinds are one process")
    cls = config["classification"]
    need_model(cls["strong_model"], "classification.strong_model")
    _check_fewgold(cls, "classification", "pairs")
    weak_anywhere = {m for models in cls["weak_models"].values() for m in models}
    for name in cls["weak_training"]["lr_per_model"]:
        if name not in weak_anywhere:
            raise Ws2sError(f"config key 'classification.weak_training.lr_per_model.{name}' names no weak model "
                            f"of classification.weak_models ({', '.join(sorted(weak_anywhere))})")
    for dataset, per_ensemble in cls["fixed_weights"].items():
        for ens in per_ensemble:
            if ens not in cls["ensembles"].get(dataset, {}):
                raise Ws2sError(f"config key 'classification.fixed_weights.{dataset}.{ens}' names no ensemble "
                                f"of classification.ensembles.{dataset}")
    _check_own_data(config["data"])
    classification_data = design.classification_data(config)
    for key in ("weak_models", "ensembles", "fixed_weights"):
        for dataset in cls[key]:
            if dataset not in classification_data:
                raise Ws2sError(f"config key 'classification.{key}.{dataset}' names no classification data set of "
                                f"data ({', '.join(classification_data) or 'none'})")
    for i, dataset in enumerate(cls["datasets"]):
        if dataset not in classification_data:
            raise Ws2sError(
                f"config key 'classification.datasets.{i}' names '{dataset}', which is no classification data set of data "
                f"({', '.join(classification_data) or 'none'}); add data.{dataset}: a built-in data set's source "
                f"({', '.join(CLASSIFICATION_DATASETS)}) or your own file ({{source, format}}, README \"Add your own data set\")")
        weak = cls["weak_models"].get(dataset)
        if not weak:
            raise Ws2sError(f"config key 'classification.weak_models.{dataset}' is missing; classification.datasets lists {dataset}")
        for i, name in enumerate(weak):
            need_model(name, f"classification.weak_models.{dataset}[{i}]")
        for ens, members in cls["ensembles"].get(dataset, {}).items():
            for name in members:
                if name not in weak:
                    raise Ws2sError(
                        f"config key 'classification.ensembles.{dataset}.{ens}' names '{name}', "
                        f"which is not among classification.weak_models.{dataset}"
                    )
            needing = [m for m in cls["methods"] if len(members) < getattr(LABEL_MODELS.get(m), "min_members", 0)]
            if needing:
                raise Ws2sError(
                    f"config key 'classification.ensembles.{dataset}.{ens}' has {len(members)} members; "
                    f"{' and '.join(needing)} (classification.methods) need "
                    f"{max(LABEL_MODELS[m].min_members for m in needing)} or more"
                )
            if cls["weighting"] == "fixed":
                weights = cls["fixed_weights"].get(dataset, {}).get(ens)
                if weights is None or len(weights) != len(members) or not sum(weights) > 0:
                    raise Ws2sError(
                        f"config key 'classification.fixed_weights.{dataset}.{ens}' must give {len(members)} "
                        f"weights with a positive sum (classification.weighting is fixed); got {weights}"
                    )


def _check_own_data(data: dict) -> None:
    """A user's data set from a file: its prompt can be filled with a pair, and only the
    classes format has classes."""
    from ws2s.data.classification import prompt_problem

    for name, source in data.items():
        if "format" not in source:
            continue
        if "prompt" in source and (problem := prompt_problem(source["prompt"])):
            raise Ws2sError(f"config key 'data.{name}.prompt' {problem}")
        if "classes" in source and source["format"] != "classes":
            raise Ws2sError(f"config key 'data.{name}.classes' is for format: classes; data.{name}.format is "
                            f"{source['format']} (its candidates are in the file)")


def _check_from_cycles(models: dict) -> None:
    """`from:` chains end at a model that is not cut from another: a cycle would otherwise reach
    Snakemake as a cyclic DAG (which it reports, then hangs on)."""
    for start in models:
        chain = [start]
        while "from" in models[chain[-1]]:
            parent = models[chain[-1]]["from"]
            if parent in chain:
                cycle = chain[chain.index(parent):] + [parent]
                raise Ws2sError(f"config key 'models.{cycle[0]}.from': the from: chain is a cycle "
                                f"({' -> '.join(cycle)}); one of these models must name a source of its own")
            chain.append(parent)


def _check_fewgold(section: dict, track: str, unit: str) -> None:
    if 0 < section["split_sizes"]["val"] < section["fewgold_val"]:
        raise Ws2sError(f"config key '{track}.fewgold_val' is {section['fewgold_val']}; the few-gold subset is drawn "
                        f"from val, which has {section['split_sizes']['val']} {unit} ({track}.split_sizes.val)")


def _check_generation(config: dict) -> None:
    gen = config.get("generation")
    if "generation" not in config["tracks"]:
        return
    if gen is None:
        raise Ws2sError("config key 'generation' is missing; tracks lists generation")
    for i, name in enumerate(gen["weak_models"]):
        if name not in config["models"]:
            raise Ws2sError(f"config key 'generation.weak_models[{i}]' names model '{name}', which is not in models")
    if gen["strong_model"] not in config["models"]:
        raise Ws2sError(f"config key 'generation.strong_model' names model '{gen['strong_model']}', which is not in models")
    _check_fewgold(gen, "generation", "utterances")
    for ens, members in gen["ensembles"].items():
        for name in members:
            if name not in gen["weak_models"]:
                raise Ws2sError(f"config key 'generation.ensembles.{ens}' names '{name}', "
                                "which is not among generation.weak_models")
        if gen["weighting"] == "fixed" or "weighting" in gen["ablations"]:
            weights = gen["fixed_weights"].get(ens)
            if weights is None or len(weights) != len(members) or not sum(weights) > 0:
                raise Ws2sError(f"config key 'generation.fixed_weights.{ens}' must give {len(members)} weights "
                                f"with a positive sum (fixed weights are used); got {weights}")
    if gen["joint_decoding"]["m"] > gen["weak_beams"] or ("jd_m" in gen["ablations"] and gen["weak_beams"] < 10):
        raise Ws2sError(f"config key 'generation.weak_beams' is {gen['weak_beams']}; Joint Decoding pools up to "
                        f"{10 if 'jd_m' in gen['ablations'] else gen['joint_decoding']['m']} beams per weak model")
    for name, subset in gen["joint_decoding"]["subsets"].items():
        if name in gen["ensembles"]:
            raise Ws2sError(f"config key 'generation.joint_decoding.subsets.{name}' is also an ensemble's name")
        for role in ("generators", "judges"):
            for model in subset[role]:
                if model not in gen["weak_models"]:
                    raise Ws2sError(f"config key 'generation.joint_decoding.subsets.{name}.{role}' names '{model}', "
                                    "which is not among generation.weak_models")
    if gen["ablations"] and not gen["ensembles"]:
        raise Ws2sError("config key 'generation.ablations' needs an ensemble in generation.ensembles")
    slurp = config["data"].get("slurp", {})
    for split in ("train", "test"):
        if split not in slurp:
            raise Ws2sError(f"config key 'data.slurp.{split}' is missing; the generation track reads it")


def _check_cdpo(config: dict) -> None:
    gen = config.get("generation")
    if "generation" not in config["tracks"] or not gen["cdpo"]["enabled"]:
        return
    if gen["cdpo"]["ensemble"] not in gen["ensembles"]:
        raise Ws2sError(f"config key 'generation.cdpo.ensemble' names '{gen['cdpo']['ensemble']}', which is not in "
                        f"generation.ensembles ({', '.join(sorted(gen['ensembles'])) or 'none'}); "
                        "set it, or generation.cdpo.enabled: false")


def data_files(config: dict) -> dict[str, list[str]]:
    """Per data key the configured tracks use, the local files it reads (none for a hub id);
    a missing local path is an error naming the key. These files are rule inputs, so an
    edited or replaced file reruns exactly the steps that read it."""
    from ws2s.data.sources import source_files

    files = {}
    if "classification" in config["tracks"]:
        for dataset in config["classification"]["datasets"]:
            files[dataset] = [str(f) for f in source_files(config["data"][dataset], f"data.{dataset}")]
    if "generation" in config["tracks"]:
        for split in ("train", "test"):
            path = config["data"]["slurp"][split]
            if not Path(path).expanduser().is_file():
                raise Ws2sError(f"data.slurp.{split}: {path} does not exist; get the official SLURP jsonl files "
                                "(dataset/slurp/ of the SLURP repository) and point the key at them")
            files[f"slurp.{split}"] = [path]
    # as Snakemake wants input paths: no leading ./
    return {key: [os.path.normpath(os.path.expanduser(f)) for f in paths] for key, paths in files.items()}


def check(config: dict, configfiles=()) -> dict[str, list[str]]:
    """Everything the workflow checks when it loads, in one place: the schema and its
    cross-references, the data files (returned: each data key's files) and the model sources.

    `configfiles` are the files Snakemake merged into `config` (`workflow.configfiles`): each is
    read again as `load` reads it, since Snakemake's own reader keeps the last of a key given twice."""
    from ws2s.models import check_sources

    for path in configfiles:
        read_config_file(path)
    validate(config)
    files = data_files(config)
    check_sources(config)
    return files


def load(*paths: str | Path) -> dict:
    """config.yaml overlaid by each further file, merged by Snakemake's own `update_config`
    (dicts recursively, anything else replaced), then `validate`d."""
    from snakemake.utils import update_config

    config: dict = {}
    for path in paths:
        update_config(config, read_config_file(path))
    return validate(config)


def read_config_file(path: str | Path) -> dict:
    """One config file: UTF-8 text, YAML (or JSON), a mapping, no key given twice in a mapping."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise Ws2sError(f"{path}: config file not found") from None
    text = _utf8_text(path, raw)
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_duplicate_keys(path, node)
            overlay = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise Ws2sError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    overlay = overlay or {}
    if not isinstance(overlay, dict):
        raise Ws2sError(f"{path}: a config file must be a mapping of keys, not a {type(overlay).__name__}")
    return overlay


def _utf8_text(path: Path, raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Ws2sError(f"{path}: not UTF-8 text (it starts with a UTF-16 byte-order mark); save it as UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise Ws2sError(f"{path} line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
                        "save it as UTF-8") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise Ws2sError(f"{path} line {line}: not UTF-8 text (it holds NUL bytes, as UTF-16 does); save it as UTF-8")
    return text


def _check_duplicate_keys(path: Path, node: yaml.Node) -> None:
    """A key given twice in one mapping is an error: YAML loaders keep the last without a word."""
    seen: set[int] = set()

    def walk(node: yaml.Node, where: tuple) -> None:
        if id(node) in seen:  # an alias: checked where its anchor stands
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[str, yaml.Mark] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    walk(value_node, where)
                    continue
                key, mark = key_node.value, key_node.start_mark
                if key in lines:
                    first = lines[key]
                    at = (f"line {mark.line + 1}, columns {first.column + 1} and {mark.column + 1}"
                          if first.line == mark.line else f"lines {first.line + 1} and {mark.line + 1}")
                    raise Ws2sError(f"config key '{_where((*where, key))}' is given twice in {path} ({at}); keep one")
                lines[key] = mark
                walk(value_node, (*where, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*where, i))

    walk(node, ())


