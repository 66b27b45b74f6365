"""The shape every strong run shares, written once: both tracks' strong stages and cDPO.

A strong run is seeded, trains through `train_loop` with its checkpoint beside its metrics
(a SIGTERM saves, a rerun resumes), and, where it has a validation split, scores that split
after every epoch against the run's own targets: the weak labels or hypotheses of a
Weak(S)-to-Strong run, gold for the ceiling. That loss is the objective itself without the
auxiliary term, at the end of its KL annealing. The no-gold protocol keeps the epoch of the
lowest such loss (`nogold_epoch`); the paper's keeps the last. Every process trains; the
first alone scores and writes (`is_main_process`), and `run_record` is what each run's
metrics.json says about its training.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ws2s.config import LossConfig, canonical
from ws2s.errors import Ws2sError
from ws2s.objectives import training_summary
from ws2s.train.engine import FitResult, checkpoint_dir_for, train_loop

# Periodic checkpoints besides the one SIGTERM triggers bound the work a SIGKILL loses; by
# time, since a 7B ZeRO checkpoint (weights and fp32 optimizer state) is about 100 GB.
CHECKPOINT_MINUTES = 30


def train_strong(cfg, modules, loss_for_batch, n_examples: int, out_metrics: str | Path, *,
                 generator: torch.Generator, optimizer: str, schedule: str, desc: str, run_key: str | None = None,
                 on_epoch_end: Callable[[int], object] | None = None) -> FitResult:
    """Train a strong run's `modules` on `loss_for_batch` by its config's epochs, batch size,
    learning rate and engine, `generator` ordering the data; its checkpoint lies beside
    `out_metrics` and is resumed only by a run of the same `run_key` (default: its whole config)."""
    return train_loop(modules, loss_for_batch, n_examples, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                      generator=generator, optimizer=optimizer, schedule=schedule,
                      engine=cfg.engine, checkpoint_dir=checkpoint_dir_for(out_metrics),
                      checkpoint_minutes=CHECKPOINT_MINUTES, desc=desc,
                      run_key=canonical(asdict(cfg)) if run_key is None else run_key, on_epoch_end=on_epoch_end)


def validation_objective(loss_cfg: LossConfig) -> LossConfig:
    """What validation scores: the objective itself, without the auxiliary term (the step
    fraction 1.0 passed with it puts the KL at the end of its annealing)."""
    return replace(loss_cfg, aux=False)


def validation_loss(batch_loss: Callable[[list[int]], torch.Tensor], n: int, batch_size: int) -> float:
    """The mean per-example loss over n validation examples, `batch_loss(indices)` being each
    batch's mean."""
    return sum(batch_loss(list(range(b, min(b + batch_size, n)))).item() * min(batch_size, n - b)
               for b in range(0, n, batch_size)) / n


def nogold_epoch(val_losses: list[float], where: str) -> int:
    """The epoch (from 0) of the lowest validation loss against the run's own targets: the
    no-gold protocol's pick; the first of equal ones."""
    losses = np.asarray(val_losses, dtype=np.float64)
    if np.isnan(losses).all():
        raise Ws2sError(f"{where}: every epoch's validation loss is NaN; the no-gold protocol has no epoch")
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
