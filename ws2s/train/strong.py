"""The strong stage of the classification track: every Weak(S)-to-Strong method.

| method      | targets                                       | loss                     |
| ----------- | --------------------------------------------- | ------------------------ |
| ceiling     | strong_train gold (the only reader of it)     | cross-entropy            |
| single      | one weak model's soft labels                  | cross-entropy (Eqn 1)    |
| naive       | every member's soft labels, weights λ_i       | Σ λ_i CE (Eqn 2)         |
| flyingsquid | label-model posterior over members' hard votes | cross-entropy            |
| bayesian    | every member's soft labels, weights λ_i       | Σ λ_i EDL (Eqns 3-5)     |

Each may add the auxiliary confidence term. With `train_layers: 0` the strong model is a
linear probe on cached frozen features (`ws2s.train.features`), the CPU-sized setting;
otherwise the whole model (or its top blocks) trains as in the paper. Either way the
config's `engine` picks plain PyTorch or DeepSpeed, and a run killed by SIGTERM resumes
from its checkpoint (`ws2s.train.engine`).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ws2s import schemas
from ws2s.config import StrongTrainConfig, canonical
from ws2s.errors import Ws2sError
from ws2s.io import read_json, read_parquet, write_json, write_parquet
from ws2s.labelmodel import flying_squid_soft_labels
from ws2s.losses import LossConfig, dirichlet_log_strength, training_summary
from ws2s.metrics import accuracy, expected_calibration_error
from ws2s.train.classify import (NUM_CLASSES, encode, fit, forward_all, freeze_for, load_classifier, one_hot_targets,
                                 predict_probs, seed_everything, token_forward)
from ws2s.train.engine import EngineConfig, checkpoint_dir_for, is_main_process
from ws2s.train.weak import PAIR_COLUMNS, probs_frame

# Periodic checkpoints besides the one SIGTERM triggers bound the work a SIGKILL loses; by
# time, since a 7B ZeRO checkpoint (weights and fp32 optimizer state) is about 100 GB.
CHECKPOINT_MINUTES = 30

LOSS_KIND = {"ceiling": "ce", "single": "ce", "naive": "ce", "flyingsquid": "ce", "bayesian": "edl"}


def aligned(frame: pd.DataFrame, ids: pd.Series, columns: list[str], what: str) -> np.ndarray:
    """`frame[columns]` in the order of `ids`; every id must be there exactly once."""
    indexed = frame.set_index("id")
    if not indexed.index.is_unique:
        raise Ws2sError(f"{what}: duplicate ids")
    missing = ids[~ids.isin(indexed.index)]
    if len(missing):
        raise Ws2sError(f"{what}: no row for id {missing.iloc[0]} ({len(missing)} ids missing)")
    return indexed.loc[ids, columns].to_numpy()


def weak_targets(cfg: StrongTrainConfig, ids: pd.Series, weak_label_files: list[str]) -> torch.Tensor:
    """[B, N, K] soft targets of the method from its members' weak labels on strong_train."""
    frames = [read_parquet(f, [c.name for c in schemas.CLASS_PROBS]) for f in weak_label_files]
    frames = [f[f["split"] == "strong_train"] for f in frames]
    if cfg.method == "flyingsquid":
        votes = np.stack([aligned(f, ids, ["pred"], path)[:, 0] for f, path in zip(frames, weak_label_files)], axis=1)
        return torch.tensor(flying_squid_soft_labels(votes.astype(float)), dtype=torch.float32)[:, None]
    probs = [aligned(f, ids, ["prob_0", "prob_1"], path) for f, path in zip(frames, weak_label_files)]
    return torch.tensor(np.stack(probs, axis=1), dtype=torch.float32)


def gold_targets(ids: pd.Series, gold_file: str) -> torch.Tensor:
    gold = read_parquet(gold_file, ["id", "label"])
    return one_hot_targets(aligned(gold, ids, ["label"], gold_file)[:, 0])


def _feature_matrix(features: pd.DataFrame, ids: pd.Series, split: str, path: str) -> torch.Tensor:
    part = features[features["split"] == split]
    return torch.tensor(np.stack(aligned(part, ids, ["features"], path)[:, 0]), dtype=torch.float32)


