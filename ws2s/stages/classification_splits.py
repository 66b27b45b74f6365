"""The classification splits stage: source -> balanced binary Parquet splits."""

from __future__ import annotations

from pathlib import Path

from ws2s import schemas
from ws2s.config import SplitConfig
from ws2s.data.binary import make_splits
from ws2s.data.classification import dataset_of
from ws2s.data.leakage import Part, check_disjoint
from ws2s.io import write_parquet


def write_classification_splits(cfg: SplitConfig, out_dir: str | Path) -> dict[str, int]:
    """Write weak_train, strong_train and val (no gold), their gold files, and test; return row counts.
    Nothing is written when a training split shares a question with val or test."""
    questions = dataset_of(cfg.dataset, cfg.source).loader(cfg.source, f"data.{cfg.dataset}")
    splits = make_splits(cfg.dataset, questions, cfg.sizes, cfg.split_seed)
    origin = f"data.{cfg.dataset}: {cfg.source['source']}"
    check_disjoint([Part(s, splits[s], origin) for s in ("weak_train", "strong_train")],
                   [Part(s, splits[s], origin) for s in ("val", "test")], text="text", ids=("id", "question_id"))
    out_dir = Path(out_dir)
    write_parquet(splits["weak_train"], out_dir / "weak_train.parquet", schemas.LABELLED_PAIRS)
    write_parquet(splits["test"], out_dir / "test.parquet", schemas.LABELLED_PAIRS)
    # The strong stage reads strong_train.parquet and val.parquet, which have no label column
    # at all; their gold sits apart, handed to the strong ceiling alone (val: the paper's
    # protocol tunes the ceiling on gold validation data).
    for split in ("strong_train", "val"):
        frame = splits[split]
        write_parquet(frame.drop(columns="label"), out_dir / f"{split}.parquet", schemas.UNLABELLED_PAIRS)
        write_parquet(frame[["id", "label"]], out_dir / f"{split}_gold.parquet", schemas.GOLD)
    return {name: len(frame) for name, frame in splits.items()}
