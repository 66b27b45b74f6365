"""The cross-tokenizer mapping stage: one weak model's hypotheses in the strong tokenizer.

For each strong_train hypothesis: tokenize it with the strong tokenizer; run the strong
model (as it starts the strong stage) teacher-forced on prompt + hypothesis to get its
confidence C_s, the maximum of its output distribution, at each target position; split
each word's log P(W) over its strong pieces by Eqn 7 (`ws2s.mapping.map_batch`). The
Parquet file is what every strong run on this weak model reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ws2s import schemas
from ws2s.config import MappingConfig
from ws2s.data.slurp import PROMPTS, render_prompt
from ws2s.frames import align_by_id
from ws2s.io import read_parquet, write_parquet
from ws2s.mapping import map_batch, starts_from_offsets
from ws2s.train.generate import encode_pairs, for_inference, load_causal, per_sequence, target_logits

# Batch size of the teacher-forced pass: changes speed only.
BATCH_SIZE = 16


def weak_token_starts(tokens: list[str]) -> np.ndarray:
    """Start offsets of a hypothesis's weak tokens from their pieces (they tile the text)."""
    lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(tokens) else np.zeros(0, np.int64)


@torch.no_grad()
def strong_confidence(model, tokenizer, prompts: list[str], texts: list[str]) -> list[np.ndarray]:
    """C_s at each of the text's strong tokens: max_v p(v | prompt, previous tokens), teacher-forced."""
    model.eval()
    items = encode_pairs(tokenizer, prompts, texts)
    out = []
    for b in tqdm(range(0, len(items), BATCH_SIZE), desc="strong confidence", mininterval=5):
        logits, _, real = target_logits(model, tokenizer, items[b:b + BATCH_SIZE])
        top = torch.softmax(logits.float(), dim=-1).amax(dim=-1)
        # the last target is EOS, which no hypothesis token maps to
        out += [conf[:-1].cpu().numpy() for conf in per_sequence(top, real)]
    return out


def map_hypotheses(cfg: MappingConfig, strong_model_path: str, split_dir: str | Path, hypotheses_file: str | Path,
                   out: str | Path) -> dict:
    """The strong_train and val hypotheses of one weak model in the strong tokenizer (Eqns 6-7)."""
    utterances = pd.concat([read_parquet(Path(split_dir) / f"{split}.parquet", ["id", "sentence"]).assign(split=split)
                            for split in ("strong_train", "val")], ignore_index=True)
    hyps = read_parquet(hypotheses_file, [f.name for f in schemas.HYPOTHESES])
    hyps = align_by_id(hyps[hyps["split"].isin(["strong_train", "val"])], utterances["id"], hypotheses_file)
    texts = list(hyps["text"])

    model, tokenizer = load_causal(strong_model_path)
    for_inference(model, cfg.bf16)
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    strong_starts = [starts_from_offsets(offsets) for offsets in encoded["offset_mapping"]]
    prompts = [render_prompt(PROMPTS[cfg.prompt], s) for s in utterances["sentence"]]
    confidence = strong_confidence(model, tokenizer, prompts, texts)
    weak_starts = [weak_token_starts(list(tokens)) for tokens in hyps["tokens"]]
    weak_logprobs = [np.asarray(lp, dtype=np.float64) for lp in hyps["token_logprobs"]]
    pieces = map_batch(texts, weak_starts, weak_logprobs, strong_starts, confidence, cfg.weighting)

    frame = pd.DataFrame({
        "id": utterances["id"].to_numpy(),
        "split": utterances["split"].to_numpy(),
        "text": texts,
        "strong_token_ids": [np.asarray(ids, dtype=np.int32) for ids in encoded["input_ids"]],
        "strong_tokens": [[t[a:b] for a, b in zip(s, list(s[1:]) + [len(t)])] for t, s in zip(texts, strong_starts)],
        "strong_confidence": [c.astype(np.float32) for c in confidence],
        "target_logprobs": [p.astype(np.float32) for p in pieces],
        "weak_logprob": [float(lp.sum()) for lp in weak_logprobs],
        "weak_mean_logprob": [float(lp.mean()) if len(lp) else 0.0 for lp in weak_logprobs],
    })
    write_parquet(frame, out, schemas.MAPPED_HYPOTHESES)
    return {"hypotheses": len(frame), "strong_tokens": int(sum(len(i) for i in encoded["input_ids"]))}
