import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ws2s import schemas
from ws2s.config import SplitConfig
from ws2s.errors import Ws2sError
from ws2s.inspect import inspect
from ws2s.io import write_parquet
from ws2s.stages.classification_splits import write_classification_splits


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    """A results/classification/{dataset} layout with splits and one weak model's labels."""
    root = tmp_path_factory.mktemp("results") / "classification" / "cosmosqa"
    write_classification_splits(SplitConfig("cosmosqa", {"source": str(data_dir / "cosmosqa" / "valid.csv")},
                                            {"weak_train": 8, "strong_train": 8, "test": 10}, 0), root / "splits")
    test = pd.read_parquet(root / "splits" / "test.parquet")
    p1 = np.where(test["label"] == 1, 0.8, 0.3).astype(np.float32)
    p1[0] = 1 - p1[0]  # one mistake: 90% accuracy
    labels = pd.DataFrame({"id": test["id"], "split": "test", "prob_0": 1 - p1, "prob_1": p1,
                           "pred": (p1 > 0.5).astype(np.int8)})
    write_parquet(labels, root / "weak" / "m" / "seed0" / "labels.parquet", schemas.CLASS_PROBS)
    return root


def test_class_probabilities_with_accuracy_against_gold(run_dir):
    text = inspect(run_dir / "weak" / "m" / "seed0" / "labels.parquet")
    assert "class probabilities, 10 rows" in text and "schema: id string, split string, prob_0 float" in text
    assert "accuracy against gold on test: 90.0% (10 rows)" in text
    assert "[0.7, 0.8)" in text and "mean confidence" in text


def test_pairs_and_id_filter(run_dir):
    text = inspect(run_dir / "splits" / "test.parquet", head=2)
    assert "classification pairs, 10 rows" in text and "label 1 share: 50.0%" in text
    one = pd.read_parquet(run_dir / "splits" / "test.parquet")["id"].iloc[3]
    assert one in inspect(run_dir / "splits" / "test.parquet", example_id=one)
    assert "without gold" in inspect(run_dir / "splits" / "strong_train.parquet")
    with pytest.raises(Ws2sError, match="no row with id nope"):
        inspect(run_dir / "splits" / "test.parquet", example_id="nope")


def test_generations_aligned_under_the_text(tmp_path):
    frame = pd.DataFrame([{"id": "a", "split": "test", "text": '{"date": "today"}', "valid_json": True,
                           "token_ids": [1, 2, 3], "tokens": ['{"', 'date": "', 'today"}'],
                           "token_logprobs": np.log([0.9, 0.5, 0.25]).astype(np.float32),
                           "words": ['{"date', '": "today"}'], "word_logprobs": np.log([0.45, 0.25]).astype(np.float32),
                           "nbest": ['{"date": "today"}', "{}"], "nbest_scores": np.array([-0.5, -0.9], np.float32)}])
    path = tmp_path / "hypotheses.parquet"
    write_parquet(frame, path, schemas.HYPOTHESES)
    text = inspect(path)
    assert "weak generations, 1 rows" in text and "valid JSON: 100.0%" in text
    assert "0.90 | 0.50" in text and "0.45" in text and "2-best" in text


def test_unknown_and_malformed_files_one_error(tmp_path):
    other = tmp_path / "other.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(other)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    for path, message in ((other, "match no ws2s file kind"), (bad, "not a readable Parquet file")):
        run = subprocess.run([sys.executable, "-m", "ws2s.cli", "inspect", str(path)], capture_output=True, text=True)
        assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr


def test_preference_pairs_show_chosen_rejected_and_every_judge(tmp_path):
    frame = pd.DataFrame([{"id": "u1", "sentence": "wake me at five", "candidates": ['{"time": "five"}', "{}", "{time"],
                           "candidate_scores": [-1.5, -3.0, -7.25], "chosen": '{"time": "five"}', "rejected": "{time",
                           "chosen_score": -1.5, "rejected_score": -7.25, "judges": ["weak-a", "weak-b"],
                           "judge_weights": [0.5, 0.5], "chosen_weak_scores": [-1.25, -2.5],
                           "rejected_weak_scores": [-6.5, -9.0], "ref_chosen": -4.125, "ref_rejected": -8.5}])
    path = tmp_path / "pairs.parquet"
    write_parquet(frame, path, schemas.PREFERENCE_PAIRS)
    text = inspect(path)
    assert "preference pairs, 1 rows" in text
    assert "valid JSON: chosen 100.0%, rejected 0.0%; mean ensemble score gap 5.750" in text
    lines = [line.split() for line in text.splitlines()]
    assert ["chosen", "-1.500", '{"time":', '"five"}'] in lines and ["rejected", "-7.250", "{time"] in lines
    assert "weak-a (λ=0.50) -1.250 / -6.500; weak-b (λ=0.50) -2.500 / -9.000" in text
    assert "chosen -4.125, rejected -8.500" in text
