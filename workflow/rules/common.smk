# Config validation, config lookups and input functions; rules hold no logic of their own.
import os
import sys

from ws2s.codeversion import code_version
from ws2s.config import canonical, check
from ws2s.errors import Ws2sError
from ws2s.label_models import LABEL_MODELS
from ws2s.models import needs_preparation
from ws2s.tables import aux_variants_of, w2s_rows

try:
    DATA_FILES = check(config)  # the checks `ws2s validate` runs, exactly
except Ws2sError as err:
    sys.exit(f"ws2s: config error: {err}")


# Every rule's command ends so: its output goes to its log, and when it fails its ws2s error
# line is also printed to the console, beside Snakemake's "check log file(s)".
LOGGED = ' > {log} 2>&1 || {{ status=$?; grep -h "^ws2s" {log} >&2 || true; exit $status; }}'


wildcard_constraints:
    dataset="sciq|cosmosqa|slurp_intent",
    model="[A-Za-z0-9][A-Za-z0-9._-]*",
    seed=r"\d+",


CLS = config["classification"]


def model_inputs(name):
    """The prepared checkpoint a model needs, or nothing for hub/local/package models."""
    return [f"results/models/{name}"] if needs_preparation(config["models"][name]) else []


def model_chain(name):
    """A model's spec and those of the models it is cut down from: all its preparation reads."""
    chain = {name: config["models"][name]}
    while "from" in chain[name]:
        name = chain[name]["from"]
        chain[name] = config["models"][name]
    return chain


def prepare_model_params(wildcards):
    return canonical({"registry": model_chain(wildcards.model)})


def prepare_model_parent(wildcards):
    spec = config["models"][wildcards.model]
    return model_inputs(spec["from"]) if "from" in spec else []


def split_data(wildcards):
    """The data files the splits read: inputs, so an edited file reruns what reads it."""
    return DATA_FILES[wildcards.dataset]


def split_params(wildcards):
    return canonical({
        "dataset": wildcards.dataset,
        "source": config["data"][wildcards.dataset],
        "sizes": CLS["split_sizes"],
        "split_seed": config["split_seed"],
    })


def weak_train_params(wildcards):
    training = CLS["weak_training"]
    return canonical({
        "model_name": wildcards.model,
        "model_spec": config["models"][wildcards.model],
        "seed": int(wildcards.seed),
        "epochs": training["epochs"],
        "batch_size": training["batch_size"],
        "lr": training["lr_per_model"].get(wildcards.model, training["lr"]),
        "max_length": CLS["max_length"],
        "train_layers": training["train_layers"],
    })


def model_input(wildcards):
    return model_inputs(wildcards.model)


def weak_metrics(dataset):
    return [
        f"results/classification/{dataset}/weak/{model}/seed{seed}/metrics.json"
        for model in CLS["weak_models"][dataset]
        for seed in config["seeds"]
    ]


def table1_inputs():
    """Weak models and the strong ceiling, every classification data set."""
    return [
        path
        for dataset in CLS["datasets"]
        for path in weak_metrics(dataset)
        + [f"results/classification/{dataset}/strong/ceiling/gold/noaux/seed{seed}/metrics.json" for seed in config["seeds"]]
    ]


def table_params(name):
    return canonical(config["tables"][name])


# ---- scheduler resources and the training engine ----------------------------------------

# Where GPU jobs go under SLURM; CPU jobs take the profile's default partition.
GPU_PARTITION = os.environ.get("WS2S_SLURM_GPU_PARTITION", "gpu")


def job_resources(kind):
    """What one job of a kind (config `resources`) asks for: memory, runtime, GPUs.

    Resources change where and how fast a job runs, never its results, so they are not
    params: editing them reruns nothing.
    """
    res = config["resources"][kind]
    request = {"mem_mb": res["mem_mb"], "runtime": res["runtime"], "gpu": res["gpu"]}
    if res["gpu"]:
        request["slurm_partition"] = GPU_PARTITION
        if res["gpu_model"]:
            request["gpu_model"] = res["gpu_model"]
    return request


def job_threads(kind):
    return config["resources"][kind]["cpus"]


def engine_slice():
    """The engine settings a strong run uses; under plain PyTorch the DeepSpeed ones are moot
    (bf16 is not: there it is autocast)."""
    engine = config["engine"]
    return engine if engine["backend"] == "deepspeed" else {"backend": "plain", "bf16": engine["bf16"]}


