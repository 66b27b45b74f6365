"""The experiment design (ws2s/design.py): member weights, method variants, losses, run params."""

import json
import re

import pytest
from conftest import ROOT

from ws2s import design
from ws2s.configfile import load


@pytest.fixture
def smoke():
    """The smoke config as the workflow sees it: config.yaml overlaid by smoke.yaml, with defaults."""
    return load(ROOT / "config.yaml", ROOT / "workflow" / "configs" / "smoke.yaml")


def params(config, rule, **wildcards):
    return json.loads(design.run_params(config, rule, **wildcards))


def test_member_weights_fixed_normalised_else_one_over_n():
    assert design.member_weights(["a", "b"], "fixed", [1, 3]) == [0.25, 0.75]
    assert design.member_weights(["a", "b", "c", "d"], "average", None) == [0.25] * 4
    # dynamic weights are per example: the params carry 1/N, not the fixed weights
    assert design.member_weights(["a", "b"], "dynamic", [1, 3]) == [0.5, 0.5]


def test_strong_weights_classification(smoke):
    cosmos = dict(dataset="cosmosqa")
    assert design.strong_weights(smoke, "ceiling", "gold", **cosmos) == [1.0]
    assert design.strong_weights(smoke, "single", "minilm-l1", **cosmos) == [1.0]
    assert design.strong_weights(smoke, "flyingsquid", "ws3", **cosmos) == [1.0]  # one label model's target
    assert design.strong_weights(smoke, "naive", "ws3", **cosmos) == [1 / 3] * 3
    smoke["classification"].update(weighting="fixed", fixed_weights={"cosmosqa": {"ws3": [1, 1, 2]}})
    assert design.strong_weights(smoke, "bayesian", "ws3", **cosmos) == [0.25, 0.25, 0.5]
    assert design.strong_weights(smoke, "single", "minilm-l1", **cosmos) == [1.0]


def test_strong_weights_generation(smoke):
    # smoke: weighting average, fixed_weights ws2: [1, 3]
    assert design.strong_weights(smoke, "bayesian", "ws2") == [0.5, 0.5]
    assert design.strong_weights(smoke, "bayesian-fixed", "ws2") == [0.25, 0.75]
    assert design.strong_weights(smoke, "jointdecoding", "ws2") == [1.0]
    assert design.strong_weights(smoke, "ceiling", "gold") == [1.0]


def test_joint_decoding_and_cdpo_weights(smoke):
    smoke["generation"]["weighting"] = "fixed"
    assert params(smoke, "joint_decode", ensemble="ws2", m="3", seed="0")["weights"] == [0.25, 0.75]
    # a Table 10 subset has no fixed weights: its one judge weighs 1
    subset = params(smoke, "joint_decode", ensemble="gemma_judges", m="3", seed="0")
    assert subset["members"] == ["gemma3-d2"] and subset["weights"] == [1.0]
    assert params(smoke, "cdpo", ensemble="ws2", seed="0")["weights"] == [0.25, 0.75]


@pytest.mark.parametrize("method, expected", [
    ("bayesian-full", ("bayesian", {"soft_labels": "full"})),
    ("bayesian-onehot", ("bayesian", {"soft_labels": "onehot"})),
    ("bayesian-dynamic", ("bayesian", {"weighting": "dynamic"})),
    ("jointdecoding-m5", ("jointdecoding", {"jd_m": 5})),
    ("jointdecoding-m7", ("jointdecoding", {"jd_m": 7})),
    ("naive", ("naive", {})),
])
def test_parse_method(method, expected):
    assert design.parse_method(method) == expected


def test_a_variant_equal_to_the_config_is_the_main_run(smoke):
    gen = smoke["generation"]  # smoke: soft labels full, weighting average, M = 3
    assert design.ablation_method(gen, "bayesian-full") == "bayesian"
    assert design.ablation_method(gen, "bayesian-average") == "bayesian"
    assert design.ablation_method(gen, "jointdecoding-m3") == "jointdecoding"
    assert design.ablation_method(gen, "bayesian-onehot") == "bayesian-onehot"
    assert design.ablation_method(gen, "bayesian-dynamic") == "bayesian-dynamic"
    assert design.ablation_method(gen, "jointdecoding-m5") == "jointdecoding-m5"


def test_ablation_rows_table11(smoke):
    run = "results/generation/strong/{}/ws2/noaux/seed0/metrics.json"
    assert design.ablation_rows(smoke, "table11") == [
        ("m3", [run.format("jointdecoding")]),
        ("m5", [run.format("jointdecoding-m5")]),
        ("m10", [run.format("jointdecoding-m10")]),
    ]


