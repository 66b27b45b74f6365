"""Conservative DPO (Section 4.2): weak-ensemble preferences and the cDPO loss, as pure functions.

A completion's log-probability is the sum of its tokens' log-probabilities given the
prompt, teacher-forced, EOS included: the candidate is a whole answer, so "this text and
then stop" is what the weak models score and what the policy learns to prefer.
"""

from __future__ import annotations

import gc

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ws2s.errors import Ws2sError
from ws2s.train.engine import device
from ws2s.train.generate import encode_pairs, load_causal, target_logits

SCORE_KINDS = ("sequence_prob", "mean_logprob")
# Batch size of teacher-forced scoring: changes speed only.
SCORING_BATCH_SIZE = 16


def cdpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
              ref_rejected: torch.Tensor, beta: float, epsilon: float) -> torch.Tensor:
    """Per-pair cDPO loss (Eqns 9-10): (1 − ε)·(−log σ(βΔ)) + ε·(−log σ(−βΔ)).

    Δ = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r)); ε is the chance that
    a preference label is flipped. ε = 0 is standard DPO. The reference never carries gradients.
    """
    delta = (policy_chosen - ref_chosen.detach()) - (policy_rejected - ref_rejected.detach())
    return (1 - epsilon) * -F.logsigmoid(beta * delta) + epsilon * -F.logsigmoid(-beta * delta)


def completion_logprobs(model, tokenizer, items: list[tuple[list[int], int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per item, the sum of its target tokens' log-probabilities [B] (with the graph) and their count [B].

    Items are `encode_pairs` output; `target_logits` left-pads them and aligns the targets,
    so padding never enters a sum and each row is the same at any batch size.
    """
    logits, target, real = target_logits(model, tokenizer, items)
    picked = torch.log_softmax(logits.float(), dim=-1).gather(-1, target[:, None])[:, 0]
    totals = torch.zeros(len(items), dtype=picked.dtype, device=picked.device).index_add(0, real.nonzero()[:, 0], picked)
    return totals, real.sum(dim=-1)


def sequence_logprobs(model, tokenizer, prompts: list[str], completions: list[str],
                      batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """log p(completion + EOS | prompt) per example (float64) and its token count, no gradients.

    The completion text is tokenised by this model's own tokenizer, so models with
    different vocabularies score the same text.
    """
    items = encode_pairs(tokenizer, prompts, completions)
    sums, counts = [], []
    model.eval()
    with torch.no_grad():
        for b in range(0, len(items), batch_size):
            total, count = completion_logprobs(model, tokenizer, items[b:b + batch_size])
            sums.append(total.double().cpu().numpy())
            counts.append(count.cpu().numpy())
    if not items:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(sums), np.concatenate(counts).astype(np.int64)


def judge(weak_model_dirs: list[str], prompts: list[str], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every weak model's log p(text + EOS | prompt) and token count, [n_weak, n_texts]; one model in memory at a time."""
    logps, lengths = [], []
    for path in weak_model_dirs:
        model, tokenizer = load_causal(path)
        model.to(device())
        logp, count = sequence_logprobs(model, tokenizer, prompts, texts, SCORING_BATCH_SIZE)
        logps.append(logp)
        lengths.append(count)
        del model
        gc.collect()
    return np.stack(logps), np.stack(lengths)


def preference_scores(per_weak_logprobs: np.ndarray, lengths: np.ndarray, weights, kind: str) -> np.ndarray:
    """The ensemble's score of each candidate, [n_cand], from [n_weak, n_cand] log-probs and token counts.

    "sequence_prob" (Eqn 8): Σ_i λ_i p_i(y), returned as its logarithm, log Σ_i λ_i exp(log p_i(y)),
    which ranks the same and does not underflow for long candidates.
    "mean_logprob" (the authors' code): Σ_i λ_i · (log p_i(y) / |y|_i), |y|_i counted in
    model i's own tokens.
    """
    logp = np.asarray(per_weak_logprobs, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if logp.ndim != 2 or len(weights) != logp.shape[0] or np.shape(lengths) != logp.shape:
        raise Ws2sError(f"preference scores: log-probs {logp.shape}, lengths {np.shape(lengths)} and "
                        f"{len(weights)} weights do not match ([n_weak, n_cand] and n_weak)")
    if kind == "sequence_prob":
        with np.errstate(divide="ignore"):  # a zero weight is log 0 = −inf: that model drops out
            return np.logaddexp.reduce(logp + np.log(weights)[:, None], axis=0)
    if kind == "mean_logprob":
        return (weights[:, None] * logp / np.maximum(np.asarray(lengths), 1)).sum(axis=0)
    raise Ws2sError(f"preference score kind '{kind}' is unknown; allowed: {', '.join(SCORE_KINDS)}")


@dataclass(frozen=True)
class Pair:
    """One prompt's preference: indices into its candidates."""

    prompt: int
    chosen: int
    rejected: int


def select_pairs(candidates: list[list[str]], scores: list[np.ndarray]) -> tuple[list[Pair], int, int]:
    """Chosen = the highest-scored candidate of each prompt, rejected = the lowest.

    A prompt with fewer than two distinct candidate texts gives no pair (counted in the
    second value); one whose distinct candidates all score the same gives none either
    (the third value), since no preference can be read from it.
    """
    pairs, identical, tied = [], 0, 0
    for p, (texts, score) in enumerate(zip(candidates, scores)):
        distinct = [i for i, text in enumerate(texts) if texts.index(text) == i]  # first of each text
        if len(distinct) < 2:
            identical += 1
            continue
        values = np.asarray(score)[distinct]
        if values.max() == values.min():
            tied += 1
            continue
        pairs.append(Pair(p, distinct[int(values.argmax())], distinct[int(values.argmin())]))
    return pairs, identical, tied
