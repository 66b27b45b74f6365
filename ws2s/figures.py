"""Figures: agreement between weak models (the paper's Figure 3) and PGR per method."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ws2s.io import atomic_path


def agreement(predictions: dict[str, pd.Series]) -> pd.DataFrame:
    """Classification: the share of examples on which model a's predicted class equals b's
    (a's accuracy against b as gold); predictions are indexed by example id."""
    names = list(predictions)
    frame = pd.DataFrame(predictions)
    if frame.isna().any().any():
        raise ValueError("weak models labelled different examples")
    return pd.DataFrame([[float((frame[a] == frame[b]).mean()) for b in names] for a in names], index=names, columns=names)


def levenshtein_similarity(hypotheses: dict[str, pd.Series]) -> pd.DataFrame:
    """Generation: the mean Levenshtein similarity, 1 − edit distance / the longer length,
    of two models' hypotheses for the same prompts."""
    import Levenshtein

    def similarity(x: str, y: str) -> float:
        return 1.0 - Levenshtein.distance(x, y) / max(len(x), len(y), 1)

    names = list(hypotheses)
    frame = pd.DataFrame(hypotheses)
    return pd.DataFrame([[float(np.mean([similarity(x, y) for x, y in zip(frame[a], frame[b])]))
                          for b in names] for a in names], index=names, columns=names)


def agreement_figure(kind: str, files: list[str], title: str, out: str | Path) -> pd.DataFrame:
    """Figure 3 from weak labels (classification) or weak generations, averaged over seeds.

    `files` are `.../{model}/seed{seed}/FILE` paths, each model's seeds in the same order.
    """
    from ws2s.io import read_parquet

    by_model: dict[str, list[str]] = {}
    for path in files:
        by_model.setdefault(Path(path).parts[-3], []).append(path)
    matrices = []
    for seed_files in zip(*by_model.values()):
        test = {m: read_parquet(f).query("split == 'test'").set_index("id") for m, f in zip(by_model, seed_files)}
        if kind == "classification":
            matrices.append(agreement({m: f["pred"] for m, f in test.items()}))
        else:
            matrices.append(levenshtein_similarity({m: f["text"] for m, f in test.items()}))
    matrix = sum(matrices) / len(matrices)
    what = "agreement (accuracy against each other)" if kind == "classification" else "Levenshtein similarity"
    heatmap(matrix, f"{title}\nweak models' {what}", out)
    return matrix


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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def pgr_bars(results: pd.DataFrame, title: str, path: str | Path) -> None:
    """PGR per method, without and with aux: mean over seeds, error bars one sample std.

    As in the tables, a bar whose seeds include an undefined PGR (gap too small) is left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    undefined = results.groupby(["method", "aux"], sort=False)["pgr"].transform(lambda v: v.isna().any())
    runs = results[~undefined]
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