def engine_inputs():
    """The DeepSpeed JSON template, so that editing it reruns the strong runs."""
    return [config["engine"]["config"]] if config["engine"]["backend"] == "deepspeed" else []




# ---- strong stage ---------------------------------------------------------------------

STRONG_TRAINING = CLS["strong_training"]
PROBE = STRONG_TRAINING["train_layers"] == 0


def strong_runs(dataset):
    """(method, source, aux) of every strong run on `dataset`; source names the weak model,
    the ensemble, or gold for the ceiling."""
    layout = w2s_layout(dataset)
    return [(method, source, aux) for method, source in w2s_rows(layout) for aux in aux_variants_of(layout, method)]


def strong_metrics(dataset):
    return [
        f"results/classification/{dataset}/strong/{method}/{source}/{aux}/seed{seed}/metrics.json"
        for method, source, aux in strong_runs(dataset)
        for seed in config["seeds"]
    ]


def strong_predictions(dataset):
    return [path.replace("metrics.json", "predictions.parquet") for path in strong_metrics(dataset)]


def members_of(wildcards):
    if wildcards.method == "ceiling":
        return []
    if wildcards.method == "single":
        return [wildcards.source]
    return CLS["ensembles"][wildcards.dataset][wildcards.source]


def weights_of(wildcards):
    """λ_i of Eqns 2 and 4, summing to 1; one target (ceiling, single, a label model) has weight 1."""
    members = members_of(wildcards)
    if wildcards.method in ("ceiling", "single", *LABEL_MODELS):
        return [1.0]
    if CLS["weighting"] == "fixed":
        fixed = CLS["fixed_weights"][wildcards.dataset][wildcards.source]
        return [w / sum(fixed) for w in fixed]
    return [1.0 / len(members)] * len(members)


def loss_slice(wildcards):
    """Only the loss settings this run uses, so an edit reruns only the runs it changes."""
    kind = "edl" if wildcards.method == "bayesian" else "ce"
    loss = {"kind": kind, "aux": wildcards.aux == "aux"}
    if loss["aux"]:
        loss.update(CLS["aux"])
    if kind == "edl":
        loss.update(CLS["edl"])
    return loss


def strong_params(wildcards):
    model = CLS["strong_model"]
    return canonical({
        "model_name": model,
        "model_spec": config["models"][model],
        "method": wildcards.method,
        "members": members_of(wildcards),
        "weights": weights_of(wildcards),
        "loss": loss_slice(wildcards),
        "seed": int(wildcards.seed),
        "max_length": CLS["max_length"],
        "engine": engine_slice(),
        **STRONG_TRAINING,
    })


def strong_inputs(wildcards):
    split_dir = f"results/classification/{wildcards.dataset}/splits"
    inputs = {
        "strong_train": f"{split_dir}/strong_train.parquet",
        "val": f"{split_dir}/val.parquet",
        "test": f"{split_dir}/test.parquet",
        # a label model's method reads its ensemble's label-model file, the others the weak labels
        "weak_labels": [label_models_file(wildcards.dataset, wildcards.source, wildcards.seed)]
        if wildcards.method in LABEL_MODELS else [
            f"results/classification/{wildcards.dataset}/weak/{m}/seed{wildcards.seed}/labels.parquet"
            for m in members_of(wildcards)
        ],
        "engine_config": engine_inputs(),
    }
    if wildcards.method == "ceiling":
        inputs["gold"] = [f"{split_dir}/{split}_gold.parquet" for split in ("strong_train", "val")]
    if PROBE:
        features = f"results/classification/{wildcards.dataset}/strong/features/{CLS['strong_model']}"
        inputs["features"] = f"{features}.parquet"
        inputs["features_info"] = f"{features}.json"  # the backbone's size, read beside the features
    else:
        inputs["model"] = model_inputs(CLS["strong_model"])
    return inputs


def label_models_file(dataset, ensemble, seed):
    return f"results/classification/{dataset}/label_models/{ensemble}/seed{seed}.parquet"


def label_model_methods():
    return [m for m in CLS["methods"] if m in LABEL_MODELS]


def label_model_params(wildcards):
    return canonical({"members": CLS["ensembles"][wildcards.dataset][wildcards.ensemble],
                      "methods": label_model_methods(), "class_balance": CLS["class_balance"],
                      "seed": int(wildcards.seed)})


