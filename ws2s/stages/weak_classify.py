"""The weak stage of the classification track: finetune on gold, label strong_train, val and test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ws2s import schemas
from ws2s.config import WeakTrainConfig
from ws2s.frames import PAIR_COLUMNS, probs_frame
from ws2s.io import read_parquet, write_json, write_parquet
from ws2s.metrics.classification import accuracy
from ws2s.objectives import LossConfig
from ws2s.train.backbone import freeze_for, seed_everything
from ws2s.train.classify import encode, fit, load_classifier, one_hot_targets, predict_probs, token_forward

GOLD_LOSS = LossConfig(kind="ce")


def run_weak_classification(cfg: WeakTrainConfig, model_path: str, split_dir: str | Path,
                            out_labels: str | Path, out_metrics: str | Path) -> dict:
    split_dir = Path(split_dir)
    weak_train = read_parquet(split_dir / "weak_train.parquet", PAIR_COLUMNS + ["label"])
    unlabelled = {split: read_parquet(split_dir / f"{split}.parquet", PAIR_COLUMNS) for split in ("strong_train", "val")}
    test = read_parquet(split_dir / "test.parquet", PAIR_COLUMNS + ["label"])

    generator = seed_everything(cfg.seed)
    model, tokenizer = load_classifier(model_path)
    trainable = freeze_for(model, cfg.train_layers)
    result = fit(token_forward(model, tokenizer, encode(tokenizer, weak_train, cfg.max_length)), [model],
                 one_hot_targets(weak_train["label"].to_numpy()), torch.ones(1), GOLD_LOSS,
                 epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, generator=generator,
                 desc=f"train {cfg.model_name} seed {cfg.seed}")

    def probs_on(frame, split):
        return predict_probs(token_forward(model, tokenizer, encode(tokenizer, frame, cfg.max_length)),
                             [model], len(frame), GOLD_LOSS, desc=f"labels of {split}")

    test_probs = probs_on(test, "test")
    test_accuracy = accuracy(test_probs, test["label"].to_numpy())
    # weak labels on strong_train (the strong stage's targets), val (the no-gold protocol's
    # model selection) and test (agreement, Figure 3)
    labels = pd.concat([probs_frame(frame["id"], split, probs_on(frame, split)) for split, frame in unlabelled.items()
                        if len(frame)] + [probs_frame(test["id"], "test", test_probs)], ignore_index=True)
    metrics = {
        "dataset": cfg.dataset,
        "model": cfg.model_name,
        "role": "weak",
        "seed": cfg.seed,
        "test_accuracy": test_accuracy,
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": trainable,
        "train_seconds": round(result.seconds, 1),
        "final_train_loss": float(np.mean(result.losses[-10:])),
        "n_train": len(weak_train),
        "n_test": len(test),
    }
    write_parquet(labels, out_labels, schemas.CLASS_PROBS)
    write_json(metrics, out_metrics)
    return metrics
