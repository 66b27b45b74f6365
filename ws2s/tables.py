"""Paper-style result tables, written as CSV and Markdown."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ws2s.design import METHODS, aux_variants_of, w2s_rows
from ws2s.io import read_json, write_text
from ws2s.objectives import MIN_GAP, multi_weak_pgr

GAP_TOO_SMALL = "n/a (gap too small)"
# each method's row label, from its registry entry ({} is the source)
METHOD_LABELS = {name: method.label for name, method in METHODS.items()}


def mean_std(values, decimals: int, scale: float = 100.0) -> str:
    """'mean ± std' of `values` × scale; std is the sample std (ddof=1), 0 for one value.
    Any undefined (NaN) value makes the cell 'n/a (gap too small)'."""
    arr = np.asarray(list(values), dtype=float) * scale
    if np.isnan(arr).any():
        return GAP_TOO_SMALL
    std = arr.std(ddof=1) if len(arr) > 1 else 0.0
    return f"{arr.mean():.{decimals}f} ± {std:.{decimals}f}"


# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal's).
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_975(df: int) -> float:
    return T_975[df - 1] if df <= len(T_975) else 1.960


def t_interval(values) -> tuple[float, float] | None:
    """(mean, 95% half-width mean ± t_{0.975, n−1}·s/√n) of `values`; None for fewer than
    two or any undefined (gap too small) value."""
    arr = np.asarray(list(values), dtype=float)
    if len(arr) < 2 or np.isnan(arr).any():
        return None
    return float(arr.mean()), float(t_975(len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr)))


def ci95(values, decimals: int, scale: float = 100.0) -> str:
    """'[lo, hi]': the t-interval of `values` × scale over seeds; 'n/a' where undefined."""
    interval = t_interval(np.asarray(list(values), dtype=float) * scale)
    if interval is None:
        return "n/a"
    mean, half = interval
    return f"[{mean - half:.{decimals}f}, {mean + half:.{decimals}f}]"


def paired_difference(a: dict, b: dict, scale: float = 100.0) -> tuple[float, float, int] | None:
    """Mean and 95% t half-width of a[seed] − b[seed] over the seeds both have (× scale);
    None under two seeds or with an undefined value. Rows compared seed by seed share the
    seed's weak models and ceiling, so their difference has a smaller spread than either."""
    seeds = sorted(set(a) & set(b))
    interval = t_interval([(a[s] - b[s]) * scale for s in seeds])
    return None if interval is None else (*interval, len(seeds))


def to_markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def write_table(frame: pd.DataFrame, stem: str | Path, title: str, notes: str = "") -> None:
    stem = Path(stem)
    write_text(frame.to_csv(index=False), stem.with_suffix(".csv"))
    write_text(f"# {title}\n\n{to_markdown(frame)}" + (f"\n{notes}\n" if notes else ""), stem.with_suffix(".md"))


# What each track's tables report: the metrics.json key and its column name.
METRICS = {"accuracy": ("test_accuracy", "accuracy (%)"), "slu_f1": ("slu_f1", "SLU-F1 (×100)")}


def table1(metric_files: list[str], decimals: int, metric: str = "accuracy") -> pd.DataFrame:
    """Tables 1 and 3: per (dataset, model) the parameter count and test score over seeds."""
    key, column = METRICS[metric]
    grouped: dict[tuple, list[dict]] = defaultdict(list)
    for path in metric_files:
        metrics = read_json(path)
        grouped[(metrics["dataset"], metrics["role"], metrics["model"])].append(metrics)
    rows = [{
        "dataset": dataset,
        "model": model,
        "role": role,
        "params (M)": f"{runs[0]['params'] / 1e6:.1f}",
        column: mean_std((m[key] for m in runs), decimals),
        "seeds": len(runs),
    } for (dataset, role, model), runs in grouped.items()]
    return pd.DataFrame(rows)


def run_key(metrics: dict) -> tuple[str, str, str, int]:
    """(method, source, aux variant, seed) of a strong run, as its metrics.json records it."""
    return metrics["method"], metrics["source"], "aux" if metrics["aux"] else "noaux", metrics["seed"]


