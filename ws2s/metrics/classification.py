"""Classification metrics: accuracy and calibration (ECE, reliability bins)."""

from __future__ import annotations

import numpy as np


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == labels).mean())


# ECE bins, as Guo et al. (2017) and the calibration literature after them
ECE_BINS = 15


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE: Σ_b |B_b|/n · |accuracy(B_b) − confidence(B_b)| over equal-width bins of the
    predicted class's probability (torchmetrics' multiclass calibration error, L1 norm)."""
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    return float(multiclass_calibration_error(torch.as_tensor(np.asarray(probs, dtype=np.float32)),
                                              torch.as_tensor(np.asarray(labels, dtype=np.int64)),
                                              num_classes=probs.shape[1], n_bins=n_bins, norm="l1"))


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS):
    """Per equal-width confidence bin: (lower edge, mean confidence, accuracy, count); the
    reliability diagram's points (empty bins left out)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    which = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    return [(b / n_bins, float(confidence[which == b].mean()), float(correct[which == b].mean()), int((which == b).sum()))
            for b in range(n_bins) if (which == b).any()]
