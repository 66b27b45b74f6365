"""Metrics: accuracy and Performance Gap Recovered."""

from __future__ import annotations

import math

import numpy as np

# Issue 8: below a 2-point gap between ceiling and weak model, PGR is noise, not a result.
MIN_GAP = 0.02


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == labels).mean())


def pgr(performance: float, weak: float, strong: float, min_gap: float = MIN_GAP) -> float:
    """(P − P_w) / (P_s − P_w); NaN (undefined) when the gap P_s − P_w is under `min_gap`.

    A gap of zero or below (weak at or above the ceiling) is also undefined, never a
    division error.
    """
    gap = strong - weak
    if not gap >= min_gap:
        return math.nan
    return (performance - weak) / gap


def multi_weak_pgr(performance: float, weak: list[float], strong: float, min_gap: float = MIN_GAP) -> float:
    """A multi-weak row's PGR: the mean of its PGRs against each of its weak models (as the
    paper does); undefined if any of them is."""
    values = [pgr(performance, w, strong, min_gap) for w in weak]
    return float(np.mean(values)) if not any(math.isnan(v) for v in values) else math.nan
