"""The experiment design, in one place: what each method means, and which tables exist.

METHODS says, per Weak(S)-to-Strong method, the tracks it runs in, what a strong run of it
reads (gold, weak labels, a label model's file, mapped hypotheses or a Joint Decoding file),
its loss (cross-entropy, or EDL for Bayesian Multi-Weak), how its members are weighted and
which ablation variants it has (Tables 8, 9 and 11). TABLES lists the tables the paper
reports. `run_params` is the one function that builds a run's params from the config and the
job's wildcards: every setting the run's result depends on and no other, so an edit reruns
exactly the runs it changes. Which runs each table reads, and where every result lies, are
here too; the workflow's rules only wire these to files.

A `dataset` argument names a classification data set; None stands for the generation track
(SLURP). Imported by the Snakefile when it is parsed: pure Python, no torch, no stage code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ws2s.config import canonical
from ws2s.data.classification import CLASSIFICATION_DATASETS, ClassificationDataset, dataset_of
from ws2s.label_models import LABEL_MODELS

# ---- methods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """What a method means: its targets per track, its loss, its member weights and variants."""

    source: str  # what a run's source wildcard names: "gold", a "weak_model" or an "ensemble"
    targets: dict[str, str]  # track -> what its strong run learns from: gold, weak_labels, label_model, mapped, joint
    label: str  # its rows' label in tables and figures; {} is the source
    loss: str = "ce"  # "ce" (Eqns 1-2) or "edl" (Eqns 3-5)
    weights: str = "one"  # "one": a single target, λ = 1; "members": λ_i over its members, by the weighting
    ablations: tuple[str, ...] = ()  # the generation settings its variants override (keys of VARIANTS)


# what the weak models themselves give: class probabilities, or hypotheses in the strong tokenizer
_WEAK_TARGETS = {"classification": "weak_labels", "generation": "mapped"}

# In the paper's row order: the ceiling, single weak models, then an ensemble's rows: the
# paper's baselines, the label models, the paper's method.
METHODS = {
    "ceiling": Method("gold", {"classification": "gold", "generation": "gold"}, "Strong ceiling (gold)"),
    "single": Method("weak_model", _WEAK_TARGETS, "Weak-to-Strong ({})"),
    "naive": Method("ensemble", _WEAK_TARGETS, "Naive Multi-Weak ({})", weights="members"),
    **{name: Method("ensemble", {"classification": "label_model"}, f"{model.label} ({{}})")
       for name, model in LABEL_MODELS.items()},
    "jointdecoding": Method("ensemble", {"generation": "joint"}, "Joint Decoding ({})", ablations=("jd_m",)),
    "bayesian": Method("ensemble", _WEAK_TARGETS, "Bayesian Multi-Weak ({})", loss="edl", weights="members",
                       ablations=("soft_labels", "weighting")),
}


def methods_of(track: str, source: str | None = None) -> list[str]:
    """The methods a track's config may name (the ceiling always runs), or those drawing on `source`."""
    return [name for name, method in METHODS.items() if track in method.targets and name != "ceiling"
            and source in (None, method.source)]


# A generation run's method wildcard is a method, or method-variant for an ablation: the
# variant overrides one setting of the config. Each setting's variants, in its table's row order.
VARIANTS = {
    "soft_labels": ("onehot", "target", "full"),  # Table 8
    "weighting": ("average", "dynamic", "fixed"),  # Table 9
    "jd_m": ("m3", "m5", "m10"),  # Table 11: Joint Decoding's M
}
# Any M parses, not only Table 11's.
SUFFIX_PATTERNS = {**{setting: "|".join(values) for setting, values in VARIANTS.items()}, "jd_m": r"m\d+"}


def parse_method(method: str) -> tuple[str, dict]:
    """(base method, the setting its variant overrides) of a method wildcard:
    bayesian-full -> (bayesian, {soft_labels: full}); jointdecoding-m5 -> (jointdecoding, {jd_m: 5})."""
    base, _, suffix = method.partition("-")
    for setting, pattern in SUFFIX_PATTERNS.items():
        if re.fullmatch(pattern, suffix):
            return base, {setting: int(suffix[1:]) if setting == "jd_m" else suffix}
    return base, {}


