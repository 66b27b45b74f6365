"""The curves stage of a classification data set: every strong run's curve scored point by
point, each protocol's pick (ws2s.curves), the few-gold and gold-free tables, the protocols
side by side, and the figure of gold validation accuracy against training progress.

The strong runs never read gold validation labels; this stage does, after them, to draw
their curves and to score the few-gold protocol's subset. Selection reads validation only.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ws2s import schemas
from ws2s.curves import PROTOCOLS, picks, score_run, teacher_errors, test_scores
from ws2s.errors import Ws2sError
from ws2s.frames import fewgold_ids
from ws2s.io import read_json, read_parquet, run_record, write_parquet
from ws2s.tables import NO_VALIDATION, protocols_table, w2s_notes, w2s_results_of, w2s_table, write_table

NO_ESTIMATE = ("the gold-free rule needs every teacher's error estimated without gold, which takes three or "
               "more weak models on the data set (Flying Squid's triplet method); this one has fewer")

PROTOCOL_NOTES = {
    "paper": "each run's last point; the strong settings chosen for the ceiling on gold validation data "
             "(the protocol comparable with the paper)",
    "nogold": "no gold for the Weak-to-Strong runs: each keeps the point of its lowest loss against its own "
              "(weak) targets on val; the ceiling that of its lowest gold validation loss",
    "fewgold": "each run keeps the point of its best accuracy on {n} gold pairs drawn from val per seed: a "
               "Weak-to-Strong upper bound (it reads gold), as Burns et al. report ground-truth early stopping",
    "goldfree": "no gold: each run keeps the last point before its disagreement with its teachers on val "
                "falls below their error, estimated from the weak models' votes alone (ws2s.curves); the "
                "ceiling its last point",
}


def weak_val_votes(weak_label_files: list[str]) -> dict[int, pd.DataFrame]:
    """Per seed, every weak model's predicted class on val (columns: models, index: ids)."""
    votes: dict[int, dict[str, pd.Series]] = {}
    for path in weak_label_files:
        record = run_record(path)
        labels = read_parquet(path, ["id", "split", "pred"])
        votes.setdefault(record["seed"], {})[record["model"]] = labels[labels["split"] == "val"].set_index("id")["pred"]
    return {seed: pd.DataFrame(by_model) for seed, by_model in votes.items()}


def scored_runs(strong_runs: list[dict], curve_files: list[str], votes: dict[int, pd.DataFrame],
                gold_val: pd.Series, gold_test: pd.Series, fewgold_size: int) -> tuple[pd.DataFrame, list[dict]]:
    """Every run's scored curve (schemas.CURVES), each protocol's pick flagged; and the runs'
    records with the few-gold and gold-free picks' test accuracy and ECE (NaN where a
    protocol has no pick)."""
    errors = {seed: teacher_errors(frame) for seed, frame in votes.items()}
    frames, runs = [], []
    for run, path in zip(strong_runs, curve_files, strict=True):
        curve = read_parquet(path, [f.name for f in schemas.STRONG_CURVE])
        seed, members = run["seed"], run["members"] if run["method"] != "ceiling" else []
        fewgold = fewgold_ids(gold_val.index, fewgold_size, seed)
        scored = score_run(curve, gold_val, gold_test, fewgold, {m: votes[seed][m] for m in members},
                           errors[seed], path)
        chosen, run = picks(scored), dict(run)
        for protocol in PROTOCOLS:
            scored[protocol] = scored["point"] == chosen[protocol]
        for protocol in ("fewgold", "goldfree"):
            run[f"test_accuracy_{protocol}"], run[f"test_ece_{protocol}"] = (
                (math.nan, math.nan) if chosen[protocol] is None else test_scores(curve, chosen[protocol], gold_test))
        key = {"method": run["method"], "source": run["source"], "aux": "aux" if run["aux"] else "noaux", "seed": seed}
        frames.append(pd.concat([pd.DataFrame([key] * len(scored)), scored], axis=1))
        runs.append(run)
    return pd.concat(frames, ignore_index=True), runs


def run_curves(dataset: str, heading: str, title: str, layout: dict, fewgold_size: int, weak_files: list[str],
               weak_label_files: list[str], strong_files: list[str], curve_files: list[str], val_gold_file: str,
               test_file: str, out_curves: str | Path, out_stem: str, out_figure: str | Path) -> None:
    from ws2s.figures import curves_figure

    if [Path(p).parent for p in strong_files] != [Path(p).parent for p in curve_files]:
        raise Ws2sError("--strong and --curves must name the same runs' metrics.json and curve.parquet, in one order")
    weak_runs, strong_runs = list(map(read_json, weak_files)), list(map(read_json, strong_files))
    if not all("val_losses" in run for run in strong_runs):
        for protocol in ("fewgold", "goldfree", "protocols"):
            write_table(pd.DataFrame({"note": [NO_VALIDATION]}), f"{out_stem}_{protocol}", f"{heading}, {protocol}")
        write_parquet(pd.DataFrame({f.name: [] for f in schemas.CURVES}), out_curves, schemas.CURVES)
        curves_figure(pd.DataFrame(), {}, title, out_figure)
        return
    gold_val = read_parquet(val_gold_file, ["id", "label"]).set_index("id")["label"]
    gold_test = read_parquet(test_file, ["id", "label"]).set_index("id")["label"]
    votes = weak_val_votes(weak_label_files)
    curves, runs = scored_runs(strong_runs, curve_files, votes, gold_val, gold_test, fewgold_size)
    results = {protocol: w2s_results_of(weak_runs, runs, layout, protocol=protocol) for protocol in PROTOCOLS}
    notes = w2s_notes(strong_files)
    described = {p: PROTOCOL_NOTES[p].format(n=fewgold_size) for p in PROTOCOLS}
    estimable = not curves.loc[curves["method"] != "ceiling", "teacher_error"].map(
        lambda e: np.isnan(e).any()).any()
    for protocol in ("fewgold", "goldfree"):
        frame = w2s_table(results[protocol], layout) if protocol == "fewgold" or estimable \
            else pd.DataFrame({"note": [NO_ESTIMATE]})
        write_table(frame, f"{out_stem}_{protocol}", f"{heading}, {protocol} protocol: Weak(S)-to-Strong on "
                    f"{dataset} (test accuracy and PGR)", f"{notes} Protocol: {described[protocol]}.")
    shown = {p: r for p, r in results.items() if p != "goldfree" or estimable}
    write_table(protocols_table(shown, layout), f"{out_stem}_protocols",
                f"{heading}: the selection protocols side by side ({dataset}, test accuracy and PGR)",
                notes + " " + " ".join(f"{p}: {described[p]}." for p in shown))
    write_parquet(curves, out_curves, schemas.CURVES)
    teachers = {(model, seed): float((frame[model] == gold_val[frame.index]).mean())
                for seed, frame in votes.items() for model in frame.columns}
    curves_figure(curves, teachers, title, out_figure)
