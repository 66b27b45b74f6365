"""Paper-style result tables, written as CSV and Markdown."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ws2s.io import read_json, write_text
from ws2s.metrics import MIN_GAP, multi_weak_pgr

GAP_TOO_SMALL = "n/a (gap too small)"
METHOD_LABELS = {
    "ceiling": "Strong ceiling (gold)",
    "single": "Weak-to-Strong ({})",
    "naive": "Naive Multi-Weak ({})",
    "flyingsquid": "Flying Squid ({})",
    "bayesian": "Bayesian Multi-Weak ({})",
}


def mean_std(values, decimals: int, scale: float = 100.0) -> str:
    """'mean ± std' of `values` × scale; std is the sample std (ddof=1), 0 for one value.
    Any undefined (NaN) value makes the cell 'n/a (gap too small)'."""
    arr = np.asarray(list(values), dtype=float) * scale
    if np.isnan(arr).any():
        return GAP_TOO_SMALL
    std = arr.std(ddof=1) if len(arr) > 1 else 0.0
    return f"{arr.mean():.{decimals}f} ± {std:.{decimals}f}"


def to_markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def write_table(frame: pd.DataFrame, stem: str | Path, title: str, notes: str = "") -> None:
    stem = Path(stem)
    write_text(frame.to_csv(index=False), stem.with_suffix(".csv"))
    write_text(f"# {title}\n\n{to_markdown(frame)}" + (f"\n{notes}\n" if notes else ""), stem.with_suffix(".md"))


def dataset_of(path: str) -> str:
    """results/classification/{dataset}/... -> dataset (the pipeline's own layout)."""
    return Path(path).parts[2]


def table1(metric_files: list[str], decimals: int) -> pd.DataFrame:
    """Table 1: per (dataset, model) the parameter count and test accuracy over seeds."""
    grouped: dict[tuple, list[dict]] = defaultdict(list)
    for path in metric_files:
        metrics = read_json(path)
        grouped[(dataset_of(path), metrics["role"], metrics["model"])].append(metrics)
    rows = [{
        "dataset": dataset,
        "model": model,
        "role": role,
        "params (M)": f"{runs[0]['params'] / 1e6:.1f}",
        "accuracy (%)": mean_std((m["test_accuracy"] for m in runs), decimals),
        "seeds": len(runs),
    } for (dataset, role, model), runs in grouped.items()]
    return pd.DataFrame(rows)


def strong_run_key(path: str) -> tuple[str, str, str, int]:
    """.../strong/{method}/{source}/{aux}/seed{seed}/metrics.json -> (method, source, aux, seed)."""
    parts = Path(path).parts
    return parts[-5], parts[-4], parts[-3], int(parts[-2].removeprefix("seed"))


def w2s_table(weak_files: list[str], strong_files: list[str], layout: dict, min_gap: float = MIN_GAP) -> pd.DataFrame:
    """Tables 2 and 7: accuracy and PGR of every method, without and with aux, over seeds.

    PGR is computed per seed against that seed's weak model(s) and ceiling, then
    summarised; a multi-weak row's PGR is the mean of its PGRs against each member.
    """
    decimals = layout["format"]["decimals"]
    weak_acc = {(m["model"], m["seed"]): m["test_accuracy"] for m in map(read_json, weak_files)}
    runs = {strong_run_key(p): read_json(p) for p in strong_files}
    seeds = sorted({seed for (_, _, _, seed) in runs})
    ceiling = {seed: runs[("ceiling", "gold", "noaux", seed)]["test_accuracy"] for seed in seeds}

    rows_spec = [("ceiling", "gold")]
    if "single" in layout["methods"]:
        rows_spec += [("single", m) for m in layout["weak_models"]]
    for ensemble in layout["ensembles"]:
        rows_spec += [(m, ensemble) for m in ("naive", "flyingsquid", "bayesian") if m in layout["methods"]]

    rows = []
    for method, source in rows_spec:
        row = {"method": METHOD_LABELS[method].format(source)}
        for aux in layout["aux_variants"]:
            suffix = "" if aux == "noaux" else " +aux"
            if method == "ceiling" and aux == "aux":
                row[f"accuracy (%){suffix}"] = row[f"PGR (%){suffix}"] = "—"
                continue
            key_aux = "noaux" if method == "ceiling" else aux
            accs = [runs[(method, source, key_aux, s)]["test_accuracy"] for s in seeds]
            members = [] if method == "ceiling" else runs[(method, source, key_aux, seeds[0])]["members"]
            row[f"accuracy (%){suffix}"] = mean_std(accs, decimals)
            row[f"PGR (%){suffix}"] = "—" if method == "ceiling" else mean_std(
                [multi_weak_pgr(a, [weak_acc[(m, s)] for m in members], ceiling[s], min_gap)
                 for a, s in zip(accs, seeds)], decimals)
        rows.append(row)
    return pd.DataFrame(rows)


def w2s_notes(weak_files: list[str], strong_files: list[str]) -> str:
    seeds = sorted({read_json(p)["seed"] for p in strong_files})
    return (f"Mean ± sample std over seeds {seeds}. PGR = (P − P_weak)/(P_ceiling − P_weak) per seed; "
            f"a multi-weak row averages its PGRs against each member. A PGR is '{GAP_TOO_SMALL}' when "
            f"a ceiling − weak gap is under {MIN_GAP * 100:.0f} points.")

