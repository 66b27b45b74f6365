"""The label-model stage of the classification track: per ensemble and seed, every configured
label model's soft labels from the members' hard votes, on strong_train and val, in one
Parquet file (what the label-model methods train on, and what `ws2s inspect` shows beside
the votes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ws2s import schemas
from ws2s.config import LabelModelConfig
from ws2s.errors import Ws2sError
from ws2s.frames import aligned
from ws2s.io import read_parquet, write_parquet
from ws2s.label_models import soft_labels

SPLITS = ("strong_train", "val")


def label_model_schema(methods: list[str]) -> pa.Schema:
    return pa.schema([*schemas.LABEL_MODEL_OUTPUTS, *((m, pa.float32()) for m in methods)])


def run_label_models(cfg: LabelModelConfig, split_dir: str | Path, weak_label_files: list[str], out: str | Path) -> dict:
    frames = [read_parquet(f, [c.name for c in schemas.CLASS_PROBS]) for f in weak_label_files]
    parts = []
    for split in SPLITS:
        ids = read_parquet(Path(split_dir) / f"{split}.parquet", ["id"])["id"]
        if not len(ids):
            continue
        votes = np.stack([aligned(f[f["split"] == split], ids, ["pred"], path)[:, 0]
                          for f, path in zip(frames, weak_label_files)], axis=1)
        if not np.isin(votes, (0, 1)).all():
            raise Ws2sError(f"{', '.join(weak_label_files)}: 'pred' must be 0 or 1; got {sorted(set(votes.ravel()) - {0, 1})[:3]}")
        votes = votes.astype(np.int8)
        part = pd.DataFrame({"id": ids.to_numpy(), "split": split, "votes": list(votes)})
        for method in cfg.methods:  # each fit on this split's votes alone: no label is read
            part[method] = soft_labels(method, votes, cfg.class_balance, cfg.seed)[:, 1].astype(np.float32)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    write_parquet(frame, out, label_model_schema(cfg.methods))
    return {m: float(frame[m].mean()) for m in cfg.methods}