def label_model_inputs(wildcards):
    return {
        "splits": [f"results/classification/{wildcards.dataset}/splits/{s}.parquet" for s in ("strong_train", "val")],
        "weak_labels": [f"results/classification/{wildcards.dataset}/weak/{m}/seed{wildcards.seed}/labels.parquet"
                        for m in CLS["ensembles"][wildcards.dataset][wildcards.ensemble]],
    }


def features_arg(wildcards):
    return strong_inputs(wildcards).get("features", "")


def gold_arg(wildcards):
    return strong_inputs(wildcards).get("gold", [])


def features_params(wildcards):
    return canonical({"model_spec": config["models"][wildcards.model], "max_length": CLS["max_length"],
                      "dataset": wildcards.dataset, "head": STRONG_TRAINING["head"], "bf16": config["engine"]["bf16"]})


def w2s_layout(dataset):
    """Which rows and columns a data set's W2S results have."""
    return {
        "weak_models": CLS["weak_models"][dataset],
        "ensembles": CLS["ensembles"].get(dataset, {}),
        "methods": CLS["methods"],
        "aux_variants": CLS["aux_variants"],
    }


def w2s_layout_params(dataset):
    return canonical(w2s_layout(dataset))


def w2s_table_params(name, dataset):
    return canonical({"format": config["tables"][name], **w2s_layout(dataset)})


# Table 2 is SciQ's and Table 7 Cosmos QA's, as in the paper; SLURP intents (the CPU-sized
# classification task, not in the paper) get a table of the same layout.
W2S_TABLES = {"table2": "sciq", "table7": "cosmosqa", "table_slurp_intent": "slurp_intent"}


def w2s_tables():
    return {name: dataset for name, dataset in W2S_TABLES.items() if dataset in CLS["datasets"]}


# ---- generation track ------------------------------------------------------------------

GEN = config.get("generation")
# generation.seeds, where set, replaces seeds for the generation track (its runs cost more)
GEN_SEEDS = (GEN or {}).get("seeds") or config["seeds"]


def generation_split_data(wildcards):
    return {split: DATA_FILES[f"slurp.{split}"] for split in ("train", "test")}


def generation_split_params(wildcards):
    return canonical({
        "train": config["data"]["slurp"]["train"],
        "test": config["data"]["slurp"]["test"],
        "sizes": GEN["split_sizes"],
        "split_seed": config["split_seed"],
    })


def weak_generation_params(wildcards):
    return canonical({
        "model_name": wildcards.model,
        "model_spec": config["models"][wildcards.model],
        "seed": int(wildcards.seed),
        "prompt": GEN["prompt"],
        "weak_beams": GEN["weak_beams"],
        "max_new_tokens": GEN["max_new_tokens"],
        "engine": {"bf16": config["engine"]["bf16"]},
        **GEN["weak_training"],
    })


def gen_model_dir(model, seed):
    return f"results/generation/weak/{model}/seed{seed}/model"


def gen_hypotheses(model, seed):
    return f"results/generation/weak/{model}/seed{seed}/hypotheses.parquet"


def mapping_params(wildcards):
    return canonical({
        "strong_model": GEN["strong_model"],
        "strong_spec": config["models"][GEN["strong_model"]],
        "prompt": GEN["prompt"],
        "weighting": GEN["mapping"]["weighting"],
        "bf16": config["engine"]["bf16"],
    })


def mapping_inputs(wildcards):
    return {
        "model": model_inputs(GEN["strong_model"]),
        "strong_train": "results/generation/splits/strong_train.parquet",
        "val": "results/generation/splits/val.parquet",
        "hypotheses": gen_hypotheses(wildcards.model, wildcards.seed),
    }


def joint_weights(members, ensemble):
    """λ_i of Joint Decoding: fixed weights when configured, else 1/N (dynamic weights need one
    hypothesis per member, and Joint Decoding scores many)."""
    if GEN["weighting"] == "fixed":
        fixed = GEN["fixed_weights"][ensemble]
        return [w / sum(fixed) for w in fixed]
    return [1.0 / len(members)] * len(members)


# Table 10 (Appendix G.1): Joint Decoding whose candidates come from some weak models and
# whose scores from others; each subset is a Joint Decoding "ensemble" of its own name.
JD_SUBSETS = (GEN or {}).get("joint_decoding", {}).get("subsets", {})