# The selection protocols (ws2s.curves), by the suffix of the test scores they pick in a
# run's record: the paper's (the last point of settings tuned for the ceiling on gold
# validation data), no gold (the lowest loss on the weak-labelled validation split), few
# gold and gold-free (classification: from the runs' curves).
PROTOCOLS = {"paper": "", "nogold": "_nogold", "fewgold": "_fewgold", "goldfree": "_goldfree"}


def w2s_results(weak_files: list[str], strong_files: list[str], layout: dict, min_gap: float = MIN_GAP,
                protocol: str = "paper") -> pd.DataFrame:
    """`w2s_results_of` the runs' metrics files."""
    return w2s_results_of(list(map(read_json, weak_files)), list(map(read_json, strong_files)), layout, min_gap,
                          protocol)


def w2s_results_of(weak_runs: list[dict], strong_runs: list[dict], layout: dict, min_gap: float = MIN_GAP,
                   protocol: str = "paper") -> pd.DataFrame:
    """One row per (method, source, aux, seed): the test score (layout["metric"], accuracy by
    default) and PGR, of the models `protocol` selects.

    PGR is computed per seed against that seed's weak model(s) and ceiling; a multi-weak
    run's PGR is the mean of its PGRs against each member. The ceiling has no PGR.
    """
    weak_key = METRICS[layout.get("metric", "accuracy")][0]
    key = weak_key + PROTOCOLS[protocol]
    weak_acc = {(m["model"], m["seed"]): m[weak_key] for m in weak_runs}
    runs = {run_key(run): run for run in strong_runs}
    seeds = sorted({seed for (_, _, _, seed) in runs})
    ceiling = {seed: runs[("ceiling", "gold", "noaux", seed)][key] for seed in seeds}
    records = []
    for method, source in w2s_rows(layout):
        for aux in aux_variants_of(layout, method):
            for seed in seeds:
                run = runs[(method, source, aux, seed)]
                pgr_value = math.nan if method == "ceiling" else multi_weak_pgr(
                    run[key], [weak_acc[(m, seed)] for m in run["members"]], ceiling[seed], min_gap)
                records.append({"method": METHOD_LABELS[method].format(source), "aux": aux, "seed": seed,
                                "score": run[key], "pgr": pgr_value,
                                "ece": run.get("test_ece" + PROTOCOLS[protocol], math.nan)})
    return pd.DataFrame(records)


def w2s_table(results: pd.DataFrame, layout: dict) -> pd.DataFrame:
    """Tables 2, 7 and 4: the score and PGR of every method, without and with aux, mean ± std over
    seeds; classification also the expected calibration error (15 bins) of the test predictions."""
    decimals = layout["format"]["decimals"]
    column = METRICS[layout.get("metric", "accuracy")][1]
    rows = []
    for label in dict.fromkeys(results["method"]):
        row = {"method": label}
        for aux in layout["aux_variants"]:
            suffix = "" if aux == "noaux" else " +aux"
            part = results[(results["method"] == label) & (results["aux"] == aux)]
            ceiling = label == METHOD_LABELS["ceiling"]
            if part.empty:  # the ceiling, or a method run without aux only
                row[f"{column}{suffix}"] = row[f"PGR (%){suffix}"] = "—"
            else:
                row[f"{column}{suffix}"] = mean_std(part["score"], decimals)
                row[f"PGR (%){suffix}"] = "—" if ceiling else mean_std(part["pgr"], decimals)
            if layout["format"].get("ci95"):
                row[f"PGR 95% CI{suffix}"] = "—" if ceiling or part.empty else ci95(part["pgr"], decimals)
            if layout.get("metric", "accuracy") == "accuracy":
                row[f"ECE (%){suffix}"] = "—" if part.empty else mean_std(part["ece"], decimals)
        rows.append(row)
    return pd.DataFrame(rows)


NO_VALIDATION = "no validation split (split_sizes.val: 0), so no run chose its epoch on one"


def validated(strong_files: list[str]) -> bool:
    """Whether the runs scored their epochs on a validation split (the no-gold protocol)."""
    return all("val_losses" in read_json(p) for p in strong_files)


