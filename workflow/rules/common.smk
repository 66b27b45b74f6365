# Config validation, config lookups and input functions; rules hold no logic of their own.
import sys

from ws2s.config import canonical, validate
from ws2s.errors import Ws2sError
from ws2s.models import needs_preparation

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


def weak_model_input(wildcards):
    return model_inputs(wildcards.model)


def weak_metrics_all():
    return [
        f"results/classification/{dataset}/weak/{model}/seed{seed}/metrics.json"
        for dataset in CLS["datasets"]
        for model in CLS["weak_models"][dataset]
        for seed in config["seeds"]
    ]


def table_params(name):
    return canonical(config["tables"][name])


def all_targets():
    return ["results/tables/table1.csv", "results/tables/table1.md"]