def joint_roles(name):
    """(generators, judges) of an ensemble, or of a Table 10 subset."""
    if name in JD_SUBSETS:
        return JD_SUBSETS[name]["generators"], JD_SUBSETS[name]["judges"]
    return GEN["ensembles"][name], GEN["ensembles"][name]


def joint_params(wildcards):
    generators, judges = joint_roles(wildcards.ensemble)
    weights = joint_weights(judges, wildcards.ensemble) if wildcards.ensemble in GEN["ensembles"] else \
        [1.0 / len(judges)] * len(judges)
    return canonical({"members": judges, "weights": weights, "generators": generators,
                      "prompt": GEN["prompt"], "m": int(wildcards.m)})


def joint_inputs(wildcards):
    generators, judges = joint_roles(wildcards.ensemble)
    return {
        "strong_train": "results/generation/splits/strong_train.parquet",
        "val": "results/generation/splits/val.parquet",
        "hypotheses": [gen_hypotheses(m, wildcards.seed) for m in generators],
        "weak_models": [gen_model_dir(m, wildcards.seed) for m in judges],
    }


# A strong run's method wildcard is a method, or method-variant for the ablations:
# bayesian-{full,target,onehot} (Table 8), bayesian-{average,dynamic,fixed} (Table 9),
# jointdecoding-m{M} (Table 11).
SOFT_LABEL_KINDS = ("full", "target", "onehot")
WEIGHTINGS = ("average", "dynamic", "fixed")


def gen_method(method):
    """(base method, settings it overrides) of a method wildcard."""
    base, _, variant = method.partition("-")
    if variant in SOFT_LABEL_KINDS:
        return base, {"soft_labels": variant}
    if variant in WEIGHTINGS:
        return base, {"weighting": variant}
    if variant.startswith("m"):
        return base, {"jd_m": int(variant[1:])}
    return base, {}


def gen_members(method, source):
    base, _ = gen_method(method)
    if base == "ceiling":
        return []
    if base == "single":
        return [source]
    if source in JD_SUBSETS:  # the weak models a Table 10 run draws on: PGR is against them
        generators, judges = joint_roles(source)
        return list(dict.fromkeys(generators + judges))
    return GEN["ensembles"][source]


def gen_settings(method):
    """Soft-label kind, weighting and Joint Decoding M of a run: the config's, or its variant's."""
    _, overrides = gen_method(method)
    return {
        "soft_labels": overrides.get("soft_labels", GEN["soft_labels"]["kind"]),
        "weighting": overrides.get("weighting", GEN["weighting"]),
        "jd_m": overrides.get("jd_m", GEN["joint_decoding"]["m"]),
    }


def gen_weights(method, source):
    members = gen_members(method, source)
    base, _ = gen_method(method)
    if base in ("ceiling", "single", "jointdecoding"):
        return [1.0]
    if gen_settings(method)["weighting"] == "fixed":
        fixed = GEN["fixed_weights"][source]
        return [w / sum(fixed) for w in fixed]
    return [1.0 / len(members)] * len(members)


def gen_strong_params(wildcards):
    base, _ = gen_method(wildcards.method)
    settings = gen_settings(wildcards.method)
    kind = "edl" if base == "bayesian" else "ce"
    loss = {"kind": kind, "aux": wildcards.aux == "aux", "balanced_threshold": False}
    if loss["aux"]:
        loss.update(GEN["aux"])
    if kind == "edl":
        loss.update(GEN["edl"])
    # hard targets (ceiling, Joint Decoding) have no soft labels: keep their params free of them
    soft = {"kind": settings["soft_labels"], "min_prob": GEN["soft_labels"]["min_prob"]}
    if base in ("ceiling", "jointdecoding"):
        soft = {"kind": "onehot", "min_prob": GEN["soft_labels"]["min_prob"]}
    multi = base in ("naive", "bayesian")
    return canonical({
        "model_name": GEN["strong_model"],
        "model_spec": config["models"][GEN["strong_model"]],
        "seed": int(wildcards.seed),
        "prompt": GEN["prompt"],
        "method": base,
        "members": gen_members(wildcards.method, wildcards.source),
        "weighting": settings["weighting"] if multi else "average",
        "weights": gen_weights(wildcards.method, wildcards.source),
        "loss": loss,
        "soft_labels": soft,
        "decoding": GEN["decoding"],
        "engine": engine_slice(),
        **GEN["strong_training"],
    })


