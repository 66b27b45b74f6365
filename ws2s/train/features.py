"""Frozen features of the strong model, for the linear-probe setting (`train_layers: 0`):
what its classification head would see, computed once per data set and reused by every
method and seed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ws2s import schemas
from ws2s.io import read_parquet, write_json, write_parquet
from ws2s.train.classify import encode, forward_all, head_name, load_classifier, token_forward
from ws2s.train.weak import PAIR_COLUMNS


@torch.no_grad()
def extract_features(model_path: str, frames: dict[str, pd.DataFrame], max_length: int) -> pd.DataFrame:
    """What the classification head would see, for every example of every split."""
    model, tokenizer = load_classifier(model_path)
    setattr(model, head_name(model), nn.Identity())
    model.eval()
    rows = []
    for split, frame in frames.items():
        forward = token_forward(model, tokenizer, encode(tokenizer, frame, max_length))
        feats = forward_all(forward, len(frame))
        rows.append(pd.DataFrame({"id": frame["id"].to_numpy(), "split": split, "features": list(feats)}))
    return pd.concat(rows, ignore_index=True)


def write_features(model_path: str, split_dir: str | Path, max_length: int, out: str | Path,
                   out_info: str | Path) -> None:
    """The features Parquet, and beside it the backbone's size for Table 1."""
    from transformers import AutoConfig, AutoModel

    split_dir = Path(split_dir)
    frames = {s: read_parquet(split_dir / f"{s}.parquet", PAIR_COLUMNS) for s in ("strong_train", "test")}
    features = extract_features(model_path, frames, max_length)
    with torch.device("meta"):
        params = sum(p.numel() for p in AutoModel.from_config(AutoConfig.from_pretrained(model_path)).parameters())
    write_parquet(features, out, schemas.FEATURES)
    write_json({"params": params, "hidden_size": len(features["features"].iloc[0])}, out_info)