def method_of(method: str) -> Method:
    """The registry entry of a method wildcard (a variant's is its base method's)."""
    return METHODS[parse_method(method)[0]]


def method_pattern(track: str) -> str:
    """The regex of a track's method wildcard: its methods and, in generation, their variants."""
    alternatives = []
    for name, method in METHODS.items():
        if track in method.targets:
            suffixes = "|".join(SUFFIX_PATTERNS[s] for s in method.ablations) if track == "generation" else ""
            alternatives.append(f"{name}(-({suffixes}))?" if suffixes else name)
    return "|".join(alternatives)


def generation_settings(gen: dict, method: str) -> dict:
    """Soft-label kind, weighting and Joint Decoding M of a generation run: the config's, or its variant's."""
    _, overrides = parse_method(method)
    return {"soft_labels": gen["soft_labels"]["kind"], "weighting": gen["weighting"],
            "jd_m": gen["joint_decoding"]["m"], **overrides}


def ablation_method(gen: dict, variant: str) -> str:
    """A variant equal to the config's own setting is the main run: it is not trained twice."""
    base, _ = parse_method(variant)
    return base if generation_settings(gen, variant) == generation_settings(gen, base) else variant


def joint_roles(gen: dict, name: str) -> tuple[list[str], list[str]]:
    """(generators, judges) of a Joint Decoding ensemble, or of a Table 10 subset."""
    subsets = gen["joint_decoding"]["subsets"]
    if name in subsets:
        return subsets[name]["generators"], subsets[name]["judges"]
    return gen["ensembles"][name], gen["ensembles"][name]


def members(config: dict, method: str, source: str, dataset: str | None = None) -> list[str]:
    """The weak models a strong run draws on: none for the ceiling, the source of a single run,
    else the ensemble's; for a Table 10 subset every model that generates or judges (PGR is
    against them)."""
    kind = method_of(method).source
    if kind == "gold":
        return []
    if kind == "weak_model":
        return [source]
    if dataset:
        return config["classification"]["ensembles"][dataset][source]
    gen = config["generation"]
    if source in gen["joint_decoding"]["subsets"]:
        generators, judges = joint_roles(gen, source)
        return list(dict.fromkeys(generators + judges))
    return gen["ensembles"][source]


def member_weights(models: list[str], weighting: str, fixed: list[float] | None) -> list[float]:
    """λ_i of Eqns 2 and 4 (and cDPO's Eqn 8), summing to 1: under fixed weighting the configured
    weights over their sum, else 1/N each (dynamic weights are per example, set by the stage)."""
    if weighting == "fixed":
        return [w / sum(fixed) for w in fixed]
    return [1.0 / len(models)] * len(models)


def strong_weights(config: dict, method: str, source: str, dataset: str | None = None) -> list[float]:
    """A strong run's λ_i: 1 for a single target (gold, one weak model, a label model's or
    Joint Decoding's), else its members' by the run's weighting."""
    if method_of(method).weights == "one":
        return [1.0]
    if dataset:
        cls = config["classification"]
        weighting, fixed = cls["weighting"], cls["fixed_weights"].get(dataset, {}).get(source)
    else:
        gen = config["generation"]
        weighting, fixed = generation_settings(gen, method)["weighting"], gen["fixed_weights"].get(source)
    return member_weights(members(config, method, source, dataset), weighting, fixed)


def loss_slice(section: dict, method: str, aux: str, **preset) -> dict:
    """Only the loss settings a run uses (its track's aux and EDL sections where it uses them),
    so an edit reruns only the runs it changes."""
    loss = {"kind": method_of(method).loss, "aux": aux == "aux", **preset}
    if loss["aux"]:
        loss.update(section["aux"])
    if loss["kind"] == "edl":
        loss.update(section["edl"])
    return loss


# ---- tables -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A table of results: the track whose runs it reports and what it shows."""

    track: str
    shows: str  # "gold" (models finetuned on gold), "w2s" (every method, with PGR), "cdpo" or "ablation"
    dataset: str | None = None  # a classification W2S table's data set
    varies: str | None = None  # an ablation's setting (a key of VARIANTS); Table 10 varies the Joint Decoding roles