def gen_strong_inputs(wildcards):
    base, _ = gen_method(wildcards.method)
    inputs = {
        "model": model_inputs(GEN["strong_model"]),
        "strong_train": "results/generation/splits/strong_train.parquet",
        "val": "results/generation/splits/val.parquet",
        "test": "results/generation/splits/test.parquet",
        "engine_config": engine_inputs(),
        "mapped": [],
    }
    if base == "ceiling":
        inputs["gold"] = [f"results/generation/splits/{split}_gold.parquet" for split in ("strong_train", "val")]
    elif base == "jointdecoding":
        m = gen_settings(wildcards.method)["jd_m"]
        inputs["joint"] = f"results/generation/joint/{wildcards.source}/m{m}/seed{wildcards.seed}.parquet"
    else:
        inputs["mapped"] = [f"results/generation/mapped/{m}/seed{wildcards.seed}.parquet"
                            for m in gen_members(wildcards.method, wildcards.source)]
    return inputs


def gen_joint_arg(wildcards):
    return gen_strong_inputs(wildcards).get("joint", "")


def gen_gold_arg(wildcards):
    return gen_strong_inputs(wildcards).get("gold", [])


def gen_layout():
    return {
        "weak_models": GEN["weak_models"],
        "ensembles": GEN["ensembles"],
        "methods": GEN["methods"],
        "aux_variants": GEN["aux_variants"],
        "aux_methods": GEN.get("aux_methods"),
    }


def gen_run(method, source, aux, seed):
    return f"results/generation/strong/{method}/{source}/{aux}/seed{seed}/metrics.json"


def gen_ceiling_metrics():
    return [gen_run("ceiling", "gold", "noaux", seed) for seed in GEN_SEEDS]


def gen_strong_metrics():
    """Table 4's strong runs: the ceiling, then every method, source and aux variant."""
    layout = gen_layout()
    return gen_ceiling_metrics() + [
        gen_run(method, source, aux, seed)
        for method, source in w2s_rows(layout) if method != "ceiling"
        for aux in aux_variants_of(layout, method)
        for seed in GEN_SEEDS
    ]


# Ablations (Tables 8, 9, 11) run on the largest ensemble, without the auxiliary loss.
ABLATION_VARIANTS = {
    "table8": ("soft_labels", "bayesian", [f"bayesian-{k}" for k in ("onehot", "target", "full")]),
    "table9": ("weighting", "bayesian", [f"bayesian-{w}" for w in WEIGHTINGS]),
    "table11": ("jd_m", "jointdecoding", [f"jointdecoding-m{m}" for m in (3, 5, 10)]),
}


def ablation_ensemble():
    return max(GEN["ensembles"], key=lambda name: len(GEN["ensembles"][name]))


def ablation_method(variant):
    """A variant equal to the config's own setting is the main run: it is not trained twice."""
    base, _ = gen_method(variant)
    return base if gen_settings(variant) == gen_settings(base) else variant


def ablation_rows(table):
    """(label, metrics files over seeds) per row of an ablation table."""
    if table == "table10":
        main = ablation_ensemble()
        return [(f"{main}: every member generates and judges",
                 [gen_run(ablation_method("jointdecoding"), main, "noaux", seed) for seed in GEN_SEEDS])] + [
            (f"{name}: generators {'+'.join(s['generators'])}; judges {'+'.join(s['judges'])}",
             [gen_run("jointdecoding", name, "noaux", seed) for seed in GEN_SEEDS]) for name, s in JD_SUBSETS.items()]
    _, _, variants = ABLATION_VARIANTS[table]
    return [(variant.partition("-")[2],
             [gen_run(ablation_method(variant), ablation_ensemble(), "noaux", seed) for seed in GEN_SEEDS])
            for variant in variants]


def ablation_tables():
    if "generation" not in config["tracks"] or not GEN["ensembles"]:
        return []
    tables = [table for table, (name, _, _) in ABLATION_VARIANTS.items() if name in GEN["ablations"]]
    return tables + (["table10"] if JD_SUBSETS else [])


def ablation_inputs(wildcards):
    return [path for _, paths in ablation_rows(wildcards.table) for path in paths]


def gen_table_params(name):
    """Table 4's (or, with None, the PGR figure's) layout and format."""
    params = {**gen_layout(), "metric": "slu_f1"}
    if name:
        params["format"] = config["tables"][name]
    return canonical(params)


def ablation_params(table):
    return canonical({"format": config["tables"][table], "rows": ablation_rows(table)})


