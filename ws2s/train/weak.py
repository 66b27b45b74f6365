"""The weak stage of the classification track: finetune on gold, label strong_train and test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ws2s import schemas
from ws2s.config import WeakTrainConfig
from ws2s.io import read_parquet, write_json, write_parquet
from ws2s.train.classify import load_classifier, predict_probs, train_classifier

# Inference batch size: changes speed only, so it is not a config value that names outputs.
EVAL_BATCH_SIZE = 64
PAIR_COLUMNS = [f.name for f in schemas.UNLABELLED_PAIRS]


def weak_labels_frame(ids: pd.Series, split: str, probs: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "id": ids.to_numpy(),
        "split": split,
        "prob_0": probs[:, 0],
        "prob_1": probs[:, 1],
        "pred": probs.argmax(axis=1).astype(np.int8),
    })


def run_weak_classification(cfg: WeakTrainConfig, model_path: str, split_dir: str | Path,
                            out_labels: str | Path, out_metrics: str | Path) -> dict:
    split_dir = Path(split_dir)
    weak_train = read_parquet(split_dir / "weak_train.parquet", PAIR_COLUMNS + ["label"])
    strong_train = read_parquet(split_dir / "strong_train.parquet", PAIR_COLUMNS)
    test = read_parquet(split_dir / "test.parquet", PAIR_COLUMNS + ["label"])

    model, tokenizer = load_classifier(model_path)
    result = train_classifier(model, tokenizer, weak_train, cfg)
    strong_probs = predict_probs(model, tokenizer, strong_train, cfg.max_length, EVAL_BATCH_SIZE)
    test_probs = predict_probs(model, tokenizer, test, cfg.max_length, EVAL_BATCH_SIZE)
    accuracy = float((test_probs.argmax(axis=1) == test["label"].to_numpy()).mean())

    labels = pd.concat([weak_labels_frame(strong_train["id"], "strong_train", strong_probs),
                        weak_labels_frame(test["id"], "test", test_probs)], ignore_index=True)
    metrics = {
        "model": cfg.model_name,
        "seed": cfg.seed,
        "test_accuracy": accuracy,
        "params": result.total_params,
        "trainable_params": result.trainable_params,
        "train_seconds": round(result.seconds, 1),
        "final_train_loss": float(np.mean(result.losses[-10:])),
        "n_train": len(weak_train),
        "n_test": len(test),
    }
    write_parquet(labels, out_labels, schemas.WEAK_LABELS)
    write_json(metrics, out_metrics)
    return metrics