def w2s_notes(strong_files: list[str]) -> str:
    seeds = sorted({read_json(p)["seed"] for p in strong_files})
    return (f"Mean ± sample std over seeds {seeds}. PGR = (P − P_weak)/(P_ceiling − P_weak) per seed; "
            f"a multi-weak row averages its PGRs against each member. A PGR is '{GAP_TOO_SMALL}' when "
            f"a ceiling − weak gap is under {MIN_GAP * 100:.0f} points.")



def write_generation_protocols(weak_files: list[str], strong_files: list[str], layout: dict, stem: str,
                               title: str, out_curves: str | Path, out_figure: str | Path) -> None:
    """The generation track's few-gold table (`{stem}_fewgold`), its protocols side by side
    (`{stem}_protocols`), its runs' curves and their figure: the runs picked their few-gold
    point themselves (ws2s.stages.strong_generate)."""
    from ws2s import schemas
    from ws2s.curves import generation_curves
    from ws2s.figures import curves_figure
    from ws2s.io import write_parquet

    weak, strong = list(map(read_json, weak_files)), list(map(read_json, strong_files))
    if not all("slu_f1_fewgold" in run for run in strong):
        for name in ("fewgold", "protocols"):
            write_table(pd.DataFrame({"note": [NO_VALIDATION]}), f"{stem}_{name}", f"{title}, {name}")
        write_parquet(pd.DataFrame({f.name: [] for f in schemas.GENERATION_CURVES}), out_curves,
                      schemas.GENERATION_CURVES)
        curves_figure(pd.DataFrame(), {}, "SLURP", out_figure)
        return
    curves = generation_curves(strong)
    write_parquet(curves, out_curves, schemas.GENERATION_CURVES)
    teachers = {(name, run["seed"]): score for run in strong
                for name, score in zip(run["teachers"], run["teacher_fewgold_slu_f1"])}
    curves_figure(curves, teachers, "SLURP", out_figure, score="fewgold_slu_f1",
                  ylabel="SLU-F1 on the few-gold val utterances (%)")
    n = strong[0]["fewgold_utterances"]
    described = {
        "paper": "each run's last point; the strong settings chosen for the ceiling on gold validation data "
                 "(the protocol comparable with the paper)",
        "nogold": "no gold for the Weak-to-Strong runs: each keeps the point of its lowest loss against its own "
                  "(weak) targets on val; the ceiling that of its lowest gold validation loss",
        "fewgold": f"each run keeps the point of its best SLU-F1 on {n} gold utterances drawn from val per seed: a "
                   "Weak-to-Strong upper bound (it reads gold), as Burns et al. report ground-truth early stopping",
    }
    results = {p: w2s_results_of(weak, strong, layout, protocol=p) for p in described}
    notes = w2s_notes(strong_files)
    write_table(w2s_table(results["fewgold"], layout), f"{stem}_fewgold", f"{title}, few-gold protocol: "
                "Weak(S)-to-Strong on slurp (SLU-F1 and PGR)", f"{notes} Protocol: {described['fewgold']}.")
    write_table(protocols_table(results, layout), f"{stem}_protocols", f"{title}: the selection protocols side by "
                "side (slurp, SLU-F1 and PGR)", notes + " " + " ".join(f"{p}: {d}." for p, d in described.items()))


def ablation_table(rows: list[tuple[str, list[str]]], weak_files: list[str], ceiling_files: list[str],
                   decimals: int) -> pd.DataFrame:
    """Tables 8, 9 and 11: one row per setting, SLU-F1 and PGR mean ± std over seeds."""
    weak = {(m["model"], m["seed"]): m["slu_f1"] for m in map(read_json, weak_files)}
    ceiling = {m["seed"]: m["slu_f1"] for m in map(read_json, ceiling_files)}
    out = []
    for label, files in rows:
        runs = [read_json(path) for path in files]
        pgrs = [multi_weak_pgr(r["slu_f1"], [weak[(m, r["seed"])] for m in r["members"]], ceiling[r["seed"]])
                for r in runs]
        out.append({"setting": label, "SLU-F1 (×100)": mean_std((r["slu_f1"] for r in runs), decimals),
                    "PGR (%)": mean_std(pgrs, decimals), "invalid JSON": f"{np.mean([r['invalid_json'] for r in runs]):.1f}",
                    "seeds": len(runs)})
    return pd.DataFrame(out)


