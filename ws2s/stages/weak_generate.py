"""The weak stage of the generation track.

Per weak model and seed: finetune on weak_train gold (AdamW, linear schedule; the epoch with
the lowest validation loss is kept), then beam-search generation (greedy with one beam) on
strong_train, val and test with per-token and per-word log-probabilities and the M-best list.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ws2s import schemas
from ws2s.config import WeakGenerationConfig
from ws2s.data.slurp import PROMPTS, parse_slots, render_prompt, slu_scores
from ws2s.frames import UTTERANCE_COLUMNS
from ws2s.io import read_parquet, write_json, write_parquet
from ws2s.mapping import words_with_log_probs
from ws2s.models import save_checkpoint
from ws2s.train.backbone import freeze_for, seed_everything
from ws2s.train.generate import GENERATION_BATCH_SIZE, encode_pairs, finetune, for_inference, generate, load_causal


def hypotheses_frame(ids: pd.Series, split: str, hyps) -> pd.DataFrame:
    rows = []
    for example_id, hyp in zip(ids, hyps):
        ends = list(hyp.token_starts[1:]) + [len(hyp.text)]
        words, word_logp = words_with_log_probs(hyp.text, hyp.token_starts, hyp.token_logprobs)
        rows.append({
            "id": example_id, "split": split, "text": hyp.text, "valid_json": parse_slots(hyp.text) is not None,
            "token_ids": hyp.token_ids, "tokens": [hyp.text[a:b] for a, b in zip(hyp.token_starts, ends)],
            "token_logprobs": hyp.token_logprobs.astype(np.float32), "words": words,
            "word_logprobs": np.asarray(word_logp, dtype=np.float32), "nbest": hyp.nbest,
            "nbest_scores": np.asarray(hyp.nbest_scores, dtype=np.float32),
        })
    return pd.DataFrame(rows)


def run_weak_generation(cfg: WeakGenerationConfig, model_path: str, split_dir: str | Path, out_hypotheses: str | Path,
                        out_metrics: str | Path, out_model: str | Path) -> dict:
    split_dir = Path(split_dir)
    weak_train = read_parquet(split_dir / "weak_train.parquet", UTTERANCE_COLUMNS)
    unlabelled = {split: read_parquet(split_dir / f"{split}.parquet", ["id", "sentence"]) for split in ("strong_train", "val")}
    test = read_parquet(split_dir / "test.parquet", UTTERANCE_COLUMNS)
    template = PROMPTS[cfg.prompt]
    engine = cfg.engine

    generator = seed_everything(cfg.seed)
    model, tokenizer = load_causal(model_path)
    freeze_for(model, cfg.train_layers)
    items = encode_pairs(tokenizer, [render_prompt(template, s) for s in weak_train["sentence"]], list(weak_train["target"]))
    order = torch.randperm(len(items), generator=generator).tolist()
    n_val = max(1, int(round(cfg.val_fraction * len(items))))
    val_items, train_items = [items[i] for i in order[:n_val]], [items[i] for i in order[n_val:]]
    result = finetune(model, tokenizer, train_items, val_items, epochs=cfg.epochs, batch_size=cfg.batch_size,
                      lr=cfg.lr, generator=generator, desc=f"finetune {cfg.model_name} seed {cfg.seed}",
                      train_layers=cfg.train_layers, engine=engine)
    save_checkpoint(model, tokenizer, Path(out_model))  # in full precision, before decoding casts it
    for_inference(model, engine.bf16)

    def run(frame: pd.DataFrame, split: str):
        prompts = [render_prompt(template, s) for s in frame["sentence"]]
        return generate(model, tokenizer, prompts, beams=cfg.weak_beams, max_new_tokens=cfg.max_new_tokens,
                        batch_size=GENERATION_BATCH_SIZE, desc=f"generate {split}")

    test_hyps = run(test, "test")
    metrics = {
        "dataset": "slurp", "model": cfg.model_name, "role": "weak", "seed": cfg.seed,
        **slu_scores(test, [h.text for h in test_hyps]),
        "params": sum(p.numel() for p in model.parameters()),
        "best_epoch": result.best_epoch, "val_losses": result.val_losses,
        "train_seconds": round(result.seconds, 1),
    }
    frame = pd.concat([hypotheses_frame(rows["id"], split, run(rows, split)) for split, rows in unlabelled.items()
                       if len(rows)] + [hypotheses_frame(test["id"], "test", test_hyps)], ignore_index=True)
    write_parquet(frame, out_hypotheses, schemas.HYPOTHESES)
    write_json(metrics, out_metrics)
    return metrics
