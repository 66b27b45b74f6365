import math
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from ws2s import schemas
from ws2s.config import CdpoConfig, GenerationSplitConfig
from ws2s.data.slurp import PROMPTS as PROMPTS_BY_NAME
from ws2s.data.slurp import render_prompt
from ws2s.errors import Ws2sError
from ws2s.objectives import cdpo_loss, preference_scores, select_pairs
from ws2s.stages.cdpo import cdpo_batch_loss, disable_dropout, draw_candidates, run_cdpo
from ws2s.stages.generation_splits import write_generation_splits
from ws2s.train.generate import encode_pairs, load_causal, sequence_logprobs

PROMPTS = ['Slots of "wake me at five am": ', 'Slots of "play some jazz in the kitchen please": ', 'Slots of "hi": ']
COMPLETIONS = ['{"time": "five am"}', "{}", '{"music_genre": "jazz", "house_place": "kitchen"}']


def softplus(x: float) -> float:
    """−log σ(−x), stably."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def closed_form(pc, pr, rc, rr, beta, eps):
    delta = (pc - rc) - (pr - rr)
    return (1 - eps) * softplus(-beta * delta) + eps * softplus(beta * delta)


def loss64(values, beta, eps):
    return cdpo_loss(*(torch.tensor(v, dtype=torch.float64) for v in values), beta, eps)


VALUES = ([-3.2, -10.0, -0.5, -40.0], [-4.1, -9.0, -7.5, -1.0], [-3.0, -12.0, -0.7, -35.0], [-5.0, -9.5, -2.0, -3.0])


def test_loss_equals_its_closed_form_in_float64():
    for beta, eps in ((2.0, 0.1), (0.5, 0.3), (5.0, 0.0)):
        got = loss64(VALUES, beta, eps)
        assert got.dtype == torch.float64
        expected = [closed_form(*row, beta, eps) for row in zip(*VALUES)]
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-13)


def test_epsilon_zero_is_standard_dpo():
    got = loss64(VALUES, 2.0, 0.0)
    deltas = [(pc - rc) - (pr - rr) for pc, pr, rc, rr in zip(*VALUES)]
    np.testing.assert_allclose(got.numpy(), [math.log1p(math.exp(-2.0 * d)) for d in deltas], rtol=1e-13)


def test_swapping_chosen_and_rejected_at_half_gives_the_same_loss():
    pc, pr, rc, rr = VALUES
    np.testing.assert_allclose(loss64((pc, pr, rc, rr), 2.0, 0.5).numpy(), loss64((pr, pc, rr, rc), 2.0, 0.5).numpy(),
                               rtol=1e-14)
    # and at any other ε it does not
    assert not torch.allclose(loss64((pc, pr, rc, rr), 2.0, 0.1), loss64((pr, pc, rr, rc), 2.0, 0.1))


def test_the_reference_carries_no_gradient():
    policy = torch.tensor([-2.0], requires_grad=True)
    ref = torch.tensor([-1.0], requires_grad=True)
    cdpo_loss(policy, torch.tensor([-3.0]), ref, torch.tensor([-3.0]), 2.0, 0.1).sum().backward()
    assert policy.grad is not None and ref.grad is None


def hand_logprob(model, tokenizer, prompt: str, completion: str) -> float:
    """One example, no padding: Σ log p(completion tokens + EOS | prompt)."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    target = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt_ids + target])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
    rows = torch.arange(len(prompt_ids) - 1, ids.shape[1] - 1)
    return float(logp[rows, ids[0, len(prompt_ids):]].sum())


def test_sequence_logprobs_with_padding_match_single_forwards(tiny_llama):
    model, tokenizer = load_causal(tiny_llama)
    one, counts = sequence_logprobs(model, tokenizer, PROMPTS, COMPLETIONS, batch_size=1)
    three, _ = sequence_logprobs(model, tokenizer, PROMPTS, COMPLETIONS, batch_size=3)
    tokenizer.padding_side = "right"  # the tokenizer's own padding side does not matter
    right, _ = sequence_logprobs(model, tokenizer, PROMPTS, COMPLETIONS, batch_size=3)
    hand = [hand_logprob(model, tokenizer, p, c) for p, c in zip(PROMPTS, COMPLETIONS)]
    np.testing.assert_allclose(three, one, atol=1e-4)
    np.testing.assert_allclose(right, one, atol=1e-4)
    np.testing.assert_allclose(one, hand, atol=1e-4)
    assert list(counts) == [len(tokenizer(c, add_special_tokens=False)["input_ids"]) + 1 for c in COMPLETIONS]
    # per example, not summed over the batch
    assert len(set(np.round(one, 3))) == 3


