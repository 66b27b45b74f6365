import json

import numpy as np
import pandas as pd
import pytest

from ws2s import schemas
from ws2s.config import GenerationSplitConfig, WeakGenerationConfig
from ws2s.data.slurp import parse_slots
from ws2s.errors import Ws2sError
from ws2s.stages.generation_splits import write_generation_splits
from ws2s.stages.weak_generate import run_weak_generation, slu_scores
from ws2s.train.generate import load_causal


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("gen_splits")
    cfg = GenerationSplitConfig(str(data_dir / "slurp" / "devel.jsonl"), str(data_dir / "slurp" / "test.jsonl"),
                                {"weak_train": 12, "strong_train": 6, "test": 5, "val": 4}, 0)
    assert write_generation_splits(cfg, out) == {"weak_train": 12, "strong_train": 6, "test": 5, "val": 4}
    return out


def test_splits_disjoint_and_strong_train_without_targets(split_dir):
    weak = pd.read_parquet(split_dir / "weak_train.parquet")
    strong = pd.read_parquet(split_dir / "strong_train.parquet")
    assert list(strong.columns) == ["id", "slurp_id", "sentence"]
    assert not set(weak["id"]) & set(strong["id"])
    gold = pd.read_parquet(split_dir / "strong_train_gold.parquet")
    assert set(gold["id"]) == set(strong["id"]) and all(parse_slots(t) is not None for t in gold["target"])
    val = pd.read_parquet(split_dir / "val.parquet")
    assert list(val.columns) == ["id", "slurp_id", "sentence"] and len(val) == 4
    assert not set(val["id"]) & (set(weak["id"]) | set(strong["id"]))
    assert set(pd.read_parquet(split_dir / "val_gold.parquet")["id"]) == set(val["id"])


def test_split_sizes_checked(data_dir, tmp_path):
    cfg = GenerationSplitConfig(str(data_dir / "slurp" / "devel.jsonl"), str(data_dir / "slurp" / "test.jsonl"),
                                {"weak_train": 2000, "strong_train": 2000, "test": 0}, 0)
    with pytest.raises(Ws2sError, match="generation.split_sizes: the training utterances number 2033"):
        write_generation_splits(cfg, tmp_path)


def test_weak_generation_stage(tiny_llama, split_dir, tmp_path):
    cfg = WeakGenerationConfig(model_name="tiny", model_spec={"path": tiny_llama}, seed=0, prompt="short", epochs=1,
                               batch_size=4, lr=1e-3, val_fraction=0.25, train_layers="all", weak_beams=2, max_new_tokens=6)
    metrics = run_weak_generation(cfg, tiny_llama, split_dir, tmp_path / "h.parquet", tmp_path / "m.json", tmp_path / "model")
    hyps = pd.read_parquet(tmp_path / "h.parquet")
    assert list(hyps.columns) == [f.name for f in schemas.HYPOTHESES]
    assert (hyps["split"] == "strong_train").sum() == 6 and (hyps["split"] == "test").sum() == 5
    for row in hyps.itertuples():
        assert "".join(row.tokens) == row.text == "".join(row.words)
        assert len(row.token_ids) == len(row.token_logprobs)
        assert np.sum(row.word_logprobs) == pytest.approx(np.sum(row.token_logprobs), abs=1e-4)
        assert len(row.nbest) == 2 and row.nbest[0] == row.text
        assert row.valid_json == (parse_slots(row.text) is not None)
    assert metrics["invalid_json"] == int((~hyps[hyps["split"] == "test"]["valid_json"]).sum())
    assert json.loads((tmp_path / "m.json").read_text())["n_test"] == 5
    load_causal(str(tmp_path / "model"))  # the finetuned checkpoint reloads


def test_slu_scores_count_invalid_json_as_no_slots(split_dir):
    test = pd.read_parquet(split_dir / "test.parquet")
    perfect = slu_scores(test, list(test["target"]))
    n_entities = sum(len(json.loads(g)) for g in test["gold_entities"])
    assert n_entities > 0
    assert perfect["invalid_json"] == 0 and perfect["slu_f1"] == pytest.approx(1.0)
    broken = slu_scores(test, ["{not json"] * len(test))
    assert broken["invalid_json"] == len(test) and broken["slu_f1"] == 0.0