# The paper's fixed tables, and each built-in classification data set's Weak(S)-to-Strong table
# from its registry entry (Table 2 SciQ's, Table 7 Cosmos QA's; SLURP intents, the CPU-sized
# task not in the paper, one of the same layout). A user's data set from a file gets
# table_NAME (tables_of). Ablations run on the largest ensemble, without the auxiliary loss.
TABLES = {
    "table1": Table("classification", "gold"),
    **{entry.table: Table("classification", "w2s", name) for name, entry in CLASSIFICATION_DATASETS.items()},
    "table3": Table("generation", "gold"),
    "table4": Table("generation", "w2s"),
    "table5": Table("generation", "cdpo"),
    "table8": Table("generation", "ablation", varies="soft_labels"),
    "table9": Table("generation", "ablation", varies="weighting"),
    "table10": Table("generation", "ablation"),
    "table11": Table("generation", "ablation", varies="jd_m"),
}
ABLATION_TABLES = tuple(name for name, table in TABLES.items() if table.shows == "ablation")


def classification_data(config: dict) -> list[str]:
    """The classification data sets `data` configures (data.slurp is the generation track's)."""
    return [name for name in config["data"] if name != "slurp"]


def dataset_entry(config: dict, dataset: str) -> ClassificationDataset:
    """The registry entry of a classification data set of the config (a user's file's is made from its config)."""
    return dataset_of(dataset, config["data"][dataset])


def tables_of(config: dict) -> dict[str, Table]:
    """Every table the config can make: the fixed ones and its data sets' W2S tables."""
    datasets = config["classification"]["datasets"]
    return {**TABLES, **{dataset_entry(config, d).table: Table("classification", "w2s", d) for d in datasets}}


def w2s_heading(config: dict, dataset: str | None) -> str:
    """A W2S table's heading: the paper's table it reproduces, else that it is not the paper's."""
    if dataset is None:
        return "Table 4"
    return dataset_entry(config, dataset).paper_table or "Table (not in the paper)"


def cdpo_enabled(config: dict) -> bool:
    return "generation" in config["tracks"] and config["generation"]["cdpo"]["enabled"]


def makes_table(config: dict, name: str) -> bool:
    """Whether the config makes a table: its track runs and it has runs to report."""
    table = tables_of(config)[name]
    if table.track not in config["tracks"]:
        return False
    if table.dataset:
        return table.dataset in config["classification"]["datasets"]
    if table.shows == "cdpo":
        return cdpo_enabled(config)
    if table.shows == "ablation":
        gen = config["generation"]
        wanted = table.varies in gen["ablations"] if table.varies else bool(gen["joint_decoding"]["subsets"])
        return bool(gen["ensembles"]) and wanted
    return True


def w2s_tables(config: dict) -> dict[str, str]:
    """The classification W2S tables the config makes, with their data sets."""
    return {name: table.dataset for name, table in tables_of(config).items() if table.dataset and makes_table(config, name)}


def all_targets(config: dict) -> list[str]:
    """Every table and figure the config makes: what `snakemake all` builds."""
    targets = [f"results/tables/{name}.{ext}" for name in tables_of(config) if makes_table(config, name)
               for ext in ("csv", "md")]
    if "classification" in config["tracks"]:
        targets += [f"results/figures/fig3_{dataset}.png" for dataset in config["classification"]["datasets"]]
        targets += [f"results/figures/{kind}_{dataset}.png" for dataset in w2s_tables(config).values()
                    for kind in ("pgr", "reliability", "curves")]
        targets += [f"results/tables/{name}_protocols.md" for name in w2s_tables(config)]
    if "generation" in config["tracks"]:
        targets += ["results/figures/fig3_slurp.png", "results/figures/pgr_slurp.png"]
    return targets


def w2s_layout(config: dict, dataset: str | None = None) -> dict:
    """Which rows and columns a W2S table has."""
    if dataset:
        cls = config["classification"]
        return {"weak_models": cls["weak_models"][dataset], "ensembles": cls["ensembles"].get(dataset, {}),
                "methods": cls["methods"], "aux_variants": cls["aux_variants"]}
    gen = config["generation"]
    return {"weak_models": gen["weak_models"], "ensembles": gen["ensembles"], "methods": gen["methods"],
            "aux_variants": gen["aux_variants"], "aux_methods": gen.get("aux_methods")}


