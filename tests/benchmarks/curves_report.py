"""When weak-to-strong shows: the training curves of a finished run, as Markdown (README,
"Training curves").

Run on demand after `snakemake all` (any config with a validation split):
    python tests/benchmarks/curves_report.py [--results results] [--dataset slurp_intent]

Per method row (and aux variant): gold validation accuracy, mean over seeds, at the start
model and at a few points of training; its peak and where it lies; and where each protocol
stops with the test accuracy there (means over seeds). For aux rows the auxiliary term's
weight γ_t at the same points (the config's schedule, `ws2s.objectives.aux_weight`), so the
aux curve can be read against its schedule. Then each weak model's error on val as the
gold-free rule estimates it, beside its gold error. Nothing here chooses anything.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ws2s.config import LossConfig
from ws2s.curves import PROTOCOLS
from ws2s.io import read_parquet
from ws2s.objectives import aux_weight
from ws2s.tables import METHOD_LABELS

EPOCHS_SHOWN = (0, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)


def at_epochs(run: pd.DataFrame, wanted) -> dict[float, float]:
    """Mean over seeds of gold validation accuracy at the points whose progress is in `wanted`."""
    mean = run.groupby("epochs")["val_accuracy"].mean()
    return {e: float(mean[e]) for e in wanted if e in mean.index}


def report(curves: pd.DataFrame, gamma_max: float, warmup_frac: float) -> list[str]:
    total = float(curves["epochs"].max())
    shown = [e for e in EPOCHS_SHOWN if e <= total and e in set(curves["epochs"])]
    lines = ["| method | aux | " + " | ".join(f"{e:g}" for e in shown) + " | peak (epoch) | "
             + " | ".join(f"{p}: epoch, test" for p in PROTOCOLS) + " |",
             "| --- | --- | " + " | ".join("---" for _ in shown) + " | --- | " + " | ".join("---" for _ in PROTOCOLS) + " |"]
    for (method, source, aux), run in curves.groupby(["method", "source", "aux"], sort=False):
        values = at_epochs(run, shown)
        mean = run.groupby("epochs")["val_accuracy"].mean()
        picks = []
        for protocol in PROTOCOLS:
            picked = run[run[protocol]]
            picks.append(f"{picked['epochs'].mean():.2g}, {100 * picked['test_accuracy'].mean():.1f}" if len(picked)
                         else "—")
        lines.append(f"| {METHOD_LABELS[method].format(source)} | {aux} | "
                     + " | ".join(f"{100 * values[e]:.1f}" if e in values else "" for e in shown)
                     + f" | {100 * mean.max():.1f} ({mean.idxmax():g}) | " + " | ".join(picks) + " |")
    lines += ["", f"γ_t of the aux runs (γ_max {gamma_max}, warm-up {warmup_frac:g} of {total:g} epochs): "
              + ", ".join(f"{e:g}: {aux_weight(e / total, gamma_max, warmup_frac):.2f}" for e in shown)]
    seeds = sorted(curves["seed"].unique())
    lines += [f"Gold validation accuracy (%), mean over seeds {list(map(int, seeds))}, by training progress in "
              "epochs (0: the start model); protocols' picks: mean epoch and mean test accuracy (%)."]
    return lines


def teacher_error_check(root: Path) -> list[str]:
    """Each weak model's error on val as the gold-free rule estimates it (no gold) against its
    error on val's gold labels, per seed: how far the triplet method's assumptions hold here."""
    from ws2s.curves import teacher_errors

    gold = read_parquet(root / "splits" / "val_gold.parquet", ["id", "label"]).set_index("id")["label"]
    votes: dict[int, dict[str, pd.Series]] = {}
    for path in sorted(root.glob("weak/*/seed*/labels.parquet")):
        labels = read_parquet(path, ["id", "split", "pred"])
        votes.setdefault(int(path.parent.name[4:]), {})[path.parent.parent.name] = \
            labels[labels["split"] == "val"].set_index("id")["pred"]
    lines = ["| seed | weak model | estimated error (%) | gold error (%) |", "| --- | --- | --- | --- |"]
    for seed, by_model in sorted(votes.items()):
        frame = pd.DataFrame(by_model)
        for model, estimate in teacher_errors(frame).items():
            truth = float((frame[model] != gold[frame.index]).mean())
            lines.append(f"| {seed} | {model} | {100 * estimate:.1f} | {100 * truth:.1f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--dataset", default="slurp_intent")
    parser.add_argument("--gamma-max", type=float, default=LossConfig.gamma_max)
    parser.add_argument("--warmup-frac", type=float, default=LossConfig.warmup_frac)
    args = parser.parse_args()
    curves = read_parquet(Path(args.results) / "curves" / f"{args.dataset}.parquet")
    print("\n".join(report(curves, args.gamma_max, args.warmup_frac) + [""]
                    + teacher_error_check(Path(args.results) / "classification" / args.dataset)))


if __name__ == "__main__":
    main()
