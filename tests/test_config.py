import copy
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from ws2s.config import canonical
from ws2s.configfile import load, validate
from ws2s.errors import Ws2sError

CONFIGS = ROOT / "workflow" / "configs"
# each shipped overlay with what it goes on top of: the bench extends the embedded default
OVERLAYS = [[CONFIGS / "small.yaml", CONFIGS / "bench.yaml"] if p.name == "bench.yaml" else [p]
            for p in sorted(CONFIGS.glob("*.yaml"))]


PAPER = yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.fixture
def paper():
    return copy.deepcopy(PAPER)


def test_paper_config_valid_with_defaults(paper):
    config = validate(paper)
    assert config["split_seed"] == 0
    assert config["classification"]["weak_training"]["train_layers"] == "all"


@pytest.mark.parametrize("overlays", OVERLAYS, ids=lambda ps: ps[-1].name)
def test_overlays_valid(overlays):
    load(ROOT / "config.yaml", *overlays)


def _error(config) -> str:
    with pytest.raises(Ws2sError) as info:
        validate(config)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_key_named(paper):
    paper["classification"]["weak_training"]["learning_rate"] = 1e-4
    msg = _error(paper)
    assert "classification.weak_training.learning_rate" in msg and "allowed keys here" in msg and "lr" in msg


def test_bad_value_named_with_what_is_allowed(paper):
    paper["classification"]["weak_training"]["epochs"] = 0
    msg = _error(paper)
    assert "classification.weak_training.epochs" in msg and "0" in msg and "minimum" in msg


def test_bad_enum_lists_allowed(paper):
    paper["classification"]["datasets"] = ["sciq", "imdb"]
    msg = _error(paper)
    assert "classification.datasets.1" in msg and "'imdb'" in msg and "(sciq, cosmosqa)" in msg


def test_odd_split_size(paper):
    paper["classification"]["split_sizes"]["test"] = 999
    assert "classification.split_sizes.test" in _error(paper)


def test_bad_model_spec(paper):
    paper["models"]["gpt2-large"] = {"hub": "x", "path": "y"}
    msg = _error(paper)
    assert "models.gpt2-large" in msg and "{hub}" in msg


def test_unknown_model_reference(paper):
    paper["classification"]["strong_model"] = "qwen-70b"
    msg = _error(paper)
    assert "classification.strong_model" in msg and "qwen-70b" in msg


def test_ensemble_member_must_be_a_weak_model(paper):
    paper["classification"]["ensembles"]["cosmosqa"]["ws3"] = ["gpt2-large", "bloom-1b1"]
    msg = _error(paper)
    assert "classification.ensembles.cosmosqa.ws3" in msg and "bloom-1b1" in msg


def test_lr_override_must_name_a_weak_model(paper):
    paper["classification"]["weak_training"]["lr_per_model"] = {"gpt2-larg": 1e-4}
    assert "classification.weak_training.lr_per_model.gpt2-larg" in _error(paper)


def test_fixed_weights_checked(paper):
    paper["classification"]["weighting"] = "fixed"
    paper["classification"]["fixed_weights"] = {"sciq": {"ws3": [1, 1, 1], "ws5": [1, 2]}}
    msg = _error(paper)
    assert "classification.fixed_weights.sciq.ws5" in msg and "5 weights" in msg
    paper["classification"]["fixed_weights"] = {"sciq": {"ws4": [1, 1, 1, 1]}}
    assert "classification.fixed_weights.sciq.ws4' names no ensemble" in _error(paper)


def test_canonical_ignores_key_order():
    assert canonical({"a": 1, "b": {"c": 2, "d": 3}}) == canonical({"b": {"d": 3, "c": 2}, "a": 1})


def test_cli_exit_code_and_one_line(tmp_path, paper):
    paper["seeds"] = "zero"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(paper))
    run = subprocess.run([sys.executable, "-m", "ws2s.cli", "validate", str(bad)], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [run.stderr.strip()]
    assert "config key 'seeds'" in run.stderr and '"zero"' in run.stderr


def test_nested_stage_configs_are_typed_and_a_bad_one_is_named():
    from ws2s.config import DecodingConfig, EngineConfig, LossConfig, SoftLabelConfig, StrongGenerationConfig

    params = {"model_name": "m", "model_spec": {}, "seed": 0, "prompt": "short", "method": "bayesian", "target": "mapped",
              "source": "ws2",
              "members": ["a", "b"], "weighting": "average", "weights": [0.5, 0.5],
              "loss": {"kind": "edl", "kl_weight": 1e-5}, "soft_labels": {"kind": "full", "min_prob": 1e-4},
              "epochs": 1, "batch_size": 4, "lr": 1e-4, "train_layers": 4, "decoding": {"beams": 1, "max_new_tokens": 8},
              "engine": {"backend": "plain", "bf16": True}}
    cfg = StrongGenerationConfig.from_params(params)
    assert cfg.loss == LossConfig(kind="edl", kl_weight=1e-5)
    assert cfg.soft_labels == SoftLabelConfig("full", 1e-4) and cfg.decoding == DecodingConfig(1, 8)
    assert cfg.engine == EngineConfig(backend="plain", bf16=True)
    with pytest.raises(Ws2sError, match=r"StrongGenerationConfig.decoding does not fit DecodingConfig.*'width'"):
        StrongGenerationConfig.from_params({**params, "decoding": {"width": 1}})