def w2s_rows(layout: dict) -> list[tuple[str, str]]:
    """(method, source) of each row, in the paper's order: the ceiling, the methods on one weak
    model (per weak model), then per ensemble its methods."""
    def chosen(source: str) -> list[str]:
        return [m for m, spec in METHODS.items() if spec.source == source and m in layout["methods"]]

    rows = [("ceiling", "gold")]
    rows += [(m, model) for m in chosen("weak_model") for model in layout["weak_models"]]
    for ensemble in layout["ensembles"]:
        rows += [(m, ensemble) for m in chosen("ensemble")]
    return rows


def aux_variants_of(layout: dict, method: str) -> list[str]:
    """The aux variants `method` runs: none for the ceiling; `aux` only for the methods in
    `aux_methods` where the layout names them (a CPU budget may afford aux for a few)."""
    if METHODS[method].source == "gold":
        return ["noaux"]
    only = layout.get("aux_methods")
    return [aux for aux in layout["aux_variants"] if aux == "noaux" or only is None or method in only]


def strong_runs(config: dict, dataset: str | None = None) -> list[tuple[str, str, str]]:
    """(method, source, aux) of every strong run a W2S table reads; source names the weak
    model, the ensemble, or gold for the ceiling."""
    layout = w2s_layout(config, dataset)
    return [(method, source, aux) for method, source in w2s_rows(layout) for aux in aux_variants_of(layout, method)]


def _w2s_slice(config: dict, dataset: str | None) -> dict:
    # the generation track reports SLU-F1; classification its default, accuracy
    return w2s_layout(config, dataset) if dataset else {**w2s_layout(config), "metric": "slu_f1"}


def table_params(config: dict, name: str) -> str:
    """A table's params: its format, and the rows it has where the config decides them."""
    table, table_format = tables_of(config)[name], config["tables"][name]
    if table.shows == "w2s":
        return canonical({"format": table_format, **_w2s_slice(config, table.dataset)})
    if table.shows == "ablation":
        return canonical({"format": table_format, "rows": ablation_rows(config, name)})
    return canonical(table_format)


def curves_params(config: dict, name: str) -> str:
    """The curves stage's params: its W2S table's layout and format, and the few-gold size."""
    return canonical({"layout": json.loads(table_params(config, name)),
                      "fewgold_val": config["classification"]["fewgold_val"]})


def pgr_params(config: dict, dataset: str | None = None) -> str:
    """The PGR figure's params: its W2S table's layout."""
    return canonical(_w2s_slice(config, dataset))


def ablation_rows(config: dict, name: str) -> list[tuple[str, list[str]]]:
    """(label, metrics files over seeds) per row of an ablation table."""
    gen = config["generation"]
    ensemble = max(gen["ensembles"], key=lambda e: len(gen["ensembles"][e]))

    def runs(method, source):
        return [f"{strong_dir(None, method, source, 'noaux', seed)}/metrics.json" for seed in seeds(config)]

    setting = TABLES[name].varies
    if setting is None:
        return [(f"{ensemble}: every member generates and judges", runs("jointdecoding", ensemble))] + [
            (f"{subset}: generators {'+'.join(s['generators'])}; judges {'+'.join(s['judges'])}",
             runs("jointdecoding", subset)) for subset, s in gen["joint_decoding"]["subsets"].items()]
    method = next(m for m, spec in METHODS.items() if setting in spec.ablations)
    return [(suffix, runs(ablation_method(gen, f"{method}-{suffix}"), ensemble)) for suffix in VARIANTS[setting]]


# ---- where results lie, and which runs each table reads -------------------------------------


def seeds(config: dict, dataset: str | None = None) -> list[int]:
    """The seeds of a track: generation.seeds, where set, replaces seeds for the generation
    track (its runs cost more)."""
    if dataset:
        return config["seeds"]
    return (config.get("generation") or {}).get("seeds") or config["seeds"]