def _cell(value: float, decimals: int) -> str:
    """One seed's value × 100, or the n/a mark of an undefined PGR."""
    return GAP_TOO_SMALL if math.isnan(value) else f"{value * 100:.{decimals}f}"


def table5(cdpo_files: list[str], weak_files: list[str], ceiling_files: list[str], decimals: int) -> pd.DataFrame:
    """Table 5: SLU-F1 and PGR before and after cDPO, one row per seed and their mean ± std.

    PGR is per seed against that seed's ensemble members and ceiling, as in Table 4.
    """
    weak = {(m["model"], m["seed"]): m["slu_f1"] for m in map(read_json, weak_files)}
    ceiling = {m["seed"]: m["slu_f1"] for m in map(read_json, ceiling_files)}
    runs = sorted(map(read_json, cdpo_files), key=lambda r: r["seed"])
    values = pd.DataFrame([{
        "seed": r["seed"], "f1_before": r["slu_f1_before"], "f1_after": r["slu_f1_after"],
        **{f"pgr_{when}": multi_weak_pgr(r[f"slu_f1_{when}"], [weak[(m, r["seed"])] for m in r["members"]],
                                         ceiling[r["seed"]]) for when in ("before", "after")},
    } for r in runs])
    columns = {"f1_before": "SLU-F1 (×100) before", "f1_after": "SLU-F1 (×100) after",
               "pgr_before": "PGR (%) before", "pgr_after": "PGR (%) after"}
    rows = [{"seed": str(row.seed), **{label: _cell(getattr(row, key), decimals) for key, label in columns.items()}}
            for row in values.itertuples()]
    rows.append({"seed": "mean ± std", **{label: mean_std(values[key], decimals) for key, label in columns.items()}})
    return pd.DataFrame(rows)


def table5_notes(cdpo_files: list[str]) -> str:
    runs = sorted(map(read_json, cdpo_files), key=lambda r: r["seed"])
    first = runs[0]
    pairs = "; ".join(f"seed {r['seed']}: {r['n_pairs']} of {r['n_prompts']} utterances gave a pair, "
                      f"{r['n_dropped_identical']} dropped (all candidates identical), "
                      f"{r['n_dropped_tied']} dropped (all scored the same)" for r in runs)
    return (f"cDPO from {first['start']} with the weak ensemble {', '.join(first['members'])} as judges "
            f"(score: {first['score']}, M = {first['candidates']} {first['decoding']} candidates, "
            f"β = {first['beta']}, ε = {first['epsilon']}). Pairs: {pairs}. "
            f"PGR = (P − P_weak)/(P_ceiling − P_weak) per seed, averaged over the members; "
            f"'{GAP_TOO_SMALL}' when a ceiling − weak gap is under {MIN_GAP * 100:.0f} points.")


def protocols_table(results: dict[str, pd.DataFrame], layout: dict) -> pd.DataFrame:
    """The protocols side by side: per method row (and aux variant), each protocol's test
    score and PGR, mean ± std over seeds, and the PGR's 95% interval."""
    decimals = layout["format"]["decimals"]
    column = METRICS[layout.get("metric", "accuracy")][1]
    first = next(iter(results.values()))
    rows = []
    for (label, aux), _ in first.groupby(["method", "aux"], sort=False):
        row = {"method": label, "aux": aux}
        for protocol, frame in results.items():
            part = frame[(frame["method"] == label) & (frame["aux"] == aux)]
            ceiling = label == METHOD_LABELS["ceiling"]
            row[f"{protocol}: {column}"] = mean_std(part["score"], decimals)
            row[f"{protocol}: PGR (%)"] = "—" if ceiling else mean_std(part["pgr"], decimals)
            row[f"{protocol}: PGR 95% CI"] = "—" if ceiling else ci95(part["pgr"], decimals)
        rows.append(row)
    return pd.DataFrame(rows)
