"""The generation track after the weak stage: mapping, Joint Decoding, the strong methods."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from ws2s import schemas
from ws2s.config import (FewgoldConfig, GenerationSplitConfig, JointDecodingConfig, MappingConfig, SoftLabelConfig,
                         StrongGenerationConfig, WeakGenerationConfig)
from ws2s.data.slurp import PROMPTS, render_prompt, slu_scores
from ws2s.design import METHODS
from ws2s.objectives import LossConfig, soft_targets, utterance_weights
from ws2s.stages.generation_splits import write_fewgold, write_generation_splits
from ws2s.stages.joint_decode import joint_decode, pooled_candidates
from ws2s.stages.map_hypotheses import map_hypotheses
from ws2s.stages.strong_generate import run_strong_generation
from ws2s.stages.weak_generate import run_weak_generation
from ws2s.train.generate import FrozenBottom, encode_pairs, load_causal, sequence_losses, target_logits


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, data_dir, tiny_llama):
    """Splits, two weak runs (seeds 0 and 1 of the tiny model stand in for two weak models), their mappings."""
    root = tmp_path_factory.mktemp("strong_gen")
    splits = root / "splits"
    write_generation_splits(GenerationSplitConfig(str(data_dir / "slurp" / "devel.jsonl"),
                                                  str(data_dir / "slurp" / "test.jsonl"),
                                                  {"weak_train": 8, "strong_train": 6, "test": 4, "val": 3}, 0), splits)
    weak = {}
    for seed in (0, 1):
        cfg = WeakGenerationConfig(model_name=f"w{seed}", model_spec={"path": tiny_llama}, seed=seed, prompt="short",
                                   epochs=1, batch_size=4, lr=1e-3, val_fraction=0.25, train_layers="all", weak_beams=3,
                                   max_new_tokens=6, engine={"bf16": seed == 1})
        out = root / f"w{seed}"
        run_weak_generation(cfg, tiny_llama, splits, out / "h.parquet", out / "m.json", out / "model")
        map_hypotheses(MappingConfig("tiny", {"path": tiny_llama}, "short", "confidence"), tiny_llama, splits,
                       out / "h.parquet", out / "mapped.parquet")
        weak[seed] = out
    return root, splits, weak


def test_mapping_keeps_each_hypothesis_probability(pipeline):
    _, _, weak = pipeline
    for out in weak.values():
        hyps = pd.read_parquet(out / "h.parquet").query("split != 'test'").set_index("id")
        mapped = pd.read_parquet(out / "mapped.parquet")
        assert list(mapped.columns) == [f.name for f in schemas.MAPPED_HYPOTHESES]
        assert sorted(mapped["split"].value_counts().items()) == [("strong_train", 6), ("val", 3)]
        assert (mapped["split"].to_numpy() == hyps.loc[mapped["id"], "split"].to_numpy()).all()
        for row in mapped.itertuples():
            assert "".join(row.strong_tokens) == row.text == hyps.loc[row.id, "text"]
            assert len(row.strong_token_ids) == len(row.target_logprobs) == len(row.strong_confidence)
            # Eqns 6-7 only move probability between the pieces of a word: the total is kept
            assert np.sum(row.target_logprobs) == pytest.approx(np.sum(hyps.loc[row.id, "token_logprobs"]), abs=1e-4)
            assert np.all((np.asarray(row.strong_confidence) > 0) & (np.asarray(row.strong_confidence) <= 1))


def test_joint_decoding_picks_the_best_weighted_probability(pipeline, tmp_path):
    _, splits, weak = pipeline
    cfg = JointDecodingConfig(members=["w0", "w1"], weights=[0.3, 0.7], prompt="short", m=2)
    joint_decode(cfg, splits, [str(weak[s] / "h.parquet") for s in (0, 1)], [str(weak[s] / "model") for s in (0, 1)],
                 tmp_path / "joint.parquet")
    joint = pd.read_parquet(tmp_path / "joint.parquet")
    hyps = [pd.read_parquet(weak[s] / "h.parquet").query("split != 'test'").set_index("id") for s in (0, 1)]
    strong_train = pd.read_parquet(splits / "strong_train.parquet").set_index("id")
    model, tokenizer = load_causal(str(weak[1] / "model"))
    assert sorted(joint["split"].value_counts().items()) == [("strong_train", 6), ("val", 3)]
    for row in joint.itertuples():
        expected = list(dict.fromkeys(list(hyps[0].loc[row.id, "nbest"][:2]) + list(hyps[1].loc[row.id, "nbest"][:2])))
        assert list(row.candidates) == expected
        member = np.stack(row.member_logprobs).astype(float)
        score = np.log(0.3 * np.exp(member[0]) + 0.7 * np.exp(member[1]))
        np.testing.assert_allclose(row.scores, score, rtol=1e-4, atol=1e-4)
        assert row.chosen == row.candidates[int(np.argmax(score))]
    # the second member's score of the first candidate, recomputed by hand, one example alone
    row = joint.iloc[0]
    prompt = render_prompt(PROMPTS["short"], strong_train.loc[row.id, "sentence"])
    ids, start = encode_pairs(tokenizer, [prompt], [row.candidates[0]])[0]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    by_hand = sum(logp[t - 1, ids[t]].item() for t in range(start, len(ids)))
    assert row.member_logprobs[1][0] == pytest.approx(by_hand, abs=1e-3)
    assert pooled_candidates([["a", "b", "c"], ["b", "d"]], 2) == ["a", "b", "d"]


def test_dynamic_weights_are_a_softmax_of_weak_confidence():
    conf = np.array([[-0.1, -2.0], [-1.0, -1.0]])
    expected = np.exp(conf) / np.exp(conf).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(utterance_weights("dynamic", [], conf), expected, rtol=1e-12)
    np.testing.assert_allclose(utterance_weights("average", [0.5, 0.5], conf), 0.5)
    np.testing.assert_allclose(utterance_weights("fixed", [0.25, 0.75], conf), [[0.25, 0.75]] * 2)


def test_soft_target_kinds():
    logits = torch.randn(3, 7)
    ids = torch.tensor([1, 4, 6])
    logp = torch.log(torch.tensor([0.9, 0.5, 1e-9]))
    full = soft_targets(logits, ids, logp, "full", 1e-4)
    torch.testing.assert_close(full.sum(dim=-1), torch.ones(3))
    torch.testing.assert_close(full[torch.arange(3), ids], torch.tensor([0.9, 0.5, 1e-4]))
    target = soft_targets(logits, ids, logp, "target", 1e-4)
    assert (target > 0).sum() == 3
    torch.testing.assert_close(target[torch.arange(3), ids], torch.tensor([0.9, 0.5, 1e-4]))
    onehot = soft_targets(logits, ids, logp, "onehot", 1e-4)
    torch.testing.assert_close(onehot, torch.nn.functional.one_hot(ids, 7).float())


def test_sequence_loss_is_per_sequence_cross_entropy_at_any_batch_size(tiny_llama):
    model, tokenizer = load_causal(tiny_llama)
    model.eval()
    items = encode_pairs(tokenizer, ["set an alarm", "what time is it in a long prompt here", "hi"],
                         ['{"time": "seven"}', "{}", '{"date": "today", "place_name": "paris"}'])
    sequences = [(ids, start, None) for ids, start in items]
    cfg = LossConfig(kind="ce")
    soft = SoftLabelConfig(kind="onehot", min_prob=1e-4)
    with torch.no_grad():
        batched, _ = sequence_losses(model, tokenizer, sequences, 0.0, cfg, soft)
        for row, (ids, start) in enumerate(items):
            logits = model(torch.tensor([ids])).logits[0]
            alone = torch.nn.functional.cross_entropy(logits[start - 1:-1], torch.tensor(ids[start:]))
            assert batched[row].item() == pytest.approx(alone.item(), rel=1e-5)
        # soft labels with all mass on the target are the one-hot case
        sure = [(ids, start, np.zeros(len(ids) - start - 1)) for ids, start in items]
        full, _ = sequence_losses(model, tokenizer, sure, 0.0, cfg, SoftLabelConfig(kind="full", min_prob=1e-4))
        torch.testing.assert_close(full, batched, rtol=1e-5, atol=1e-6)
        bayesian = LossConfig(kind="edl", kl_weight=1.0, centre_logits=True, kl_top_k=16)
        edl, stats = sequence_losses(model, tokenizer, sequences, 0.5, bayesian, soft)
        nll, _ = sequence_losses(model, tokenizer, sequences, 0.5, LossConfig(kind="edl", kl_weight=0.0), soft)
        assert torch.isfinite(edl).all() and (edl > 0).all()
        assert stats.kl > 0 and stats.nll > 0
        # with the KL term on, the per-position loss is the NLL plus the annealed KL (here half of it)
        assert (edl - nll).mean().item() == pytest.approx(0.5 * stats.kl, rel=0.2)


def tiny_gemma3(tmp_path, tokenizer) -> str:
    """A tiny random-init Gemma 3: scaled embeddings, sliding-window and global layers."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=4,
                              layer_types=["sliding_attention", "full_attention"], max_position_embeddings=256,
                              pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return str(tmp_path)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_cached_frozen_bottom_gives_the_full_model_logits(tiny_llama, tokenizers, tmp_path, arch):
    """Running the top block on cached states of the frozen bottom one is the full forward pass."""
    model, tokenizer = load_causal(tiny_llama if arch == "llama" else tiny_gemma3(tmp_path, tokenizers["smollm2"]))
    model.eval()
    items = encode_pairs(tokenizer, ["set an alarm", "what time is it in a long prompt here", "hi"],
                         ['{"time": "seven"}', "{}", '{"date": "today", "place_name": "paris"}'])
    with torch.no_grad():
        bottom = FrozenBottom.compute(model, tokenizer, items, blocks=1, batch_size=2)
        assert [len(s) for s in bottom.states] == [len(ids) for ids, _ in items]
        for rows in ([0, 1, 2], [2, 0]):  # another batch, another padding
            cached, cached_target, _ = target_logits(model, tokenizer, [items[r] for r in rows], bottom, rows)
            reference, reference_target, _ = target_logits(model, tokenizer, [items[r] for r in rows])
            torch.testing.assert_close(cached, reference, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(cached_target, reference_target)
        # each sequence's own, unpadded forward pass: the same logits at its target positions
        alone = [model(torch.tensor([items[r][0]])).logits[0, items[r][1] - 1:-1] for r in rows]
        torch.testing.assert_close(cached, torch.cat(alone), rtol=1e-5, atol=1e-5)
    assert len(model.get_decoder().layers) == 2  # the blocks are put back


@pytest.mark.parametrize("method", ["ceiling", "single", "naive", "jointdecoding", "bayesian"])
def test_strong_generation_methods(pipeline, tiny_llama, method, tmp_path):
    root, splits, weak = pipeline
    members = {"ceiling": [], "single": ["w0"], "jointdecoding": ["w0", "w1"]}.get(method, ["w0", "w1"])
    multi = method in ("naive", "bayesian")
    joint = None
    if method == "jointdecoding":
        joint = tmp_path / "joint.parquet"
        joint_decode(JointDecodingConfig(["w0", "w1"], [0.5, 0.5], "short", 2), splits,
                     [str(weak[s] / "h.parquet") for s in (0, 1)], [str(weak[s] / "model") for s in (0, 1)], joint)
    loss = {"kind": "edl" if method == "bayesian" else "ce", "aux": method == "bayesian", "balanced_threshold": False,
            "gamma_max": 0.2, "warmup_frac": 0.25}
    if method == "bayesian":
        loss.update(kl_weight=1e-4, centre_logits=True, kl_top_k=16, kl_clamp=2e5)
    cfg = StrongGenerationConfig(model_name="tiny", model_spec={"path": tiny_llama}, seed=0, prompt="short",
                                 method=method, target=METHODS[method].targets["generation"],
                                 source="gold" if method == "ceiling" else "ws2", members=members,
                                 weighting="dynamic" if multi else "average",
                                 weights=[0.5, 0.5] if multi else [1.0], loss=loss,
                                 soft_labels={"kind": "full", "min_prob": 1e-4}, batch_size=4, lr=1e-3,
                                 train_layers=1 if multi else "all", decoding={"beams": 1, "max_new_tokens": 6},
                                 engine={"backend": "plain", "bf16": method == "naive"}, epochs=2)
    mapped = [str(weak[0 if m == "w0" else 1] / "mapped.parquet") for m in members] if method in ("single", "naive", "bayesian") else []
    gold = [str(splits / f"{split}_gold.parquet") for split in ("strong_train", "val")] if method == "ceiling" else []
    fewgold = tmp_path / "fewgold.parquet"
    write_fewgold(FewgoldConfig(size=2, seed=0), splits / "val_gold.parquet", fewgold)
    metrics = run_strong_generation(cfg, tiny_llama, splits, mapped, joint and str(joint), gold, str(fewgold),
                                    tmp_path / "g.parquet", tmp_path / "curve.parquet", tmp_path / "m.json",
                                    tmp_path / "model" if method == "bayesian" else None)
    generations = pd.read_parquet(tmp_path / "g.parquet")
    assert list(generations.columns) == [f.name for f in schemas.GENERATIONS] and len(generations) == 4
    assert metrics["invalid_json"] == int((~generations["valid_json"]).sum())
    assert json.loads((tmp_path / "m.json").read_text())["method"] == method
    assert (tmp_path / "model").exists() == (method == "bayesian")
    assert "mean_logit" in metrics
    # every evaluation point (2 steps an epoch: 2 points each) scored on val against the run's own
    # targets, and its decoding of the few-gold utterances; each protocol's pick and its test score
    progress = metrics["point_epochs"]
    assert progress == [0.5, 1.0, 1.5, 2.0] and len(metrics["val_losses"]) == 4
    assert metrics["selected_epoch"] == progress[int(np.argmin(metrics["val_losses"]))]
    assert len(metrics["fewgold_slu_f1"]) == 5  # the start model first
    assert metrics["fewgold_epoch"] == progress[int(np.argmax(metrics["fewgold_slu_f1"][1:]))]
    for protocol in ("nogold", "fewgold"):
        picked = metrics["selected_epoch" if protocol == "nogold" else "fewgold_epoch"]
        assert 0 <= metrics[f"slu_f1_{protocol}"] <= 1
        if picked == 2.0:  # the last point: the paper's protocol's model
            assert metrics[f"slu_f1_{protocol}"] == metrics["slu_f1"]
    assert ("val_slu_f1" in metrics) == (method == "ceiling")
    teachers = {"ceiling": [], "jointdecoding": ["ws2"]}.get(method, members)
    assert metrics["teachers"] == teachers and all(len(a) == len(teachers) for a in metrics["teacher_agreement"])
    # the curve holds what each point decoded; its gold SLU-F1, scored here, is the run's
    curve = pd.read_parquet(tmp_path / "curve.parquet")
    assert list(curve.columns) == schemas.STRONG_GENERATION_CURVE.names and len(curve) == 5 * 2
    subset = pd.read_parquet(fewgold)
    for point, part in curve.groupby("point"):
        assert list(part["id"]) == list(subset["id"])
        assert slu_scores(subset, part["text"].tolist())["slu_f1"] == metrics["fewgold_slu_f1"][point]
    if method == "bayesian":  # the loss's balance over training, and the Dirichlet of every generated position
        assert metrics["kl_nll_ratio"] > 0 and np.isfinite(metrics["mean_log_strength"])
        assert metrics["test_positions"] >= 4 and 0 < metrics["test_vacuity_p10"] <= metrics["test_vacuity_p90"] <= 1
    assert not list(tmp_path.glob(".resume-*"))  # a finished run leaves no checkpoint


def test_inspect_shows_the_strong_tokenizer_mapping_beside_the_generations(pipeline, tmp_path):
    import shutil

    from ws2s.inspect import inspect

    _, _, weak = pipeline
    weak_dir = tmp_path / "results/generation/weak/w0/seed0"
    weak_dir.mkdir(parents=True)
    shutil.copy(weak[0] / "h.parquet", weak_dir / "hypotheses.parquet")
    mapped = tmp_path / "results/generation/mapped/w0/seed0.parquet"
    mapped.parent.mkdir(parents=True)
    shutil.copy(weak[0] / "mapped.parquet", mapped)
    first = pd.read_parquet(mapped).iloc[0]
    out = inspect(weak_dir / "hypotheses.parquet", head=1, example_id=first["id"])
    assert "strong tokens (Eqn 7 probability under each):" in out and "C_s" in out
    out = inspect(mapped, head=1)
    assert out.startswith(f"{mapped}: hypotheses in the strong tokenizer") and "strong pieces sum" in out


def test_joint_decoding_with_a_generator_that_does_not_judge(pipeline, tmp_path):
    """Table 10: both members' lists pooled, only the second member scores them."""
    _, splits, weak = pipeline
    cfg = JointDecodingConfig(members=["w1"], weights=[1.0], prompt="short", m=2, generators=["w0", "w1"])
    joint_decode(cfg, splits, [str(weak[s] / "h.parquet") for s in (0, 1)], [str(weak[1] / "model")],
                 tmp_path / "joint.parquet")
    joint = pd.read_parquet(tmp_path / "joint.parquet")
    hyps = [pd.read_parquet(weak[s] / "h.parquet").query("split != 'test'").set_index("id") for s in (0, 1)]
    for row in joint.itertuples():
        expected = list(dict.fromkeys(list(hyps[0].loc[row.id, "nbest"][:2]) + list(hyps[1].loc[row.id, "nbest"][:2])))
        assert list(row.candidates) == expected and len(row.member_logprobs) == 1
        np.testing.assert_allclose(row.scores, row.member_logprobs[0], rtol=1e-5)
        assert row.chosen == row.candidates[int(np.argmax(row.member_logprobs[0]))]