def test_delta_is_zero_at_the_first_step(tiny_llama):
    model, tokenizer = load_causal(tiny_llama)
    rejected = ["{}", '{"date": "today"}', '{"x": "y"}']
    ref_c, _ = sequence_logprobs(model, tokenizer, PROMPTS, COMPLETIONS, 2)
    ref_r, _ = sequence_logprobs(model, tokenizer, PROMPTS, rejected, 2)
    # training mode, as the engine sets it, with dropout the stage must switch off
    for layer in model.model.layers:
        layer.self_attn.attention_dropout = 0.5
    model.train()
    disable_dropout(model)
    loss_for_batch = cdpo_batch_loss(model, tokenizer, encode_pairs(tokenizer, PROMPTS, COMPLETIONS),
                                     encode_pairs(tokenizer, PROMPTS, rejected), torch.tensor(ref_c),
                                     torch.tensor(ref_r), beta=2.0, epsilon=0.1)
    loss = loss_for_batch([2, 0, 1], 0.0)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-5)  # −log σ(0), whatever ε
    loss.backward()  # the gradient reaches the policy
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    # a reference that differs from the policy moves the loss off log 2
    shifted = cdpo_batch_loss(model, tokenizer, encode_pairs(tokenizer, PROMPTS, COMPLETIONS),
                              encode_pairs(tokenizer, PROMPTS, rejected), torch.tensor(ref_c) - 1.0,
                              torch.tensor(ref_r), beta=2.0, epsilon=0.1)
    assert shifted([0, 1, 2], 0.0).item() < math.log(2) - 0.1


def test_eqn8_scores_are_the_weighted_sum_of_sequence_probabilities():
    logp = np.log([[0.5, 0.1, 0.2], [0.1, 0.6, 0.2]])
    lengths = np.array([[2, 4, 1], [3, 3, 3]])
    got = preference_scores(logp, lengths, [0.7, 0.3], "sequence_prob")
    np.testing.assert_allclose(np.exp(got), [0.7 * 0.5 + 0.3 * 0.1, 0.7 * 0.1 + 0.3 * 0.6, 0.2], rtol=1e-12)
    mean = preference_scores(logp, lengths, [0.7, 0.3], "mean_logprob")
    np.testing.assert_allclose(mean, 0.7 * logp[0] / lengths[0] + 0.3 * logp[1] / lengths[1], rtol=1e-12)
    # long candidates: the sequence probabilities underflow, the ranking does not
    long = preference_scores(logp - 2000, lengths, [0.7, 0.3], "sequence_prob")
    assert np.isfinite(long).all() and list(np.argsort(long)) == list(np.argsort(got))
    with pytest.raises(Ws2sError, match="do not match"):
        preference_scores(logp, lengths, [1.0], "sequence_prob")


def test_select_pairs_drops_prompts_without_a_preference():
    candidates = [["a", "b", "c"], ["x", "x", "x"], ["p", "q", "p"], ["u", "v"]]
    scores = [np.array([0.1, 0.9, -1.0]), np.array([1.0, 1.0, 1.0]), np.array([0.0, 0.5, 0.0]), np.array([0.3, 0.3])]
    pairs, identical, tied = select_pairs(candidates, scores)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [(0, 1, 2), (2, 1, 0)]
    assert identical == 1 and tied == 1


def test_sampled_candidates_per_prompt(tiny_llama):
    model, tokenizer = load_causal(tiny_llama)
    torch.manual_seed(0)
    sampled = draw_candidates(model, tokenizer, PROMPTS, m=4, decoding="sample", temperature=1.0, max_new_tokens=5,
                              batch_size=2)
    assert [len(c) for c in sampled] == [4, 4, 4] and len(set(sampled[0])) > 1
    beams = draw_candidates(model, tokenizer, PROMPTS, m=3, decoding="beam", temperature=1.0, max_new_tokens=5,
                            batch_size=3)
    assert [len(c) for c in beams] == [3, 3, 3] and tokenizer.padding_side == "left"