def track_dir(dataset: str | None) -> str:
    return f"results/classification/{dataset}" if dataset else "results/generation"


def split_file(dataset: str | None, split: str) -> str:
    return f"{track_dir(dataset)}/splits/{split}.parquet"


def weak_dir(dataset: str | None, model: str, seed) -> str:
    return f"{track_dir(dataset)}/weak/{model}/seed{seed}"


def strong_dir(dataset: str | None, method: str, source: str, aux: str, seed) -> str:
    return f"{track_dir(dataset)}/strong/{method}/{source}/{aux}/seed{seed}"


def weak_files(config: dict, dataset: str | None = None, name: str = "metrics.json") -> list[str]:
    """A file of every weak run: of a classification data set, or of the generation track where it runs."""
    if dataset:
        weak_models = config["classification"]["weak_models"][dataset]
    elif "generation" in config["tracks"]:
        weak_models = config["generation"]["weak_models"]
    else:
        return []
    return [f"{weak_dir(dataset, model, seed)}/{name}" for model in weak_models for seed in seeds(config, dataset)]


def ceiling_files(config: dict, dataset: str | None = None) -> list[str]:
    return [f"{strong_dir(dataset, 'ceiling', 'gold', 'noaux', seed)}/metrics.json" for seed in seeds(config, dataset)]


def strong_files(config: dict, dataset: str | None = None, name: str = "metrics.json") -> list[str]:
    """A file of every strong run a W2S table reads, over seeds: the ceiling first."""
    return [f"{strong_dir(dataset, method, source, aux, seed)}/{name}"
            for method, source, aux in strong_runs(config, dataset) for seed in seeds(config, dataset)]


def table1_inputs(config: dict) -> list[str]:
    """Weak models and the strong ceiling, every classification data set."""
    return [path for dataset in config["classification"]["datasets"]
            for path in weak_files(config, dataset) + ceiling_files(config, dataset)]


def ablation_inputs(config: dict, name: str) -> list[str]:
    return [path for _, paths in ablation_rows(config, name) for path in paths]


def cdpo_start(config: dict) -> dict[str, str]:
    """Method and aux of the strong runs that keep their weights for cDPO (Bayesian Multi-Weak
    with aux on the ensemble, by default)."""
    gen = config.get("generation")
    cdpo = gen["cdpo"] if gen else {"start_method": "bayesian", "start_aux": True}
    return {"method": cdpo["start_method"], "aux": "aux" if cdpo["start_aux"] else "noaux"}


def table5_inputs(config: dict) -> dict[str, list[str]]:
    """cDPO's runs, the ensemble members' own SLU-F1 (P_weak of Table 5's PGR) and the ceiling."""
    if not cdpo_enabled(config):
        return {"cdpo": [], "weak": [], "ceiling": []}
    cdpo = config["generation"]["cdpo"]
    return {
        "cdpo": [f"results/generation/cdpo/{cdpo['ensemble']}/seed{seed}/metrics.json" for seed in seeds(config)],
        "weak": [f"{weak_dir(None, m, seed)}/metrics.json" for m in config["generation"]["ensembles"][cdpo["ensemble"]]
                 for seed in seeds(config)],
        "ceiling": ceiling_files(config),
    }


# ---- a run's params -----------------------------------------------------------------------


def linear_probe(config: dict) -> bool:
    """Whether the classification strong runs are linear probes on cached features."""
    return config["classification"]["strong_training"]["train_layers"] == 0


def cached_bottoms(config: dict) -> bool:
    """Whether the classification strong runs are the finetuned readout arm (`head: readout`,
    `train_layers: K > 0`), which reads its frozen bottom blocks' states from strong_features."""
    training = config["classification"]["strong_training"]
    return training["head"] == "readout" and training["train_layers"] not in (0, "all")


def reads_features(config: dict) -> bool:
    """Whether the classification strong runs read strong_features' file (the probe's features
    or the finetuned readout arm's frozen-bottom states)."""
    return linear_probe(config) or cached_bottoms(config)