def test_loss_kind_per_method():
    kinds = {name: method.loss for name, method in design.METHODS.items()}
    assert kinds == {"ceiling": "ce", "single": "ce", "naive": "ce", "majorityvote": "ce", "dawidskene": "ce",
                     "glad": "ce", "mace": "ce", "snorkel": "ce", "flyingsquid": "ce", "jointdecoding": "ce",
                     "bayesian": "edl"}


def test_ensemble_rows_in_the_papers_order():
    assert [m for m in design.METHODS if design.METHODS[m].source == "ensemble"] == [
        "naive", "majorityvote", "dawidskene", "glad", "mace", "snorkel", "flyingsquid", "jointdecoding", "bayesian"]


def test_method_patterns():
    def matches(track, method):
        return re.fullmatch(design.method_pattern(track), method) is not None

    assert matches("classification", "majorityvote") and matches("classification", "bayesian")
    assert not matches("classification", "bayesian-full") and not matches("classification", "jointdecoding")
    assert matches("generation", "bayesian-full") and matches("generation", "jointdecoding-m10")
    assert not matches("generation", "naive-full") and not matches("generation", "snorkel")


def test_strong_classify_params_bayesian_carry_edl_naive_not(smoke):
    run = dict(dataset="cosmosqa", source="ws3", aux="noaux", seed="0")
    bayesian = params(smoke, "strong_classify", method="bayesian", **run)
    assert bayesian["loss"] == {"kind": "edl", "aux": False, "activation": "exp", "kl_weight": 1.0,
                                "kl_target": "eqn4", "centre_logits": False, "kl_clamp": None, "kl_top_k": None}
    assert bayesian["dataset"] == "cosmosqa" and bayesian["source"] == "ws3" and bayesian["target"] == "weak_labels"
    assert params(smoke, "strong_classify", method="flyingsquid", **run)["target"] == "label_model"
    assert params(smoke, "strong_classify", method="ceiling", **{**run, "source": "gold"})["target"] == "gold"
    assert bayesian["members"] == ["minilm-l1", "minilm-l2", "minilm-l3"]
    naive = params(smoke, "strong_classify", method="naive", **run)
    assert naive["loss"] == {"kind": "ce", "aux": False}
    with_aux = params(smoke, "strong_classify", method="naive", **{**run, "aux": "aux"})
    assert with_aux["loss"] == {"kind": "ce", "aux": True, "gamma_max": 0.5, "warmup_frac": 0.1,
                                "balanced_threshold": True}


def test_strong_generate_params(smoke):
    bayesian = params(smoke, "strong_generate", method="bayesian-onehot", source="ws2", aux="noaux", seed="0")
    assert bayesian["method"] == "bayesian" and bayesian["source"] == "ws2" and bayesian["target"] == "mapped"
    assert params(smoke, "strong_generate", method="jointdecoding-m3", source="ws2", aux="noaux",
                  seed="0")["target"] == "joint"
    assert bayesian["loss"] == {"kind": "edl", "aux": False, "balanced_threshold": False, "activation": "exp",
                                "kl_weight": 1.0e-4, "kl_clamp": 2.0e5, "kl_target": "eqn4", "centre_logits": True,
                                "kl_top_k": 16}
    assert bayesian["soft_labels"] == {"kind": "onehot", "min_prob": 1.0e-4}
    assert bayesian["weighting"] == "average" and bayesian["weights"] == [0.5, 0.5]
    ceiling = params(smoke, "strong_generate", method="ceiling", source="gold", aux="noaux", seed="0")
    assert ceiling["loss"] == {"kind": "ce", "aux": False, "balanced_threshold": False}
    assert ceiling["members"] == [] and ceiling["source"] == "gold" and ceiling["target"] == "gold"
    assert ceiling["soft_labels"] == {"kind": "onehot", "min_prob": 1.0e-4}  # smoke's own kind is full


def test_weak_classify_params_name_the_dataset(smoke):
    weak = params(smoke, "weak_classify", dataset="cosmosqa", model="minilm-l1", seed="0")
    assert weak["dataset"] == "cosmosqa" and weak["model_name"] == "minilm-l1" and weak["seed"] == 0


def test_tables_the_smoke_config_makes(smoke):
    assert [name for name in design.TABLES if design.makes_table(smoke, name)] == [
        "table1", "table7", "table3", "table4", "table5", "table8", "table9", "table10", "table11"]
    smoke["tracks"] = ["classification"]
    assert [name for name in design.TABLES if design.makes_table(smoke, name)] == ["table1", "table7"]
