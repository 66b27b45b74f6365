"""Figures: agreement between weak models (the paper's Figure 3), PGR per method, and the
reliability diagram of the classification runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ws2s.io import atomic_path


def save_figure(fig, path: str | Path) -> None:
    """Write `fig` as a PNG in one step (no half-written file) and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def agreement(predictions: dict[str, pd.Series]) -> pd.DataFrame:
    """Classification: the share of examples on which model a's predicted class equals b's
    (a's accuracy against b as gold); predictions are indexed by example id."""
    names = list(predictions)
    frame = pd.DataFrame(predictions)
    if frame.isna().any().any():
        from ws2s.errors import Ws2sError

        raise Ws2sError("the weak models' label files hold different test examples")
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

    `files` are weak runs' outputs, each model's seeds in the same order.
    """
    from ws2s.io import read_parquet, run_record

    by_model: dict[str, list[str]] = {}
    for path in files:
        by_model.setdefault(run_record(path)["model"], []).append(path)
    matrices = []
    for seed_files in zip(*by_model.values()):
        column = "pred" if kind == "classification" else "text"
        test = {m: read_parquet(f, ["id", "split", column]).query("split == 'test'").set_index("id")
                for m, f in zip(by_model, seed_files)}
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
    save_figure(fig, path)


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
    save_figure(fig, path)


def reliability_figure(runs: dict[tuple[str, str], list[str]], test_file: str, title: str, out: str | Path) -> dict:
    """Reliability diagram: per method row (label, aux), the test accuracy of each confidence
    bin against its mean confidence, the seeds' predictions pooled. Returns each row's ECE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ws2s.io import read_parquet
    from ws2s.metrics.classification import expected_calibration_error, reliability_bins

    gold = read_parquet(test_file, ["id", "label"]).set_index("id")["label"]
    variants = list(dict.fromkeys(aux for _, aux in runs))
    fig, axes = plt.subplots(1, len(variants), figsize=(5.5 * len(variants), 5), squeeze=False)
    eces = {}
    for ax, aux in zip(axes[0], variants):
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
        for (label, run_aux), files in runs.items():
            if run_aux != aux:
                continue
            frame = pd.concat([read_parquet(f, ["id", "prob_0", "prob_1"]) for f in files], ignore_index=True)
            probs, labels = frame[["prob_0", "prob_1"]].to_numpy(), gold.loc[frame["id"]].to_numpy()
            eces[(label, aux)] = expected_calibration_error(probs, labels)
            bins = reliability_bins(probs, labels)
            ax.plot([b[1] for b in bins], [b[2] for b in bins], marker="o", markersize=3,
                    label=f"{label} (ECE {100 * eces[(label, aux)]:.1f})")
        ax.set_xlim(0.45, 1.0)
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel("confidence (predicted class's probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{title}, {'with' if aux == 'aux' else 'without'} aux")
        ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, out)
    return eces


PROTOCOL_MARKERS = {"paper": ("o", "paper (last)"), "nogold": ("v", "no gold"), "fewgold": ("*", "few gold"),
                    "goldfree": ("D", "gold-free")}


def curves_figure(curves: pd.DataFrame, teachers: dict[tuple[str, int], float], title: str,
                  path: str | Path, score: str = "val_accuracy", ylabel: str = "gold validation accuracy (%)") -> None:
    """A gold validation score (column `score`) against training progress of every method (a
    panel per aux variant): the mean over seeds with a min-max band, each single-weak
    student's teacher as a dashed line of its colour, and a mark where each protocol the
    curves carry stops (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from ws2s.tables import METHOD_LABELS

    variants = list(dict.fromkeys(curves["aux"])) if len(curves) else []
    shown = {p: marker for p, marker in PROTOCOL_MARKERS.items() if p in curves.columns}
    rows = list(dict.fromkeys(zip(curves["method"], curves["source"]))) if len(curves) else []
    fig, axes = plt.subplots(1, max(len(variants), 1), figsize=(7 * max(len(variants), 1), 5), squeeze=False)
    if not variants:
        axes[0, 0].text(0.5, 0.5, "no validation split: no curves", ha="center", va="center")
    for ax, aux in zip(axes[0], variants):
        # the ceiling (run without aux only) in every panel, as the level to reach
        part = curves[(curves["aux"] == aux) | (curves["method"] == "ceiling")]
        for (method, source), run in part.groupby(["method", "source"], sort=False):
            colour = f"C{rows.index((method, source)) % 10}"
            by_point = run.groupby("point")
            epochs, mean = by_point["epochs"].first(), 100 * by_point[score].mean()
            ax.plot(epochs, mean, color=colour, label=METHOD_LABELS[method].format(source))
            ax.fill_between(epochs, 100 * by_point[score].min(), 100 * by_point[score].max(),
                            color=colour, alpha=0.15, linewidth=0)
            if method == "single" and (source, run["seed"].iloc[0]) in teachers:
                level = np.mean([teachers[(source, seed)] for seed in run["seed"].unique()])
                ax.axhline(100 * level, color=colour, linestyle="--", linewidth=0.8)
            for protocol, (marker, _) in shown.items():
                picked = run.loc[run[protocol], "epochs"]
                if len(picked):
                    at = float(picked.mean())
                    ax.plot([at], [np.interp(at, epochs, mean)], marker=marker, color=colour, markersize=7,
                            markeredgecolor="black", linestyle="none")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("training progress (epochs; linear below 1, log above)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {'with' if aux == 'aux' else 'without'} aux")
        handles = [plt.Line2D([], [], marker=m, color="grey", markeredgecolor="black", linestyle="none", label=name)
                   for m, name in shown.values()]
        handles.append(plt.Line2D([], [], color="grey", linestyle="--", label="teacher (single weak)"))
        ax.legend(handles=ax.get_legend_handles_labels()[0] + handles, fontsize=7)
    save_figure(fig, path)