def _engine(config: dict) -> dict:
    """The engine settings a strong run uses; under plain PyTorch the DeepSpeed ones are moot
    (bf16 is not: there it is autocast)."""
    engine = dict(config["engine"])
    lora = engine.pop("lora")
    chosen = engine if engine["backend"] == "deepspeed" else {"backend": "plain", "bf16": engine["bf16"]}
    # LoRA's settings only where it is on: runs without it keep the params they had before it existed
    return {**chosen, "lora": lora} if lora["rank"] else chosen


def _prepare_model(config, model):
    # a model's spec and those of the models it is cut down from: all its preparation reads
    chain = {model: config["models"][model]}
    while "from" in chain[model]:
        model = chain[model]["from"]
        chain[model] = config["models"][model]
    return {"registry": chain}


def _classification_splits(config, dataset):
    # its prompt and title change no split: an edit of them reruns only what uses them
    source = {key: value for key, value in config["data"][dataset].items() if key not in ("prompt", "title")}
    return {"dataset": dataset, "source": source,
            "sizes": config["classification"]["split_sizes"], "split_seed": config["split_seed"]}


def _weak_classify(config, dataset, model, seed):
    cls = config["classification"]
    training = cls["weak_training"]
    return {
        "model_name": model,
        "model_spec": config["models"][model],
        "dataset": dataset,
        "seed": int(seed),
        "epochs": training["epochs"],
        "batch_size": training["batch_size"],
        "lr": training["lr_per_model"].get(model, training["lr"]),
        "max_length": cls["max_length"],
        "train_layers": training["train_layers"],
    }


def _strong_features(config, dataset, model):
    cls = config["classification"]
    head = cls["strong_training"]["head"]
    # the yes/no prompt where the head reads the answer off the model's output layer
    prompt = {"prompt": dataset_entry(config, dataset).prompt} if head == "readout" else {}
    # the finetuned arm's frozen-bottom states depend on how many top blocks train (the probe's on none)
    arm = {"train_layers": cls["strong_training"]["train_layers"]} if cached_bottoms(config) else {}
    return {"model_spec": config["models"][model], "max_length": cls["max_length"], "dataset": dataset,
            "head": head, "bf16": config["engine"]["bf16"], **prompt, **arm}


def _strong_classify(config, dataset, method, source, aux, seed):
    cls = config["classification"]
    return {
        "model_name": cls["strong_model"],
        "model_spec": config["models"][cls["strong_model"]],
        "dataset": dataset,
        "method": method,
        "target": METHODS[method].targets["classification"],
        "source": source,
        "members": members(config, method, source, dataset),
        "weights": strong_weights(config, method, source, dataset),
        "loss": loss_slice(cls, method, aux),
        "seed": int(seed),
        "max_length": cls["max_length"],
        "engine": _engine(config),
        **cls["strong_training"],
        # a readout head on the finetuned model asks the probe's question itself
        **({"prompt": dataset_entry(config, dataset).prompt}
           if cls["strong_training"]["head"] == "readout" and not linear_probe(config) else {}),
    }


def _label_models(config, dataset, ensemble, seed):
    cls = config["classification"]
    return {"members": cls["ensembles"][dataset][ensemble],
            "methods": [m for m in cls["methods"] if METHODS[m].targets.get("classification") == "label_model"],
            "class_balance": cls["class_balance"], "seed": int(seed)}


def _generation_splits(config):
    slurp = config["data"]["slurp"]
    return {"train": slurp["train"], "test": slurp["test"], "sizes": config["generation"]["split_sizes"],
            "split_seed": config["split_seed"]}


def _generation_fewgold(config, seed):
    return {"size": config["generation"]["fewgold_val"], "seed": int(seed)}


def _weak_generate(config, model, seed):
    gen = config["generation"]
    return {
        "model_name": model,
        "model_spec": config["models"][model],
        "seed": int(seed),
        "prompt": gen["prompt"],
        "weak_beams": gen["weak_beams"],
        "max_new_tokens": gen["max_new_tokens"],
        "engine": {"bf16": config["engine"]["bf16"]},
        **gen["weak_training"],
    }


def _map_hypotheses(config, **_wildcards):
    # the same for every weak model and seed: a mapping setting reruns every mapping
    gen = config["generation"]
    return {"strong_model": gen["strong_model"], "strong_spec": config["models"][gen["strong_model"]],
            "prompt": gen["prompt"], "weighting": gen["mapping"]["weighting"], "bf16": config["engine"]["bf16"]}


