import subprocess
import sys

import pandas as pd
import pytest

from ws2s import schemas
from ws2s.config import SplitConfig, WeakTrainConfig, canonical
from ws2s.stages.classification_splits import write_classification_splits
from ws2s.stages.weak_classify import run_weak_classification
from ws2s.train.backbone import freeze_for
from ws2s.train.classify import load_classifier


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("splits")
    cfg = SplitConfig("cosmosqa", {"source": str(data_dir / "cosmosqa" / "valid.csv")},
                      {"weak_train": 32, "strong_train": 16, "test": 16}, 0)
    write_classification_splits(cfg, out)
    return out


def _cfg(seed=0):
    return WeakTrainConfig(model_name="tiny", model_spec={"path": "x"}, dataset="cosmosqa", seed=seed, epochs=1, batch_size=8,
                           lr=1e-3, max_length=48, train_layers="all")


def test_strong_train_split_has_no_gold(split_dir):
    strong = pd.read_parquet(split_dir / "strong_train.parquet")
    assert "label" not in strong.columns
    gold = pd.read_parquet(split_dir / "strong_train_gold.parquet")
    assert list(gold.columns) == ["id", "label"] and set(gold["id"]) == set(strong["id"])


def test_weak_labels_schema_and_determinism(tiny_bert, split_dir, tmp_path):
    runs = []
    for name in ("a", "b"):
        metrics = run_weak_classification(_cfg(), tiny_bert, split_dir, tmp_path / name / "labels.parquet",
                                          tmp_path / name / "metrics.json")
        runs.append(pd.read_parquet(tmp_path / name / "labels.parquet"))
    labels = runs[0]
    assert list(labels.columns) == [f.name for f in schemas.CLASS_PROBS]
    expected_ids = pd.concat([pd.read_parquet(split_dir / f"{s}.parquet")["id"] for s in ("strong_train", "test")])
    assert labels["id"].tolist() == expected_ids.tolist()
    assert (labels["prob_0"] + labels["prob_1"] - 1).abs().max() < 1e-5
    assert (labels["pred"] == (labels["prob_1"] > labels["prob_0"])).all()
    pd.testing.assert_frame_equal(runs[0], runs[1])  # same seed, same labels
    test = pd.read_parquet(split_dir / "test.parquet")
    acc = (labels[labels["split"] == "test"]["pred"].to_numpy() == test["label"].to_numpy()).mean()
    assert metrics["test_accuracy"] == pytest.approx(acc)
    other = tmp_path / "c" / "labels.parquet"
    run_weak_classification(_cfg(seed=1), tiny_bert, split_dir, other, tmp_path / "c" / "metrics.json")
    assert not pd.read_parquet(other)["prob_1"].equals(labels["prob_1"])


def test_train_layers_freezes_embeddings_and_lower_blocks(tiny_bert):
    model, _ = load_classifier(tiny_bert)
    total = sum(p.numel() for p in model.parameters())
    assert freeze_for(model, "all") == total
    trainable = freeze_for(model, 1)
    assert not any(p.requires_grad for p in model.bert.embeddings.parameters())
    assert not any(p.requires_grad for p in model.bert.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in model.bert.encoder.layer[1].parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    assert trainable == sum(p.numel() for p in model.parameters() if p.requires_grad) < total


def test_truncated_input_one_error_no_output(tiny_bert, split_dir, tmp_path):
    broken = tmp_path / "splits"
    broken.mkdir()
    for f in split_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    data = (broken / "weak_train.parquet").read_bytes()
    (broken / "weak_train.parquet").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    params = canonical({**_cfg().__dict__, "model_spec": {"path": tiny_bert}})
    run = subprocess.run([sys.executable, "-m", "ws2s.cli", "weak-classify", "--params", params,
                          "--models-root", str(tmp_path), "--split-dir", str(broken),
                          "--out-labels", str(out / "labels.parquet"), "--out-metrics", str(out / "metrics.json")],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0
    assert "weak_train.parquet: not a readable Parquet file" in run.stderr
    assert not out.exists()
