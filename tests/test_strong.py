import numpy as np
import pandas as pd
import pytest

import ws2s.train.strong as strong
from ws2s.train.features import write_features
from ws2s import schemas
from ws2s.metrics import expected_calibration_error
from ws2s.config import SplitConfig, StrongTrainConfig
from ws2s.data.splits import write_classification_splits
from ws2s.errors import Ws2sError
from ws2s.io import write_parquet

MEMBERS = ["w0", "w1", "w2"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, data_dir, tiny_bert):
    root = tmp_path_factory.mktemp("strong")
    split_dir = root / "splits"
    write_classification_splits(SplitConfig("cosmosqa", {"source": str(data_dir / "cosmosqa" / "valid.csv")},
                                            {"weak_train": 16, "strong_train": 32, "test": 16}, 0), split_dir)
    strong_train = pd.read_parquet(split_dir / "strong_train.parquet")
    rng = np.random.default_rng(0)
    labels = {}
    for name in MEMBERS:
        p1 = rng.random(len(strong_train)).astype(np.float32)
        frame = pd.DataFrame({"id": strong_train["id"], "split": "strong_train", "prob_0": 1 - p1, "prob_1": p1,
                              "pred": (p1 > 0.5).astype(np.int8)}).sample(frac=1, random_state=1)  # shuffled rows
        labels[name] = root / f"{name}.parquet"
        write_parquet(frame, labels[name], schemas.CLASS_PROBS)
    features = root / "features" / "tiny.parquet"
    write_features(tiny_bert, split_dir, 48, features, features.with_suffix(".json"))
    return {"root": root, "split_dir": split_dir, "labels": labels, "features": features, "model": tiny_bert}


def _cfg(method, members, train_layers=0, aux=False, seed=0):
    kind = "edl" if method == "bayesian" else "ce"
    return StrongTrainConfig(model_name="tiny", model_spec={"path": "x"}, method=method, members=members,
                             weights=[1 / max(1, len(members))] * max(1, len(members)),
                             loss={"kind": kind, "aux": aux}, seed=seed, epochs=2, batch_size=8, lr=1e-2,
                             max_length=48, train_layers=train_layers)


def _run(setup, cfg, out):
    files = [str(setup["labels"][m]) for m in cfg.members]
    gold = str(setup["split_dir"] / "strong_train_gold.parquet") if cfg.method == "ceiling" else None
    return strong.run_strong_classification(cfg, setup["model"], setup["split_dir"], files, gold,
                                            str(setup["features"]), out / "predictions.parquet", out / "metrics.json")


@pytest.mark.parametrize("method,members", [("ceiling", []), ("single", ["w1"]), ("naive", MEMBERS),
                                            ("flyingsquid", MEMBERS), ("bayesian", MEMBERS)])
def test_every_method_runs_on_the_probe(setup, tmp_path, method, members):
    metrics = _run(setup, _cfg(method, members, aux=method != "ceiling"), tmp_path)
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    test = pd.read_parquet(setup["split_dir"] / "test.parquet")
    assert predictions["id"].tolist() == test["id"].tolist()
    assert metrics["test_accuracy"] == pytest.approx((predictions["pred"] == test["label"]).mean())
    assert metrics["params"] > 1000  # the backbone is counted, not only the probe's head
    probs = predictions[["prob_0", "prob_1"]].to_numpy()
    assert metrics["test_ece"] == pytest.approx(expected_calibration_error(probs, test["label"].to_numpy()))
    if method == "bayesian":  # the Dirichlet per example: S = Σ α and vacuity K / S, from the test logits
        assert (predictions["strength"] >= 2).all() and np.allclose(predictions["vacuity"], 2 / predictions["strength"])
        # its mean is the prediction: α_1 / S
        assert np.allclose(predictions["prob_1"] * predictions["strength"] >= 1, True)
        assert metrics["kl_nll_ratio"] > 0 and "mean_log_strength" in metrics
    else:  # a softmax model has no Dirichlet
        assert predictions["strength"].isna().all() and predictions["vacuity"].isna().all()


