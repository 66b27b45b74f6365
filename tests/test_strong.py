from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import ws2s.stages.strong_classify as strong
from ws2s import schemas
from ws2s.config import LabelModelConfig, SplitConfig, StrongTrainConfig
from ws2s.design import METHODS
from ws2s.errors import Ws2sError
from ws2s.io import write_parquet
from ws2s.label_models import LABEL_MODELS, soft_labels
from ws2s.metrics.classification import expected_calibration_error
from ws2s.stages.classification_splits import write_classification_splits
from ws2s.stages.label_models import run_label_models
from ws2s.stages.strong_features import write_features

MEMBERS = ["w0", "w1", "w2"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, data_dir, tiny_bert):
    root = tmp_path_factory.mktemp("strong")
    split_dir = root / "splits"
    write_classification_splits(SplitConfig("cosmosqa", {"source": str(data_dir / "cosmosqa" / "valid.csv")},
                                            {"weak_train": 16, "strong_train": 32, "test": 16, "val": 8}, 0), split_dir)
    unlabelled = pd.concat([pd.read_parquet(split_dir / f"{split}.parquet").assign(split=split)
                            for split in ("strong_train", "val")], ignore_index=True)
    rng = np.random.default_rng(0)
    labels = {}
    for name in MEMBERS:
        p1 = rng.random(len(unlabelled)).astype(np.float32)
        frame = pd.DataFrame({"id": unlabelled["id"], "split": unlabelled["split"], "prob_0": 1 - p1, "prob_1": p1,
                              "pred": (p1 > 0.5).astype(np.int8)}).sample(frac=1, random_state=1)  # shuffled rows
        labels[name] = root / f"{name}.parquet"
        write_parquet(frame, labels[name], schemas.CLASS_PROBS)
    features = root / "features" / "tiny.parquet"
    write_features(tiny_bert, None, split_dir, 48, "random", False, features, features.with_suffix(".json"))
    label_models = root / "label_models.parquet"
    run_label_models(LabelModelConfig(MEMBERS, ["flyingsquid", "majorityvote"], None, 0), split_dir,
                     [str(labels[m]) for m in MEMBERS], label_models)
    return {"root": root, "split_dir": split_dir, "labels": labels, "features": features, "model": tiny_bert,
            "label_models": label_models}


def _cfg(method, members, train_layers=0, aux=False, seed=0):
    kind = "edl" if method == "bayesian" else "ce"
    source = "gold" if method == "ceiling" else members[0] if method == "single" else "ens"
    return StrongTrainConfig(model_name="tiny", model_spec={"path": "x"}, dataset="cosmosqa", method=method,
                             target=METHODS[method].targets["classification"],
                             source=source, members=members,
                             weights=[1 / max(1, len(members))] * max(1, len(members)),
                             loss={"kind": kind, "aux": aux}, seed=seed, epochs=2, batch_size=8, lr=1e-2,
                             max_length=48, train_layers=train_layers)


def _run(setup, cfg, out):
    files = [str(setup["label_models"])] if cfg.method in LABEL_MODELS else [str(setup["labels"][m]) for m in cfg.members]
    gold = [str(setup["split_dir"] / f"{split}_gold.parquet") for split in ("strong_train", "val")] \
        if cfg.method == "ceiling" else []
    return strong.run_strong_classification(cfg, setup["model"], setup["split_dir"], files, gold,
                                            str(setup["features"]), out / "predictions.parquet", out / "metrics.json",
                                            out / "curve.parquet")