def _joint_decode(config, ensemble, m, seed):
    gen = config["generation"]
    generators, judges = joint_roles(gen, ensemble)
    # a Table 10 subset has no fixed weights of its own: its judges weigh 1/N
    weighting = gen["weighting"] if ensemble in gen["ensembles"] else "average"
    return {"members": judges, "weights": member_weights(judges, weighting, gen["fixed_weights"].get(ensemble)),
            "generators": generators, "prompt": gen["prompt"], "m": int(m)}


def _strong_generate(config, method, source, aux, seed):
    gen = config["generation"]
    base, _ = parse_method(method)
    spec = METHODS[base]
    settings = generation_settings(gen, method)
    # hard targets (gold, Joint Decoding's pick) have no soft labels: keep their params free of them
    soft_kind = "onehot" if spec.targets["generation"] in ("gold", "joint") else settings["soft_labels"]
    return {
        "model_name": gen["strong_model"],
        "model_spec": config["models"][gen["strong_model"]],
        "seed": int(seed),
        "prompt": gen["prompt"],
        "method": base,
        "target": spec.targets["generation"],
        "source": source,
        "members": members(config, method, source),
        "weighting": settings["weighting"] if spec.weights == "members" else "average",
        "weights": strong_weights(config, method, source),
        # token-level aux hardens at the argmax: there is no class balance to threshold at
        "loss": loss_slice(gen, method, aux, balanced_threshold=False),
        "soft_labels": {"kind": soft_kind, "min_prob": gen["soft_labels"]["min_prob"]},
        "decoding": gen["decoding"],
        "engine": _engine(config),
        **gen["strong_training"],
    }


def _cdpo(config, ensemble, seed):
    gen = config["generation"]
    cdpo = {key: value for key, value in gen["cdpo"].items() if key != "enabled"}
    judges = gen["ensembles"][cdpo["ensemble"]]
    return {
        **cdpo,
        "seed": int(seed),
        "members": judges,
        # λ_i of Eqn 8, one per model as in Joint Decoding (dynamic weights are per utterance)
        "weights": member_weights(judges, gen["weighting"], gen["fixed_weights"].get(ensemble)),
        "prompt": gen["prompt"],
        # test decoding before and after, as the strong stage decodes
        "test_beams": gen["decoding"]["beams"],
        "max_new_tokens": gen["decoding"]["max_new_tokens"],
        "engine": _engine(config),
    }


_PARAMS = {
    "prepare_model": _prepare_model,
    "classification_splits": _classification_splits,
    "weak_classify": _weak_classify,
    "strong_features": _strong_features,
    "strong_classify": _strong_classify,
    "label_models": _label_models,
    "generation_splits": _generation_splits,
    "generation_fewgold": _generation_fewgold,
    "weak_generate": _weak_generate,
    "map_hypotheses": _map_hypotheses,
    "joint_decode": _joint_decode,
    "strong_generate": _strong_generate,
    "cdpo": _cdpo,
}


def run_params(config: dict, rule: str, **wildcards: str) -> str:
    """The params of one run of `rule` with these wildcards, as canonical JSON (a run that keeps
    its model, strong_generate_keep_model, takes strong_generate's)."""
    return canonical(_PARAMS[rule](config, **wildcards))


# ---- a run's inputs -----------------------------------------------------------------------


def _engine_inputs(config: dict) -> list[str]:
    # the DeepSpeed JSON template, so that editing it reruns the strong runs
    return [config["engine"]["config"]] if config["engine"]["backend"] == "deepspeed" else []


def _split_files(dataset: str | None, *splits: str) -> dict[str, str]:
    return {split: split_file(dataset, split) for split in splits}


def fewgold_file(seed) -> str:
    return split_file(None, f"fewgold/seed{seed}")


def _gold_files(dataset: str | None) -> list[str]:
    # only the ceiling is handed gold: strong_train's and val's, kept apart from the splits
    return [split_file(dataset, f"{split}_gold") for split in ("strong_train", "val")]


