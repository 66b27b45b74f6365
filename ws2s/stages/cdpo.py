"""The cDPO stage of the generation track (Section 4.2, Table 5).

Per ensemble and seed, starting from the strong model that Bayesian Multi-Weak trained:
the strong model generates M candidates per strong_train prompt; every weak model scores
every candidate teacher-forced (each re-tokenises the candidate text with its own
tokenizer); the ensemble's best and worst candidate form a preference pair (Eqn 8); the
frozen start model gives the reference log-probabilities; the model is then trained with
conservative DPO (Eqns 9-10). Test SLU-F1 is measured before and after.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ws2s import schemas
from ws2s.config import CdpoConfig
from ws2s.data.slurp import PROMPTS, render_prompt, slu_scores
from ws2s.errors import Ws2sError
from ws2s.frames import UTTERANCE_COLUMNS
from ws2s.io import read_parquet, write_json, write_parquet
from ws2s.objectives import Pair, cdpo_loss, preference_scores, select_pairs
from ws2s.train.backbone import add_lora, freeze_for, seed_everything
from ws2s.train.engine import device, is_main_process
from ws2s.train.strong import run_key, train_strong
from ws2s.train.generate import (GENERATION_BATCH_SIZE, SCORING_BATCH_SIZE, completion_logprobs, decode, decode_texts,
                                 encode_pairs, judge, load_causal, sequence_logprobs)


def draw_candidates(model, tokenizer, prompts: list[str], *, m: int, decoding: str, temperature: float,
                    max_new_tokens: int, batch_size: int) -> list[list[str]]:
    """M candidate texts per prompt: the M beams of beam search, or M samples at `temperature`."""
    if decoding == "sample":
        # plain ancestral sampling: no top-k/top-p the checkpoint's generation config may set
        how = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0, "num_beams": 1}
    else:
        how = {"do_sample": False, "num_beams": m, "early_stopping": True}
    texts = decode_texts(model, tokenizer, prompts, batch_size=batch_size, desc="candidates",
                         num_return_sequences=m, max_new_tokens=max_new_tokens, **how)
    return [texts[i:i + m] for i in range(0, len(texts), m)]


def pairs_frame(frame: pd.DataFrame, candidates: list[list[str]], scores: list[np.ndarray], weak_scores: np.ndarray,
                pairs: list[Pair], cfg: CdpoConfig) -> pd.DataFrame:
    """The pairs with all that formed them; `weak_scores` is [n_weak, n_prompts, M]."""
    rows = []
    for pair in pairs:
        p = pair.prompt
        rows.append({
            "id": frame["id"].iloc[p], "sentence": frame["sentence"].iloc[p],
            "candidates": candidates[p], "candidate_scores": scores[p].tolist(),
            "chosen": candidates[p][pair.chosen], "rejected": candidates[p][pair.rejected],
            "chosen_score": float(scores[p][pair.chosen]), "rejected_score": float(scores[p][pair.rejected]),
            "judges": list(cfg.members), "judge_weights": [float(w) for w in cfg.weights],
            "chosen_weak_scores": weak_scores[:, p, pair.chosen].tolist(),
            "rejected_weak_scores": weak_scores[:, p, pair.rejected].tolist(),
        })
    return pd.DataFrame(rows, columns=[f.name for f in schemas.PREFERENCE_PAIRS if not f.name.startswith("ref_")])


def cdpo_batch_loss(model, tokenizer, chosen_items, rejected_items, ref_chosen: torch.Tensor,
                    ref_rejected: torch.Tensor, beta: float, epsilon: float):
    """`loss_for_batch(indices, step_frac)`: the mean cDPO loss of those pairs, chosen and rejected in one forward."""

    def loss_for_batch(indices: list[int], step_frac: float) -> torch.Tensor:
        items = [chosen_items[i] for i in indices] + [rejected_items[i] for i in indices]
        logp, _ = completion_logprobs(model, tokenizer, items)
        n = len(indices)
        ref_c, ref_r = ref_chosen[indices].to(logp.device), ref_rejected[indices].to(logp.device)
        return cdpo_loss(logp[:n], logp[n:], ref_c, ref_r, beta, epsilon).mean()

    return loss_for_batch


def disable_dropout(model) -> None:
    """No dropout while training (as TRL's DPO does), so the policy equals the reference at the first step."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):  # Llama, Gemma: functional dropout
            module.attention_dropout = 0.0


class Clock:
    """Seconds per phase of a run, for its metrics."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.start = time.time()

    def lap(self, phase: str) -> None:
        self.seconds[phase] = round(time.time() - self.start, 1)
        self.start = time.time()


def judged_pairs(cfg: CdpoConfig, model, tokenizer, weak_model_dirs: list[str], strong_train: pd.DataFrame,
                 prompts: list[str], clock: Clock) -> tuple[pd.DataFrame, list[Pair], int, int]:
    """The preference pairs (Eqn 8): M candidates per prompt from the start model, scored by the
    weak ensemble; with how many prompts were dropped for identical or tied candidates."""
    m = cfg.candidates
    candidates = draw_candidates(model, tokenizer, prompts, m=m, decoding=cfg.decoding, temperature=cfg.temperature,
                                 max_new_tokens=cfg.max_new_tokens, batch_size=GENERATION_BATCH_SIZE)
    clock.lap("candidates")
    flat_prompts = [p for p in prompts for _ in range(m)]
    logp, lengths = judge(weak_model_dirs, flat_prompts, [t for texts in candidates for t in texts])
    per_prompt = [slice(i * m, (i + 1) * m) for i in range(len(prompts))]
    scores = [preference_scores(logp[:, s], lengths[:, s], cfg.weights, cfg.score) for s in per_prompt]
    per_weak = logp if cfg.score == "sequence_prob" else logp / np.maximum(lengths, 1)
    pairs, n_identical, n_tied = select_pairs(candidates, scores)
    print(f"cdpo: {len(pairs)} pairs from {len(prompts)} prompts; {n_identical} dropped (all candidates "
          f"identical), {n_tied} dropped (all candidates scored the same)", flush=True)
    clock.lap("judging")
    frame = pairs_frame(strong_train, candidates, scores, per_weak.reshape(len(cfg.members), len(prompts), m), pairs, cfg)
    return frame, pairs, n_identical, n_tied


def policy_with_reference(cfg: CdpoConfig, model, tokenizer, frame: pd.DataFrame, pair_prompts: list[str]):
    """The policy to train (no dropout, its top blocks or LoRA adapters trainable), and in
    `frame` the reference's log-probabilities of each pair: the start model, or with LoRA
    this model with its adapters switched off."""
    disable_dropout(model)
    freeze_for(model, cfg.train_layers)
    if cfg.engine.lora.rank:
        model = add_lora(model, cfg.engine.lora, cfg.train_layers)
    with model.disable_adapter() if cfg.engine.lora.rank else contextlib.nullcontext():
        for side in ("chosen", "rejected"):
            frame[f"ref_{side}"] = sequence_logprobs(model, tokenizer, pair_prompts, list(frame[side]),
                                                     SCORING_BATCH_SIZE)[0]
    return model


def run_cdpo(cfg: CdpoConfig, start_model_dir: str, weak_model_dirs: list[str], split_dir: str | Path,
             out_pairs: str | Path, out_metrics: str | Path) -> dict:
    """cDPO (Eqns 9-10) from a strong run's weights on the weak ensemble's preferences, trained
    as every strong run is (ws2s.train.strong); the test SLU-F1 before and after."""
    if len(weak_model_dirs) != len(cfg.members) or len(cfg.weights) != len(cfg.members):
        raise Ws2sError(f"cdpo: {len(weak_model_dirs)} weak model folders, {len(cfg.members)} members "
                        f"({', '.join(cfg.members)}) and {len(cfg.weights)} weights must match")
    split_dir = Path(split_dir)
    strong_train = read_parquet(split_dir / "strong_train.parquet", ["id", "sentence"])
    test = read_parquet(split_dir / "test.parquet", UTTERANCE_COLUMNS)
    clock = Clock()
    generator = seed_everything(cfg.seed)
    model, tokenizer = load_causal(start_model_dir)
    model.to(device())
    test_prompts = [render_prompt(PROMPTS[cfg.prompt], s) for s in test["sentence"]]

    def evaluate(when: str) -> dict:
        texts = decode(model, tokenizer, test_prompts, beams=cfg.test_beams, max_new_tokens=cfg.max_new_tokens,
                       batch_size=GENERATION_BATCH_SIZE, desc=f"test {when}")
        clock.lap(f"test_{when}")
        return slu_scores(test, texts)

    before = evaluate("before")
    prompts = [render_prompt(PROMPTS[cfg.prompt], s) for s in strong_train["sentence"]]
    frame, pairs, n_identical, n_tied = judged_pairs(cfg, model, tokenizer, weak_model_dirs, strong_train, prompts, clock)
    pair_prompts = [prompts[p.prompt] for p in pairs]
    chosen_items, rejected_items = (encode_pairs(tokenizer, pair_prompts, list(frame[side])) for side in ("chosen", "rejected"))
    model = policy_with_reference(cfg, model, tokenizer, frame, pair_prompts)
    if is_main_process():
        write_parquet(frame, out_pairs, schemas.PREFERENCE_PAIRS)
    clock.lap("reference")
    references = (torch.tensor(frame[f"ref_{side}"].to_numpy()) for side in ("chosen", "rejected"))
    loss_for_batch = cdpo_batch_loss(model, tokenizer, chosen_items, rejected_items, *references, cfg.beta, cfg.epsilon)
    # Adam, no weight decay, a linear schedule (TRL's DPO defaults); keyed on the pairs' texts (equal on all ranks)
    result = train_strong(cfg, [model], loss_for_batch, len(pairs), out_metrics, generator=generator,
                          optimizer="adam", schedule="linear", desc=f"cdpo {cfg.ensemble} seed {cfg.seed}",
                          key=run_key(cfg, start_model_dir, [frame[["id", "chosen", "rejected"]]]))
    clock.lap("train")
    if not is_main_process():  # every rank trained; rank 0 scores and writes
        return {}
    after = evaluate("after")
    metrics = {
        "seed": cfg.seed, "ensemble": cfg.ensemble, "members": list(cfg.members), "weights": list(cfg.weights),
        "start": f"{cfg.start_method}/{cfg.ensemble}/{'aux' if cfg.start_aux else 'noaux'}",
        "slu_f1_before": before["slu_f1"], "slu_f1_after": after["slu_f1"],
        "invalid_json_before": before["invalid_json"], "invalid_json_after": after["invalid_json"],
        "n_test": len(test), "n_prompts": len(prompts), "n_pairs": len(pairs),
        "n_dropped_identical": n_identical, "n_dropped_tied": n_tied, "score": cfg.score, "decoding": cfg.decoding,
        "candidates": cfg.candidates, "beta": cfg.beta, "epsilon": cfg.epsilon,
        "first_loss": result.losses[0] if result.losses else None, "losses": result.epoch_means(cfg.epochs),
        "train_seconds": clock.seconds["train"], "seconds": clock.seconds,
    }
    write_json(metrics, out_metrics)
    return metrics
