"""The shape every strong run shares, written once: both tracks' strong stages and cDPO.

A strong run is seeded, trains through `train_loop` with its checkpoint beside its metrics
(a SIGTERM saves, a rerun resumes), and, where it has a validation split, scores that split
at every evaluation point (`evaluation_points`: each epoch's end; four an epoch in runs of
at most four epochs) against the run's own targets: the weak labels or hypotheses of a
Weak(S)-to-Strong run, gold for the ceiling. That loss is the objective itself without the
auxiliary term, at the end of its KL annealing. The no-gold protocol keeps the point of the
lowest such loss (`nogold_point`); the paper's keeps the last. Every process trains; the
first alone scores and writes (`is_main_process`), and `run_record` is what each run's
metrics.json says about its training.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ws2s.config import LossConfig, canonical
from ws2s.errors import Ws2sError
from ws2s.objectives import training_summary
from ws2s.train.engine import FitResult, checkpoint_dir_for, point_ends, train_loop

# Periodic checkpoints besides the one SIGTERM triggers bound the work a SIGKILL loses; by
# time, since a 7B ZeRO checkpoint (weights and fp32 optimizer state) is about 100 GB.
CHECKPOINT_MINUTES = 30

# A run of a few epochs would show its curve in a few points only: the early epochs are where
# a student taught by one weak model does best (README, "Training curves").
FEW_EPOCHS, POINTS_IN_FEW_EPOCHS = 4, 4


def evaluation_points(epochs: int) -> int:
    """Evaluation points an epoch of a strong run of `epochs` epochs."""
    return POINTS_IN_FEW_EPOCHS if epochs <= FEW_EPOCHS else 1


def point_epochs(epochs: int, n_examples: int, batch_size: int) -> list[float]:
    """Training progress, in epochs, at each evaluation point of a strong run."""
    steps = math.ceil(n_examples / batch_size)
    return [epoch + end / steps for epoch in range(epochs) for end in point_ends(steps, evaluation_points(epochs))]


def run_key(cfg, model_path: str | None, data: list) -> str:
    """What a strong run's checkpoint (and the weights its protocols keep) must match to be
    resumed: its params, its model, and the data it read (files, tables or arrays)."""
    digest = hashlib.sha256(canonical(asdict(cfg)).encode())
    digest.update(str(model_path).encode())
    for item in data:
        if item is None or isinstance(item, str) and not item:  # an input this run does not have
            continue
        if isinstance(item, (str, Path)):
            with open(item, "rb") as f:  # in pieces: the finetuned arm's states are hundreds of MB
                for piece in iter(lambda: f.read(1 << 24), b""):
                    digest.update(piece)
        elif isinstance(item, pd.DataFrame):
            digest.update(pd.util.hash_pandas_object(item, index=False).to_numpy().tobytes())
        else:
            digest.update(np.asarray(item).tobytes())
    return digest.hexdigest()


def train_strong(cfg, modules, loss_for_batch, n_examples: int, out_metrics: str | Path, *,
                 generator: torch.Generator, optimizer: str, schedule: str, desc: str, key: str,
                 on_point: Callable[[int], object] | None = None, points_per_epoch: int = 1) -> FitResult:
    """Train a strong run's `modules` on `loss_for_batch` by its config's epochs, batch size,
    learning rate and engine, `generator` ordering the data, calling `on_point` at each of
    `points_per_epoch` evaluation points an epoch; its checkpoint lies beside `out_metrics` and is resumed only by a run of
    the same `key` (`run_key`: its params, model and data)."""
    return train_loop(modules, loss_for_batch, n_examples, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                      generator=generator, optimizer=optimizer, schedule=schedule,
                      engine=cfg.engine, checkpoint_dir=checkpoint_dir_for(out_metrics),
                      checkpoint_minutes=CHECKPOINT_MINUTES, desc=desc,
                      run_key=key, on_point=on_point,
                      points_per_epoch=points_per_epoch)


def validation_objective(loss_cfg: LossConfig) -> LossConfig:
    """What validation scores: the objective itself, without the auxiliary term (the step
    fraction 1.0 passed with it puts the KL at the end of its annealing)."""
    return replace(loss_cfg, aux=False)


def validation_loss(batch_loss: Callable[[list[int]], torch.Tensor], n: int, batch_size: int) -> float:
    """The mean per-example loss over n validation examples, `batch_loss(indices)` being each
    batch's mean."""
    return sum(batch_loss(list(range(b, min(b + batch_size, n)))).item() * min(batch_size, n - b)
               for b in range(0, n, batch_size)) / n


def nogold_point(val_losses: list[float], where: str) -> int:
    """The evaluation point (from 0) of the lowest validation loss against the run's own
    targets: the no-gold protocol's pick; the first of equal ones."""
    losses = np.asarray(val_losses, dtype=np.float64)
    if np.isnan(losses).all():
        raise Ws2sError(f"{where}: every point's validation loss is NaN; the no-gold protocol has no point")
    return int(np.nanargmin(losses))


def run_record(cfg, result: FitResult, loss_cfg: LossConfig, params: int, last_steps: int) -> dict:
    """What every strong run's metrics.json says of the run and its training: method, source,
    members and weights, seed and model, the loss's statistics, the mean loss of its last steps."""
    return {
        "method": cfg.method, "source": cfg.source, "members": cfg.members, "weights": cfg.weights,
        "aux": loss_cfg.aux, "seed": cfg.seed, "model": cfg.model_name, "role": "strong", "params": params,
        "train_seconds": round(result.seconds, 1), "final_train_loss": float(np.mean(result.losses[-last_steps:])),
        "train_losses": result.epoch_means(cfg.epochs), **training_summary(result.stats, loss_cfg),
    }