def _strong_classify_inputs(config, checkpoint, dataset, method, source, aux, seed):
    cls = config["classification"]
    target = method_of(method).targets["classification"]
    inputs = {
        **_split_files(dataset, "strong_train", "val", "test"),
        # a label model's method reads its ensemble's label-model file, the others the weak labels
        "weak_labels": [f"{track_dir(dataset)}/label_models/{source}/seed{seed}.parquet"] if target == "label_model"
        else [f"{weak_dir(dataset, m, seed)}/labels.parquet" for m in members(config, method, source, dataset)],
        "engine_config": _engine_inputs(config),
    }
    if target == "gold":
        inputs["gold"] = _gold_files(dataset)
    if reads_features(config):
        features = f"{track_dir(dataset)}/strong/features/{cls['strong_model']}"
        inputs["features"] = f"{features}.parquet"
        inputs["features_info"] = f"{features}.json"  # the backbone's size, read beside the features
    if not linear_probe(config):
        inputs["model"] = checkpoint(cls["strong_model"])
    return inputs


def _label_models_inputs(config, checkpoint, dataset, ensemble, seed):
    return {
        "splits": [split_file(dataset, split) for split in ("strong_train", "val")],
        "weak_labels": [f"{weak_dir(dataset, m, seed)}/labels.parquet"
                        for m in config["classification"]["ensembles"][dataset][ensemble]],
    }


def _map_hypotheses_inputs(config, checkpoint, model, seed):
    return {
        "model": checkpoint(config["generation"]["strong_model"]),
        **_split_files(None, "strong_train", "val"),
        "hypotheses": f"{weak_dir(None, model, seed)}/hypotheses.parquet",
    }


def _joint_decode_inputs(config, checkpoint, ensemble, m, seed):
    generators, judges = joint_roles(config["generation"], ensemble)
    return {
        **_split_files(None, "strong_train", "val"),
        "hypotheses": [f"{weak_dir(None, g, seed)}/hypotheses.parquet" for g in generators],
        "weak_models": [f"{weak_dir(None, j, seed)}/model" for j in judges],
    }


def _strong_generate_inputs(config, checkpoint, method, source, aux, seed):
    gen = config["generation"]
    target = method_of(method).targets["generation"]
    inputs = {
        "model": checkpoint(gen["strong_model"]),
        **_split_files(None, "strong_train", "val", "test"),
        "engine_config": _engine_inputs(config),
        "mapped": [],
    }
    if gen["split_sizes"]["val"]:
        # every run's few-gold subset (the Weak-to-Strong runs' only gold), read to pick a point
        inputs["fewgold"] = fewgold_file(seed)
    if target == "gold":
        inputs["gold"] = _gold_files(None)
    elif target == "joint":
        m = generation_settings(gen, method)["jd_m"]
        inputs["joint"] = f"results/generation/joint/{source}/m{m}/seed{seed}.parquet"
    else:
        inputs["mapped"] = [f"results/generation/mapped/{m}/seed{seed}.parquet"
                            for m in members(config, method, source)]
    return inputs


def _cdpo_inputs(config, checkpoint, ensemble, seed):
    gen = config["generation"]
    start = cdpo_start(config)
    return {
        "start_model": f"{strong_dir(None, start['method'], gen['cdpo']['ensemble'], start['aux'], seed)}/model",
        "weak_models": [f"{weak_dir(None, m, seed)}/model" for m in gen["ensembles"][gen["cdpo"]["ensemble"]]],
        **_split_files(None, "strong_train", "test"),
        "engine_config": _engine_inputs(config),
    }


_INPUTS = {
    "strong_classify": _strong_classify_inputs,
    "label_models": _label_models_inputs,
    "map_hypotheses": _map_hypotheses_inputs,
    "joint_decode": _joint_decode_inputs,
    "strong_generate": _strong_generate_inputs,
    "cdpo": _cdpo_inputs,
}


def run_inputs(config: dict, rule: str, checkpoint, **wildcards: str) -> dict:
    """The named input files of one run of `rule`; `checkpoint(model)` gives a registry model's
    prepared checkpoint, if it needs one (ws2s.models decides, and this module loads no model code)."""
    return _INPUTS[rule](config, checkpoint, **wildcards)
