"""The step times the workflow's estimate reads (ws2s/eta.py), from a finished run's benchmarks.

Run on demand after a run from empty, with the config files it ran with:
    python tests/benchmarks/step_times.py --results results --measured "2026-12-03 small.yaml 4ac5bc4" \
        config.yaml workflow/configs/small.yaml

Each rule's benchmark files (results/benchmarks/) give one row per CPU kind and model or
method: the median seconds per unit of work (`ws2s.eta.work`). The rows of this CPU kind in
workflow/resources/step_times.tsv are replaced (with `--partial`, for a run of part of the
workflow, only those of the rules and keys it ran); the other kinds' are kept. Set
ONEDNN_MAX_CPU_ISA as the run had it: the kind is this process's (`ws2s.cpu.cpu_kind`).

`--clock cpu` takes each job's CPU time over its threads instead of its wall time: for a run
that shared the machine with other work (a job's wall time then holds the others' share).
Preparing a model mostly reads and writes files: its wall time is kept either way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ws2s.configfile import load
from ws2s.cpu import cpu_kind
from ws2s.eta import BENCHMARK_WILDCARDS, STEP_TIMES_COLUMNS, read_step_times, step_key, work

TABLE = Path(__file__).resolve().parents[2] / "workflow" / "resources" / "step_times.tsv"


def wildcards_of(rule: str, relative: Path) -> dict:
    """{dataset, model, seed, ...} from a benchmark file's path under results/benchmarks/{rule}/."""
    parts = list(relative.with_suffix("").parts)
    values = [p.removeprefix("seed") if name == "seed" else p.removeprefix("m") if name == "m" else p
              for name, p in zip(BENCHMARK_WILDCARDS[rule], parts, strict=True)]
    return dict(zip(BENCHMARK_WILDCARDS[rule], values, strict=True))


IO_BOUND = {"prepare_model"}


def measured_rows(results: Path, config: dict, kind: str, measured: str, clock: str = "wall",
                  threads: int = 1) -> pd.DataFrame:
    rows = []
    for rule in BENCHMARK_WILDCARDS:
        for path in sorted((results / "benchmarks" / rule).rglob("*.tsv")):
            wildcards = wildcards_of(rule, path.relative_to(results / "benchmarks" / rule))
            bench = pd.read_csv(path, sep="\t").iloc[0]
            seconds = float(bench["cpu_time"]) / threads if clock == "cpu" and rule not in IO_BOUND else float(bench["s"])
            rows.append({"rule": rule, "key": step_key(config, rule, wildcards),
                         "rate": seconds / work(config, rule, wildcards)})
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(["rule", "key"], sort=True)["rate"]
    return pd.DataFrame({"seconds_per_work": grouped.median(), "jobs": grouped.size()}).reset_index().assign(
        cpu_kind=kind, measured=measured)[STEP_TIMES_COLUMNS]


def updated(old: pd.DataFrame, new: pd.DataFrame, kind: str, partial: bool) -> pd.DataFrame:
    """The table with `new` as CPU kind `kind`'s rows: all of them, or with `partial` those of
    the (rule, key) pairs `new` has, the kind's others kept."""
    replaced = old["cpu_kind"] == kind
    if partial:
        pairs = pd.Series(list(zip(old["rule"], old["key"])), index=old.index)
        replaced &= pairs.isin(set(zip(new["rule"], new["key"])))
    return pd.concat([old[~replaced], new], ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configfiles", nargs="+", help="config.yaml and the overlays the run had")
    parser.add_argument("--results", default="results")
    parser.add_argument("--measured", required=True, help="when, which config, which commit")
    parser.add_argument("--table", default=str(TABLE))
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--threads", type=int, default=1, help="threads a job had (the embedded default: 1)")
    parser.add_argument("--partial", action="store_true", help="keep this CPU kind's rows the run did not measure")
    args = parser.parse_args()
    kind = cpu_kind()
    new = measured_rows(Path(args.results), load(*args.configfiles), kind, args.measured, args.clock, args.threads)
    table = Path(args.table)
    old = read_step_times(table) if table.exists() else pd.DataFrame(columns=STEP_TIMES_COLUMNS)
    merged = updated(old, new, kind, args.partial)
    merged.sort_values(["cpu_kind", "rule", "key"]).to_csv(table, sep="\t", index=False, float_format="%.6g")
    print(new.to_string(index=False))


if __name__ == "__main__":
    main()
