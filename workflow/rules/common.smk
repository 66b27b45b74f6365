# Config validation, config lookups and input functions; rules hold no logic of their own.
import os
import sys

from ws2s.codeversion import code_version
from ws2s.config import canonical, validate
from ws2s.errors import Ws2sError
from ws2s.models import needs_preparation
from ws2s.tables import w2s_rows

try:
    validate(config)
except Ws2sError as err:
    sys.exit(f"ws2s: config error: {err}")


wildcard_constraints:
    dataset="sciq|cosmosqa",
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
    """The engine settings a strong run uses; under plain PyTorch the DeepSpeed ones are moot."""
    engine = config["engine"]
    return engine if engine["backend"] == "deepspeed" else {"backend": "plain"}


def engine_inputs():
    """The DeepSpeed JSON template, so that editing it reruns the strong runs."""
    return [config["engine"]["config"]] if config["engine"]["backend"] == "deepspeed" else []




# ---- strong stage ---------------------------------------------------------------------

STRONG_TRAINING = CLS["strong_training"]
PROBE = STRONG_TRAINING["train_layers"] == 0


def strong_runs(dataset):
    """(method, source, aux) of every strong run on `dataset`; source names the weak model,
    the ensemble, or gold for the ceiling."""
    rows = w2s_rows(w2s_layout(dataset))
    return [("ceiling", "gold", "noaux")] + [
        (method, source, aux) for method, source in rows if method != "ceiling" for aux in CLS["aux_variants"]
    ]


def strong_metrics(dataset):
    return [
        f"results/classification/{dataset}/strong/{method}/{source}/{aux}/seed{seed}/metrics.json"
        for method, source, aux in strong_runs(dataset)
        for seed in config["seeds"]
    ]


def members_of(wildcards):
    if wildcards.method == "ceiling":
        return []
    if wildcards.method == "single":
        return [wildcards.source]
    return CLS["ensembles"][wildcards.dataset][wildcards.source]


def weights_of(wildcards):
    """λ_i of Eqns 2 and 4, summing to 1; one target (ceiling, single, Flying Squid) has weight 1."""
    members = members_of(wildcards)
    if wildcards.method in ("ceiling", "single", "flyingsquid"):
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
        "test": f"{split_dir}/test.parquet",
        "weak_labels": [
            f"results/classification/{wildcards.dataset}/weak/{m}/seed{wildcards.seed}/labels.parquet"
            for m in members_of(wildcards)
        ],
        "engine_config": engine_inputs(),
    }
    if wildcards.method == "ceiling":
        inputs["gold"] = f"{split_dir}/strong_train_gold.parquet"
    if PROBE:
        features = f"results/classification/{wildcards.dataset}/strong/features/{CLS['strong_model']}"
        inputs["features"] = f"{features}.parquet"
        inputs["features_info"] = f"{features}.json"  # the backbone's size, read beside the features
    else:
        inputs["model"] = model_inputs(CLS["strong_model"])
    return inputs


def features_arg(wildcards):
    return strong_inputs(wildcards).get("features", "")


def gold_arg(wildcards):
    return strong_inputs(wildcards).get("gold", "")


def features_params(wildcards):
    return canonical({"model_spec": config["models"][wildcards.model], "max_length": CLS["max_length"]})


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


# Table 2 is SciQ's and Table 7 Cosmos QA's, as in the paper.
W2S_TABLES = {"table2": "sciq", "table7": "cosmosqa"}


def w2s_tables():
    return {name: dataset for name, dataset in W2S_TABLES.items() if dataset in CLS["datasets"]}


# ---- generation track ------------------------------------------------------------------

GEN = config.get("generation")


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
        "beams": GEN["beams"],
        "max_new_tokens": GEN["max_new_tokens"],
        **GEN["weak_training"],
    })


def weak_generation_metrics():
    if "generation" not in config["tracks"]:
        return []
    return [f"results/generation/weak/{model}/seed{seed}/metrics.json" for model in GEN["weak_models"] for seed in config["seeds"]]


DATASET_TITLES = {"sciq": "SciQ", "cosmosqa": "Cosmos QA"}


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
        targets += [f"results/figures/pgr_{dataset}.png" for dataset in w2s_tables().values()]
    if "generation" in config["tracks"]:
        targets += weak_generation_metrics() + ["results/figures/fig3_slurp.png"]
    return targets