@pytest.fixture(scope="module")
def splits(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("gen_splits")
    write_generation_splits(GenerationSplitConfig(str(data_dir / "slurp" / "devel.jsonl"),
                                                  str(data_dir / "slurp" / "test.jsonl"),
                                                  {"weak_train": 2, "strong_train": 5, "test": 3}, 0), out)
    return out


def cdpo_config(**change) -> CdpoConfig:
    values = dict(seed=0, ensemble="ws2", members=["weak-a", "weak-b"], weights=[0.5, 0.5], prompt="short", test_beams=1,
                  max_new_tokens=6, start_method="bayesian", start_aux=True, candidates=3, decoding="beam",
                  temperature=1.0, score="sequence_prob", beta=2.0, epsilon=0.1, lr=1e-3, epochs=2, batch_size=2,
                  train_layers="all", engine={"backend": "plain"})
    return CdpoConfig(**{**values, **change})


def test_run_cdpo_end_to_end(tiny_llama, splits, tmp_path):
    weak_b = shutil.copytree(tiny_llama, tmp_path / "weak_b")
    out = tmp_path / "cdpo"
    metrics = run_cdpo(cdpo_config(), tiny_llama, [tiny_llama, str(weak_b)], splits, out / "pairs.parquet",
                       out / "metrics.json")
    assert pq.read_schema(out / "pairs.parquet").names == schemas.PREFERENCE_PAIRS.names
    pairs = pd.read_parquet(out / "pairs.parquet")
    assert metrics["n_pairs"] == len(pairs) > 0
    assert metrics["n_pairs"] + metrics["n_dropped_identical"] + metrics["n_dropped_tied"] == metrics["n_prompts"] == 5
    for key in ("seed", "slu_f1_before", "slu_f1_after", "invalid_json_before", "invalid_json_after", "n_pairs",
                "n_dropped_identical", "train_seconds", "beta", "epsilon", "losses"):
        assert key in metrics
    assert len(metrics["losses"]) == 2 and metrics["first_loss"] == pytest.approx(math.log(2), abs=1e-4)
    row = pairs.iloc[0]
    assert row["chosen_score"] == max(row["candidate_scores"]) and row["rejected_score"] == min(row["candidate_scores"])
    assert row["chosen"] != row["rejected"] and list(row["judges"]) == ["weak-a", "weak-b"]
    # both judges are the same network here: each one's log p equals the ensemble's log-score
    np.testing.assert_allclose(row["chosen_weak_scores"], [row["chosen_score"]] * 2, atol=1e-5)
    # the reference is the start model's teacher-forced log-probability, not a beam score
    model, tokenizer = load_causal(tiny_llama)
    prompts = [render_prompt(PROMPTS_BY_NAME["short"], s) for s in pairs["sentence"]]
    ref, _ = sequence_logprobs(model, tokenizer, prompts, list(pairs["chosen"]), 1)
    np.testing.assert_allclose(pairs["ref_chosen"], ref, atol=1e-4)


def test_run_cdpo_with_identical_candidates_trains_nothing(tiny_llama, splits, tmp_path):
    # at a temperature near 0 every sample is the greedy one: no prompt gives a pair
    metrics = run_cdpo(cdpo_config(decoding="sample", temperature=1e-4), tiny_llama, [tiny_llama, tiny_llama],
                       splits, tmp_path / "pairs.parquet", tmp_path / "metrics.json")
    assert metrics["n_pairs"] == 0 and metrics["n_dropped_identical"] == 5
    assert metrics["slu_f1_after"] == metrics["slu_f1_before"] and metrics["first_loss"] is None
    assert pd.read_parquet(tmp_path / "pairs.parquet").empty


def test_table5_rows_per_seed_and_mean(tmp_path):
    from ws2s.io import write_json
    from ws2s.tables import table5, table5_notes

    files = {"cdpo": [], "weak": [], "ceiling": []}
    for seed, (before, after, ceiling) in enumerate([(0.50, 0.54, 0.70), (0.52, 0.52, 0.51)]):
        run = {"seed": seed, "slu_f1_before": before, "slu_f1_after": after, "members": ["a", "b"], "n_pairs": 8,
               "n_prompts": 10, "n_dropped_identical": 2, "n_dropped_tied": 0, "start": "bayesian/ws2/aux",
               "score": "sequence_prob", "candidates": 5, "decoding": "beam", "beta": 2.0, "epsilon": 0.1}
        for kind, obj in (("cdpo", run), ("ceiling", {"seed": seed, "slu_f1": ceiling})):
            files[kind].append(tmp_path / f"{kind}{seed}.json")
            write_json(obj, files[kind][-1])
        for model, f1 in (("a", 0.40), ("b", 0.50)):
            files["weak"].append(tmp_path / f"weak_{model}{seed}.json")
            write_json({"model": model, "seed": seed, "slu_f1": f1}, files["weak"][-1])
    table = table5(files["cdpo"], files["weak"], files["ceiling"], 1)
    assert list(table["seed"]) == ["0", "1", "mean ± std"]
    # PGR, the mean over members: before (0.1/0.3 + 0/0.2)/2, after (0.14/0.3 + 0.04/0.2)/2
    assert list(table.iloc[0, 1:]) == ["50.0", "54.0", "16.7", "33.3"]
    assert table.iloc[1, 3] == "n/a (gap too small)"  # seed 1: ceiling 51 against weak 50 is under 2 points
    assert table.iloc[2, 1] == "51.0 ± 1.4" and table.iloc[2, 4] == "n/a (gap too small)"
    assert "seed 0: 8 of 10 utterances gave a pair, 2 dropped (all candidates identical)" in table5_notes(files["cdpo"])