def weak_generation_metrics():
    if "generation" not in config["tracks"]:
        return []
    return [f"results/generation/weak/{model}/seed{seed}/metrics.json" for model in GEN["weak_models"] for seed in GEN_SEEDS]


DATASET_TITLES = {"sciq": "SciQ", "cosmosqa": "Cosmos QA", "slurp_intent": "SLURP intents"}


def dataset_title(wildcards):
    return DATASET_TITLES[wildcards.dataset]


def weak_labels_all(wildcards):
    return [
        f"results/classification/{wildcards.dataset}/weak/{model}/seed{seed}/labels.parquet"
        for model in CLS["weak_models"][wildcards.dataset]
        for seed in config["seeds"]
    ]


def weak_hypotheses_all(wildcards):
    return [path.replace("metrics.json", "hypotheses.parquet") for path in weak_generation_metrics()]


def all_targets():
    targets = []
    if "classification" in config["tracks"]:
        tables = ["table1", *w2s_tables()]
        targets += [f"results/tables/{name}.{ext}" for name in tables for ext in ("csv", "md")]
        targets += [f"results/figures/fig3_{dataset}.png" for dataset in CLS["datasets"]]
        targets += [f"results/figures/{kind}_{dataset}.png" for dataset in w2s_tables().values()
                    for kind in ("pgr", "reliability")]
    if "generation" in config["tracks"]:
        tables = ["table3", "table4", *ablation_tables()]
        targets += [f"results/tables/{name}.{ext}" for name in tables for ext in ("csv", "md")]
        targets += ["results/figures/fig3_slurp.png", "results/figures/pgr_slurp.png"]
    targets += cdpo_targets()
    return targets


# ---- cDPO (Section 4.2, Table 5) ---------------------------------------------------------


def cdpo_enabled():
    return "generation" in config["tracks"] and GEN["cdpo"]["enabled"]


def cdpo_members():
    return GEN["ensembles"][GEN["cdpo"]["ensemble"]]


def cdpo_start_wildcards():
    """Method and aux of the strong runs that keep their weights for cDPO."""
    cdpo = GEN["cdpo"] if GEN else {"start_method": "bayesian", "start_aux": True}
    return {"method": cdpo["start_method"], "aux": "aux" if cdpo["start_aux"] else "noaux"}


def cdpo_start(seed):
    """The strong run cDPO starts from: Bayesian Multi-Weak with aux on the ensemble, by default."""
    cdpo = GEN["cdpo"]
    aux = "aux" if cdpo["start_aux"] else "noaux"
    return f"results/generation/strong/{cdpo['start_method']}/{cdpo['ensemble']}/{aux}/seed{seed}"


def cdpo_params(wildcards):
    cdpo = {key: value for key, value in GEN["cdpo"].items() if key != "enabled"}
    members = cdpo_members()
    return canonical({
        **cdpo,
        "seed": int(wildcards.seed),
        "members": members,
        # λ_i of Eqn 8, one per model as in Joint Decoding (dynamic weights are per utterance)
        "weights": joint_weights(members, wildcards.ensemble),
        "prompt": GEN["prompt"],
        # test decoding before and after, as the strong stage decodes
        "test_beams": GEN["decoding"]["beams"],
        "max_new_tokens": GEN["decoding"]["max_new_tokens"],
        "engine": engine_slice(),
    })


def cdpo_inputs(wildcards):
    return {
        "start_model": f"{cdpo_start(wildcards.seed)}/model",
        "weak_models": [gen_model_dir(m, wildcards.seed) for m in cdpo_members()],
        "strong_train": "results/generation/splits/strong_train.parquet",
        "test": "results/generation/splits/test.parquet",
        "engine_config": engine_inputs(),
    }


def cdpo_metrics():
    if not cdpo_enabled():
        return []
    return [f"results/generation/cdpo/{GEN['cdpo']['ensemble']}/seed{seed}/metrics.json" for seed in GEN_SEEDS]


def cdpo_weak_metrics():
    """The ensemble members' own SLU-F1: P_weak of Table 5's PGR."""
    if not cdpo_enabled():
        return []
    return [f"results/generation/weak/{m}/seed{seed}/metrics.json" for m in cdpo_members() for seed in GEN_SEEDS]


def cdpo_ceiling_metrics():
    return gen_ceiling_metrics() if cdpo_enabled() else []


def cdpo_targets():
    return [f"results/tables/table5.{ext}" for ext in ("csv", "md")] if cdpo_enabled() else []
