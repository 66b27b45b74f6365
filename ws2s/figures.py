"""Figures: agreement between weak models (the paper's Figure 3) and PGR per method."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def agreement(predictions: dict[str, pd.Series]) -> pd.DataFrame:
    """Classification: the share of examples on which model a's predicted class equals b's
    (a's accuracy against b as gold); predictions are indexed by example id."""
    names = list(predictions)
    frame = pd.DataFrame(predictions)
    if frame.isna().any().any():
        raise ValueError("weak models labelled different examples")
    return pd.DataFrame([[float((frame[a] == frame[b]).mean()) for b in names] for a in names], index=names, columns=names)


def levenshtein_similarity(hypotheses: dict[str, pd.Series]) -> pd.DataFrame:
    """Generation: the mean Levenshtein similarity (1 − normalised edit distance) of two
    models' hypotheses for the same prompts."""
    import Levenshtein

    names = list(hypotheses)
    frame = pd.DataFrame(hypotheses)
    return pd.DataFrame([[float(np.mean([Levenshtein.ratio(x, y) for x, y in zip(frame[a], frame[b])]))
                          for b in names] for a in names], index=names, columns=names)


def heatmap(matrix: pd.DataFrame, title: str, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 * len(matrix) + 2.5, 1.0 * len(matrix) + 2))
    image = ax.imshow(matrix.to_numpy(), vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(matrix)), matrix.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(matrix)), matrix.index)
    for i in range(len(matrix)):
        for j in range(len(matrix)):
            value = matrix.iat[i, j]
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pgr_bars(results: pd.DataFrame, title: str, path: str | Path) -> None:
    """PGR per method, without and with aux: mean over seeds, error bars one sample std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results.dropna(subset=["pgr"])
    methods = list(dict.fromkeys(runs["method"]))
    variants = list(dict.fromkeys(runs["aux"]))
    fig, ax = plt.subplots(figsize=(1.1 * len(methods) + 3, 4.5))
    width = 0.8 / max(len(variants), 1)
    for k, aux in enumerate(variants):
        stats = runs[runs["aux"] == aux].groupby("method", sort=False)["pgr"].agg(["mean", "std", "count"])
        stats = stats.reindex(methods)
        ax.bar(np.arange(len(methods)) + k * width, 100 * stats["mean"], width,
               yerr=100 * stats["std"].fillna(0.0), capsize=3, label="with aux" if aux == "aux" else "without aux")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(methods)) + width * (len(variants) - 1) / 2, methods, rotation=30, ha="right")
    ax.set_ylabel("PGR (%)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