@pytest.mark.parametrize("method,members", [("ceiling", []), ("single", ["w1"]), ("naive", MEMBERS),
                                            ("flyingsquid", MEMBERS), ("majorityvote", MEMBERS), ("bayesian", MEMBERS)])
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
    # 2 epochs of 4 steps: four evaluation points an epoch, one a step
    assert metrics["point_epochs"] == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    # the no-gold protocol: the point of the lowest validation loss against the run's own targets
    assert len(metrics["val_losses"]) == 8
    assert metrics["selected_epoch"] == metrics["point_epochs"][int(np.argmin(metrics["val_losses"]))]
    assert 0 <= metrics["test_accuracy_nogold"] <= 1 and ("val_accuracy" in metrics) == (method == "ceiling")
    # the curve: the start model, then every point; its last point's test predictions are the run's
    curve = pd.read_parquet(tmp_path / "curve.parquet")
    assert sorted(curve["point"].unique()) == list(range(9)) and curve.groupby("point")["epochs"].first().tolist() == \
        [0.0, *metrics["point_epochs"]]
    assert curve.groupby("point")["val_loss"].first().tolist()[1:] == pytest.approx(metrics["val_losses"])
    last = curve[(curve["point"] == 8) & (curve["split"] == "test")]
    assert last["id"].tolist() == test["id"].tolist() and np.allclose(last["prob_1"], predictions["prob_1"])
    val = pd.read_parquet(setup["split_dir"] / "val.parquet")
    assert curve[(curve["point"] == 0) & (curve["split"] == "val")]["id"].tolist() == val["id"].tolist()


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
    val_frames = [f for p, f in zip(read, frames) if p.endswith("/val.parquet")]
    assert val_frames and all("label" not in f.columns for f in val_frames)
    read.clear()
    _run(setup, _cfg("ceiling", []), tmp_path / "ceiling")
    assert any(path.endswith("strong_train_gold.parquet") for path in read)
    assert any(path.endswith("val_gold.parquet") for path in read)


def test_weak_labels_aligned_by_id(setup):
    strong_train = pd.read_parquet(setup["split_dir"] / "strong_train.parquet")
    targets = strong.weak_targets(_cfg("naive", ["w0"]), strong_train["id"], [str(setup["labels"]["w0"])], "strong_train")
    weak = pd.read_parquet(setup["labels"]["w0"]).set_index("id").loc[strong_train["id"]]
    np.testing.assert_allclose(targets[:, 0, 1].numpy(), weak["prob_1"].to_numpy())


def test_missing_weak_label_row_is_named(setup, tmp_path):
    frame = pd.read_parquet(setup["labels"]["w0"]).iloc[1:]
    path = tmp_path / "short.parquet"
    write_parquet(frame, path, schemas.CLASS_PROBS)
    strong_train = pd.read_parquet(setup["split_dir"] / "strong_train.parquet")
    with pytest.raises(Ws2sError, match=r"short.parquet: no row for id .* \(1 ids missing\)"):
        strong.weak_targets(_cfg("naive", ["w0"]), strong_train["id"], [str(path)], "strong_train")


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