def test_full_model_path_and_determinism(setup, tmp_path):
    cfg = _cfg("bayesian", MEMBERS, train_layers="all", aux=True)
    _run(setup, cfg, tmp_path / "a")
    _run(setup, cfg, tmp_path / "b")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "predictions.parquet"),
                                  pd.read_parquet(tmp_path / "b" / "predictions.parquet"))


def test_strong_stage_cannot_read_strong_train_gold(setup, tmp_path, monkeypatch):
    """Only the ceiling reads strong_train_gold.parquet; the others see pairs without labels."""
    read, frames = [], []
    original = strong.read_parquet

    def recording(path, columns=None):
        read.append(str(path))
        frame = original(path, columns)
        frames.append(frame)
        return frame

    monkeypatch.setattr(strong, "read_parquet", recording)
    for method, members in (("single", ["w0"]), ("naive", MEMBERS), ("flyingsquid", MEMBERS), ("bayesian", MEMBERS)):
        _run(setup, _cfg(method, members, aux=True), tmp_path / method)
    assert not any("gold" in path for path in read)
    strong_train_frames = [f for p, f in zip(read, frames) if p.endswith("strong_train.parquet")]
    assert strong_train_frames and all("label" not in f.columns for f in strong_train_frames)
    read.clear()
    _run(setup, _cfg("ceiling", []), tmp_path / "ceiling")
    assert any(path.endswith("strong_train_gold.parquet") for path in read)


def test_weak_labels_aligned_by_id(setup):
    strong_train = pd.read_parquet(setup["split_dir"] / "strong_train.parquet")
    targets = strong.weak_targets(_cfg("naive", ["w0"]), strong_train["id"], [str(setup["labels"]["w0"])])
    weak = pd.read_parquet(setup["labels"]["w0"]).set_index("id").loc[strong_train["id"]]
    np.testing.assert_allclose(targets[:, 0, 1].numpy(), weak["prob_1"].to_numpy())


def test_missing_weak_label_row_is_named(setup, tmp_path):
    frame = pd.read_parquet(setup["labels"]["w0"]).iloc[1:]
    path = tmp_path / "short.parquet"
    write_parquet(frame, path, schemas.CLASS_PROBS)
    strong_train = pd.read_parquet(setup["split_dir"] / "strong_train.parquet")
    with pytest.raises(Ws2sError, match=r"short.parquet: no row for id .* \(1 ids missing\)"):
        strong.weak_targets(_cfg("naive", ["w0"]), strong_train["id"], [str(path)])


@pytest.mark.parametrize("train_layers", [0, "all"])
def test_a_run_killed_by_sigterm_leaves_no_output_and_its_rerun_resumes_to_the_same_result(
        setup, tmp_path, monkeypatch, train_layers):
    """SIGTERM (SLURM's preemption or time-out) mid-run: no file Snakemake could take as
    complete; the rerun resumes from the checkpoint and ends as an uninterrupted run."""
    import os
    import signal

    import ws2s.train.classify as classify

    cfg = _cfg("bayesian", MEMBERS, train_layers=train_layers, aux=True)
    reference = _run(setup, cfg, tmp_path / "reference")
    original, calls = classify.weak_ensemble_loss, []

    def sigterm_at_step_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(classify, "weak_ensemble_loss", sigterm_at_step_3)
    out = tmp_path / "killed"
    with pytest.raises(SystemExit) as exit_info:
        _run(setup, cfg, out)
    assert exit_info.value.code == 128 + signal.SIGTERM
    assert sorted(p.name for p in out.iterdir()) == [".resume-metrics"]  # the checkpoint, nothing else

    monkeypatch.setattr(classify, "weak_ensemble_loss", original)
    resumed = _run(setup, cfg, out)
    assert len(calls) == 3 and not (out / ".resume-metrics").exists()
    assert {k: v for k, v in resumed.items() if k != "train_seconds"} == \
        {k: v for k, v in reference.items() if k != "train_seconds"}
    pd.testing.assert_frame_equal(pd.read_parquet(out / "predictions.parquet"),
                                  pd.read_parquet(tmp_path / "reference" / "predictions.parquet"))