def _run_key(cfg: StrongTrainConfig, model_path: str | None, targets: torch.Tensor,
             features: torch.Tensor | None) -> str:
    """What a checkpoint must match to be resumed: the params and the data actually read."""
    digest = hashlib.sha256(canonical(asdict(cfg)).encode())
    digest.update(str(model_path).encode())
    for tensor in (targets, features):
        if tensor is not None:
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


# ---- one strong run --------------------------------------------------------------------


def run_strong_classification(cfg: StrongTrainConfig, model_path: str | None, split_dir: str | Path,
                              weak_label_files: list[str], gold_file: str | None, features_file: str | None,
                              out_predictions: str | Path,
                              out_metrics: str | Path) -> dict:
    split_dir = Path(split_dir)
    # strong_train.parquet has no label column: the strong stage cannot read its gold
    # from there; only the ceiling is handed strong_train_gold.parquet.
    strong_train = read_parquet(split_dir / "strong_train.parquet", PAIR_COLUMNS)
    test = read_parquet(split_dir / "test.parquet", PAIR_COLUMNS + ["label"])
    ids = strong_train["id"]
    if cfg.method == "ceiling":
        targets = gold_targets(ids, gold_file)
    else:
        targets = weak_targets(cfg, ids, weak_label_files)
    weights = torch.tensor(cfg.weights, dtype=torch.float32)
    loss_cfg = LossConfig(**cfg.loss)

    generator = seed_everything(cfg.seed)
    if cfg.train_layers == 0:
        features = read_parquet(features_file, ["id", "split", "features"])
        backbone_params = read_json(Path(features_file).with_suffix(".json"))["params"]
        train_x = _feature_matrix(features, ids, "strong_train", features_file)
        test_x = _feature_matrix(features, test["id"], "test", features_file)
        head = nn.Linear(train_x.shape[1], NUM_CLASSES)
        modules = [head]
        backbone_params += sum(p.numel() for p in head.parameters())
        train_forward = lambda idx: head(train_x[idx].to(head.weight.device))  # noqa: E731
        test_forward = lambda idx: head(test_x[idx].to(head.weight.device))  # noqa: E731
    else:
        model, tokenizer = load_classifier(model_path)
        freeze_for(model, cfg.train_layers)
        modules = [model]
        backbone_params = sum(p.numel() for p in model.parameters())
        train_forward = token_forward(model, tokenizer, encode(tokenizer, strong_train, cfg.max_length))
        test_forward = token_forward(model, tokenizer, encode(tokenizer, test, cfg.max_length))

    result = fit(train_forward, modules, targets, weights, loss_cfg, epochs=cfg.epochs,
                 batch_size=cfg.batch_size, lr=cfg.lr, generator=generator,
                 desc=f"{cfg.method} seed {cfg.seed}", engine=EngineConfig.from_params(cfg.engine),
                 checkpoint_dir=checkpoint_dir_for(out_metrics),
                 checkpoint_minutes=CHECKPOINT_MINUTES,
                 run_key=_run_key(cfg, model_path, targets, train_x if cfg.train_layers == 0 else None))
    if not is_main_process():
        return {}
    test_probs = predict_probs(test_forward, modules, len(test), loss_cfg)
    test_accuracy = accuracy(test_probs, test["label"].to_numpy())
    predictions = probs_frame(test["id"], "test", test_probs)
    if loss_cfg.kind == "edl":
        strength = np.exp(forward_all(test_forward, len(test), lambda logits: dirichlet_log_strength(logits, loss_cfg))
                          .astype(np.float64))
        predictions["strength"], predictions["vacuity"] = strength, NUM_CLASSES / strength
    else:
        predictions["strength"] = predictions["vacuity"] = np.nan
    metrics = {
        "method": cfg.method,
        "members": cfg.members,
        "weights": cfg.weights,
        "aux": loss_cfg.aux,
        "seed": cfg.seed,
        "model": cfg.model_name,
        "role": "strong",
        "test_accuracy": test_accuracy,
        "test_ece": expected_calibration_error(test_probs, test["label"].to_numpy()),
        "params": backbone_params,
        "train_seconds": round(result.seconds, 1),
        "final_train_loss": float(np.mean(result.losses[-10:])),
        **training_summary(result.stats, loss_cfg),
    }
    write_parquet(predictions, out_predictions, schemas.STRONG_PREDICTIONS)
    write_json(metrics, out_metrics)
    return metrics
