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
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ws2s import schemas
from ws2s.config import CdpoConfig, canonical
from ws2s.data.slurp import PROMPTS, render_prompt, slu_scores
from ws2s.errors import Ws2sError
from ws2s.frames import UTTERANCE_COLUMNS
from ws2s.io import read_parquet, write_json, write_parquet
from ws2s.objectives import Pair, cdpo_loss, preference_scores, select_pairs
from ws2s.train.backbone import add_lora, freeze_for, seed_everything
from ws2s.train.engine import checkpoint_dir_for, device, is_main_process, train_loop
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


def run_cdpo(cfg: CdpoConfig, start_model_dir: str, weak_model_dirs: list[str], split_dir: str | Path,
             out_pairs: str | Path, out_metrics: str | Path) -> dict:
    if len(weak_model_dirs) != len(cfg.members) or len(cfg.weights) != len(cfg.members):
        raise Ws2sError(f"cdpo: {len(weak_model_dirs)} weak model folders, {len(cfg.members)} members "
                        f"({', '.join(cfg.members)}) and {len(cfg.weights)} weights must match")
    split_dir = Path(split_dir)
    strong_train = read_parquet(split_dir / "strong_train.parquet", ["id", "sentence"])
    test = read_parquet(split_dir / "test.parquet", UTTERANCE_COLUMNS)
    template = PROMPTS[cfg.prompt]
    seconds: dict[str, float] = {}
    clock = time.time()

    def lap(phase: str) -> None:
        nonlocal clock
        seconds[phase] = round(time.time() - clock, 1)
        clock = time.time()

    generator = seed_everything(cfg.seed)
    model, tokenizer = load_causal(start_model_dir)
    model.to(device())
    test_prompts = [render_prompt(template, s) for s in test["sentence"]]

    def evaluate(when: str) -> dict:
        texts = decode(model, tokenizer, test_prompts, beams=cfg.test_beams, max_new_tokens=cfg.max_new_tokens,
                       batch_size=GENERATION_BATCH_SIZE, desc=f"test {when}")
        return slu_scores(test, texts)

    before = evaluate("before")
    lap("test_before")

    prompts = [render_prompt(template, s) for s in strong_train["sentence"]]
    candidates = draw_candidates(model, tokenizer, prompts, m=cfg.candidates, decoding=cfg.decoding,
                                 temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                                 batch_size=GENERATION_BATCH_SIZE)
    lap("candidates")

    m = cfg.candidates
    flat_prompts = [p for p in prompts for _ in range(m)]
    logp, lengths = judge(weak_model_dirs, flat_prompts, [t for texts in candidates for t in texts])
    per_prompt = [slice(i * m, (i + 1) * m) for i in range(len(prompts))]
    scores = [preference_scores(logp[:, s], lengths[:, s], cfg.weights, cfg.score) for s in per_prompt]
    per_weak = logp if cfg.score == "sequence_prob" else logp / np.maximum(lengths, 1)
    pairs, n_identical, n_tied = select_pairs(candidates, scores)
    print(f"cdpo: {len(pairs)} pairs from {len(prompts)} prompts; {n_identical} dropped (all candidates "
          f"identical), {n_tied} dropped (all candidates scored the same)", flush=True)
    lap("judging")

    frame = pairs_frame(strong_train, candidates, scores, per_weak.reshape(len(cfg.members), len(prompts), m), pairs, cfg)
    pair_prompts = [prompts[p.prompt] for p in pairs]
    chosen_items = encode_pairs(tokenizer, pair_prompts, list(frame["chosen"]))
    rejected_items = encode_pairs(tokenizer, pair_prompts, list(frame["rejected"]))
    disable_dropout(model)
    freeze_for(model, cfg.train_layers)
    if cfg.engine.lora.rank:
        model = add_lora(model, cfg.engine.lora, cfg.train_layers)
    # the reference is the start model: with LoRA, this model with its adapters switched off
    with model.disable_adapter() if cfg.engine.lora.rank else contextlib.nullcontext():
        for side in ("chosen", "rejected"):
            frame[f"ref_{side}"] = sequence_logprobs(model, tokenizer, pair_prompts, list(frame[side]),
                                                     SCORING_BATCH_SIZE)[0]
    if is_main_process():
        write_parquet(frame, out_pairs, schemas.PREFERENCE_PAIRS)
    lap("reference")

    loss_for_batch = cdpo_batch_loss(model, tokenizer, chosen_items, rejected_items,
                                     torch.tensor(frame["ref_chosen"].to_numpy()),
                                     torch.tensor(frame["ref_rejected"].to_numpy()), cfg.beta, cfg.epsilon)
    # Adam with no weight decay and a linear schedule, as TRL's DPO trainer defaults.
    result = train_loop([model], loss_for_batch, len(pairs), epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                        generator=generator, optimizer="adam", schedule="linear",
                        engine=cfg.engine, checkpoint_dir=checkpoint_dir_for(out_metrics),
                        run_key=canonical(asdict(cfg)),
                        desc=f"cdpo {cfg.ensemble} seed {cfg.seed}")
    lap("train")
    if not is_main_process():  # every rank trained; rank 0 scores and writes
        return {}

    after = evaluate("after")
    lap("test_after")
    metrics = {
        "seed": cfg.seed, "ensemble": cfg.ensemble, "members": list(cfg.members), "weights": list(cfg.weights),
        "start": f"{cfg.start_method}/{cfg.ensemble}/{'aux' if cfg.start_aux else 'noaux'}",
        "slu_f1_before": before["slu_f1"], "slu_f1_after": after["slu_f1"],
        "invalid_json_before": before["invalid_json"], "invalid_json_after": after["invalid_json"],
        "n_test": len(test), "n_prompts": len(prompts), "n_pairs": len(pairs),
        "n_dropped_identical": n_identical, "n_dropped_tied": n_tied,
        "score": cfg.score, "decoding": cfg.decoding, "candidates": m, "beta": cfg.beta, "epsilon": cfg.epsilon,
        "first_loss": result.losses[0] if result.losses else None,
        "losses": result.epoch_means(cfg.epochs),
        "train_seconds": seconds["train"], "seconds": seconds,
    }
    write_json(metrics, out_metrics)
    return metrics