def test_prompted_states_are_the_last_position_of_each_yes_no_question(tiny_llama, tmp_path, data_dir):
    """Left-padded batches give each question's own final hidden state (one at a time, unpadded,
    as the reference), and the readout rows are the output layer's rows for "no" and "yes"."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ws2s.data.classification import CLASSIFICATION_DATASETS
    from ws2s.stages.strong_features import prompted_states
    from ws2s.train.classify import yes_no_prompts

    split_dir = tmp_path / "splits"
    write_classification_splits(SplitConfig("slurp_intent", {"source": str(data_dir / "slurp")},
                                            {"weak_train": 2, "strong_train": 6, "test": 4}, 0), split_dir)
    frame = pd.read_parquet(split_dir / "strong_train.parquet")
    features, readout = prompted_states(tiny_llama, {"strong_train": frame}, CLASSIFICATION_DATASETS["slurp_intent"].prompt, 64, False)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    prompts, answers = yes_no_prompts(tokenizer, frame, CLASSIFICATION_DATASETS["slurp_intent"].prompt, 64)
    assert frame["text"].iloc[0] in prompts[0] and frame["candidate"].iloc[0] in prompts[0]
    assert [tokenizer.decode([a]).strip() for a in answers] == ["no", "yes"]
    with torch.no_grad():
        for row, prompt in enumerate(prompts):
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
            alone = model.get_decoder()(input_ids=ids).last_hidden_state[0, -1]
            np.testing.assert_allclose(features["features"].iloc[row], alone.numpy(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(readout, model.get_output_embeddings().weight[answers])


def test_the_readout_head_is_the_lm_answer_centred_on_unlabelled_strong_train():
    import torch

    readout = [[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]]
    train_x = torch.randn(40, 3) + 3.0
    head = strong.readout_head(readout, train_x)
    torch.testing.assert_close(head.weight, torch.tensor(readout))
    with torch.no_grad():
        logits = head(train_x)
    torch.testing.assert_close(logits.mean(dim=0), torch.zeros(2), atol=1e-5, rtol=0)
    # the ranking of pairs by "yes minus no" is the language model's own
    margin = train_x @ (torch.tensor(readout[1]) - torch.tensor(readout[0]))
    assert torch.equal((logits[:, 1] - logits[:, 0]).argsort(), margin.argsort())


def test_the_label_model_file_holds_each_models_posterior_beside_the_votes(setup):
    frame = pd.read_parquet(setup["label_models"])
    assert list(frame.columns) == ["id", "split", "votes", "flyingsquid", "majorityvote"]
    for split in ("strong_train", "val"):
        part = frame[frame["split"] == split]
        ids = pd.read_parquet(setup["split_dir"] / f"{split}.parquet")["id"]
        assert part["id"].tolist() == ids.tolist()
        votes = np.stack([pd.read_parquet(setup["labels"][m]).set_index("id").loc[ids, "pred"] for m in MEMBERS], 1)
        assert np.array_equal(np.stack(part["votes"]), votes)
        np.testing.assert_allclose(part["majorityvote"], soft_labels("majorityvote", votes)[:, 1], rtol=1e-6)
        np.testing.assert_allclose(part["flyingsquid"], soft_labels("flyingsquid", votes)[:, 1], rtol=1e-6)


def test_inspect_shows_each_label_model_beside_the_votes(setup):
    from ws2s.inspect import inspect

    frame = pd.read_parquet(setup["label_models"])
    first = frame.iloc[0]
    out = inspect(setup["label_models"], head=1, example_id=first["id"])
    assert out.startswith(f"{setup['label_models']}: label-model soft labels")
    assert f"votes {list(first['votes'])}" in out
    assert f"flyingsquid {first['flyingsquid']:.3f}" in out and f"majorityvote {first['majorityvote']:.3f}" in out


def test_what_a_run_learns_from_is_its_target_kind_not_its_method_name(setup):
    """A method is a design.METHODS entry: a new one (any name) with target gold reads gold,
    with target label_model its column of the label-model file; an unknown target is one error."""
    ids = pd.read_parquet(setup["split_dir"] / "strong_train.parquet")["id"]
    gold = [str(setup["split_dir"] / f"{split}_gold.parquet") for split in ("strong_train", "val")]
    mine = replace(_cfg("ceiling", []), method="mymethod")
    want = strong.gold_targets(ids, gold[0])
    assert torch.equal(strong.split_targets(mine, "strong_train", ids, [], gold), want)
    as_label_model = replace(_cfg("naive", MEMBERS), method="majorityvote", target="label_model")
    got = strong.split_targets(as_label_model, "strong_train", ids, [str(setup["label_models"])], [])
    column = pd.read_parquet(setup["label_models"]).query("split == 'strong_train'").set_index("id").loc[ids, "majorityvote"]
    assert np.allclose(got[:, 0, 1].numpy(), column.to_numpy())
    with pytest.raises(Ws2sError, match="target 'joint' is not a classification target"):
        strong.split_targets(replace(mine, target="joint"), "strong_train", ids, [], gold)


def test_the_curve_gives_the_runs_own_protocol_scores(setup, tmp_path):
    """Scored by the curves stage's functions, the curve's paper and no-gold picks give the
    test accuracy the run itself reports under those protocols."""
    from ws2s.curves import picks, score_run, test_scores
    from ws2s.frames import fewgold_ids

    metrics = _run(setup, _cfg("single", ["w1"]), tmp_path)
    curve = pd.read_parquet(tmp_path / "curve.parquet")
    gold_val = pd.read_parquet(setup["split_dir"] / "val_gold.parquet").set_index("id")["label"]
    gold_test = pd.read_parquet(setup["split_dir"] / "test.parquet").set_index("id")["label"]
    teacher = pd.read_parquet(setup["labels"]["w1"]).query("split == 'val'").set_index("id")["pred"]
    scored = score_run(curve, gold_val, gold_test, fewgold_ids(gold_val.index, 4, 0), {"w1": teacher}, {"w1": 0.3},
                       "run")
    chosen = picks(scored)
    assert chosen["paper"] == 8
    assert test_scores(curve, chosen["paper"], gold_test)[0] == pytest.approx(metrics["test_accuracy"])
    assert test_scores(curve, chosen["nogold"], gold_test)[0] == pytest.approx(metrics["test_accuracy_nogold"])
    assert scored.loc[scored["point"] == chosen["nogold"], "epochs"].item() == metrics["selected_epoch"]


def test_the_finetuned_readout_arm_starts_from_the_probes_answer_and_trains(setup, tiny_llama, tmp_path):
    """`head: readout` with `train_layers: 1`: the same yes/no question through the frozen
    bottom block's states (strong_features' file) and the trained top block. Its start model
    (curve point 0) answers as the readout probe on the prompted states does; then it trains
    its top block. A run without that file, or with one of other questions, is refused."""
    from ws2s.data.classification import CLASSIFICATION_DATASETS

    prompt = CLASSIFICATION_DATASETS["cosmosqa"].prompt
    features = tmp_path / "features" / "llama.parquet"
    write_features(tiny_llama, prompt, setup["split_dir"], 48, "readout", False, features, features.with_suffix(".json"))
    labels = [str(setup["labels"]["w1"])]
    probe = replace(_cfg("single", ["w1"]), head="readout")
    strong.run_strong_classification(probe, None, setup["split_dir"], labels, [], str(features),
                                     tmp_path / "p" / "predictions.parquet", tmp_path / "p" / "metrics.json",
                                     tmp_path / "p" / "curve.parquet")
    arm = replace(probe, train_layers=1, prompt=prompt)
    bottoms, cut = (tmp_path / name / "llama.parquet" for name in ("bottoms", "cut"))
    for file, max_length in ((bottoms, 48), (cut, 8)):
        write_features(tiny_llama, prompt, setup["split_dir"], max_length, "readout", False, file,
                       file.with_suffix(".json"), 1)
    for given, error in ((None, "freezes 1 blocks .*train_layers.*none was given"),
                         (cut, "cut/llama.parquet: id .* has states of .* tokens.*another prompt or max_length")):
        with pytest.raises(Ws2sError, match=error):
            strong.run_strong_classification(arm, tiny_llama, setup["split_dir"], labels, [], given and str(given),
                                             tmp_path / "x" / "predictions.parquet", tmp_path / "x" / "m.json")
    metrics = strong.run_strong_classification(arm, tiny_llama, setup["split_dir"], labels, [], str(bottoms),
                                               tmp_path / "f" / "predictions.parquet", tmp_path / "f" / "metrics.json",
                                               tmp_path / "f" / "curve.parquet")
    start = [pd.read_parquet(tmp_path / run / "curve.parquet").query("point == 0") for run in ("p", "f")]
    assert start[0]["id"].tolist() == start[1]["id"].tolist()
    np.testing.assert_allclose(start[1]["prob_1"], start[0]["prob_1"], atol=1e-4)
    curve = pd.read_parquet(tmp_path / "f" / "curve.parquet")
    assert not np.allclose(curve.query("point == 8")["prob_1"], start[1]["prob_1"])  # it trained
    assert metrics["params"] > 1000 and len(metrics["val_losses"]) == 8


def test_a_run_key_changes_with_anything_the_run_read(tmp_path):
    """A checkpoint (and the weights the protocols keep) resume only a run of the same params,
    model and data: a file's bytes, a table's rows, an array's values."""
    from dataclasses import dataclass

    from ws2s.train.strong import run_key

    @dataclass
    class Params:
        lr: float

    labels = tmp_path / "labels.parquet"
    labels.write_bytes(b"one")
    table = pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"]})
    base = run_key(Params(0.1), "model", [labels, table, np.zeros(3), None, ""])
    assert base == run_key(Params(0.1), "model", [str(labels), table.copy(), np.zeros(3)])
    labels.write_bytes(b"two")
    changed = [run_key(Params(0.1), "model", [labels, table, np.zeros(3)]),
               run_key(Params(0.2), "model", [tmp_path / "labels.parquet", table, np.zeros(3)]),
               run_key(Params(0.1), "other", [labels, table, np.zeros(3)]),
               run_key(Params(0.1), "model", [labels, table.assign(text=["x", "z"]), np.zeros(3)]),
               run_key(Params(0.1), "model", [labels, table, np.ones(3)])]
    assert len({base, *changed}) == 6
