"""Paper-style result tables, written as CSV and Markdown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ws2s.io import read_json, write_text


def mean_std(values, decimals: int, scale: float = 100.0) -> str:
    """'mean ± std' of `values` × scale; std is the sample std (ddof=1), 0 for one value."""
    arr = np.asarray(list(values), dtype=float) * scale
    std = arr.std(ddof=1) if len(arr) > 1 else 0.0
    return f"{arr.mean():.{decimals}f} ± {std:.{decimals}f}"


def to_markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def write_table(frame: pd.DataFrame, stem: str | Path, title: str) -> None:
    stem = Path(stem)
    write_text(frame.to_csv(index=False), stem.with_suffix(".csv"))
    write_text(f"# {title}\n\n{to_markdown(frame)}", stem.with_suffix(".md"))


def table1(metric_files: dict[tuple[str, str], list[str]], decimals: int) -> pd.DataFrame:
    """Table 1: per (dataset, model) the parameter count and test accuracy over seeds.

    `metric_files` maps (dataset, model) to that model's metrics.json files, one per seed.
    """
    rows = []
    for (dataset, model), files in metric_files.items():
        metrics = [read_json(f) for f in files]
        rows.append({
            "dataset": dataset,
            "model": model,
            "role": metrics[0].get("role", "weak"),
            "params (M)": f"{metrics[0]['params'] / 1e6:.1f}",
            "accuracy (%)": mean_std((m["test_accuracy"] for m in metrics), decimals),
            "seeds": len(metrics),
        })
    return pd.DataFrame(rows)
