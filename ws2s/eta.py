"""How long a local run will take: an estimate printed before its first job (issue 30).

Each planned job's time is a measured one (workflow/resources/step_times.tsv: seconds per
unit of work of each rule, by CPU kind and by model or method, from a finished run's
`results/benchmarks/`; `tests/benchmarks/step_times.py` writes the rows) times the job's
work: the examples it passes, trained (times epochs) and labelled or decoded. The jobs are
then laid out on the cores as Snakemake does (by priority, each taking its threads), and the
estimate is when the last one ends. It assumes jobs side by side do not slow each other.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ws2s.cpu import cpu_kind
from ws2s.errors import Ws2sError

STEP_TIMES_COLUMNS = ["rule", "key", "cpu_kind", "seconds_per_work", "jobs", "measured"]
# A job of a rule without measured times: start-up, reading and writing (a table, a split).
UNTIMED_SECONDS = 10.0
# Where no row has this CPU kind: the nearest kind measured, fastest first.
KIND_ORDER = ("amx", "avx512_bf16", "avx512", "avx2")
# A benchmark file's path under results/benchmarks/{rule}/, as the rule's wildcards (the
# `benchmark:` of each rule in workflow/rules/; tests/test_eta.py checks the two agree).
BENCHMARK_WILDCARDS = {
    "prepare_model": ("model",),
    "weak_classify": ("dataset", "model", "seed"),
    "strong_features": ("dataset", "model"),
    "strong_classify": ("dataset", "method", "source", "aux", "seed"),
    "weak_generate": ("model", "seed"),
    "map_hypotheses": ("model", "seed"),
    "joint_decode": ("ensemble", "m", "seed"),
    "strong_generate": ("method", "source", "aux", "seed"),
    "cdpo": ("ensemble", "seed"),
}


def work(config: dict, rule: str, wildcards: dict) -> float:
    """A job's work: the examples it passes (trained x epochs, plus labelled or decoded)."""
    cls, gen = config["classification"], config["generation"]
    csize, gsize = cls["split_sizes"], gen["split_sizes"]
    strong_pairs = csize["strong_train"] + csize["val"] + csize["test"]
    if rule == "weak_classify":
        return csize["weak_train"] * cls["weak_training"]["epochs"] + strong_pairs
    if rule == "strong_features":
        return strong_pairs
    if rule == "strong_classify":
        return csize["strong_train"] * cls["strong_training"]["epochs"]
    if rule == "weak_generate":
        return gsize["weak_train"] * gen["weak_training"]["epochs"] + gsize["strong_train"] + gsize["val"] + gsize["test"]
    if rule == "map_hypotheses":  # the hypotheses a strong run reads: strong_train's and val's
        return gsize["strong_train"] + gsize["val"]
    if rule == "joint_decode":
        return (gsize["strong_train"] + gsize["val"]) * int(wildcards["m"])
    if rule == "strong_generate":
        from ws2s.train.strong import evaluation_points

        epochs = gen["strong_training"]["epochs"]
        # the few-gold utterances at every evaluation point and the start
        fewgold = gen["fewgold_val"] * (1 + epochs * evaluation_points(epochs)) if gsize["val"] else 0
        decoded = gsize["test"] + (gsize["val"] if wildcards.get("method") == "ceiling" else 0) + fewgold
        return gsize["strong_train"] * epochs + decoded
    if rule == "cdpo":
        return gsize["strong_train"] * gen["cdpo"]["candidates"]
    return 1.0


def step_key(config: dict, rule: str, wildcards: dict) -> str:
    """What a rule's time depends on beyond its work: the model (weak steps; a model's
    preparation, where every cut-down copy of another model is one key, "cut-down", since
    each takes seconds), the method (strong runs: the ceiling decodes val too, an ensemble's
    runs read every member)."""
    if rule == "prepare_model" and "from" in config["models"].get(wildcards["model"], {}):
        return "cut-down"
    if "model" in wildcards and rule != "strong_features":
        return wildcards["model"]
    return wildcards.get("method", "-")


def read_step_times(path: str | Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t")
    missing = [c for c in STEP_TIMES_COLUMNS if c not in frame.columns]
    if missing:
        raise Ws2sError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame


def seconds_per_work(times: pd.DataFrame, rule: str, key: str, kind: str) -> float | None:
    """The measured rate of a rule on this CPU kind (its key's, else the median over keys);
    None where the rule has no row of this kind."""
    rows = times[(times["rule"] == rule) & (times["cpu_kind"] == kind)]
    if rows.empty:
        return None
    own = rows[rows["key"] == key]
    return float((own if len(own) else rows)["seconds_per_work"].median())


def measured_kind(times: pd.DataFrame, kind: str) -> str | None:
    """This CPU's kind where the table has it, else the nearest measured one (by KIND_ORDER)."""
    kinds = set(times["cpu_kind"])
    if kind in kinds:
        return kind
    order = list(KIND_ORDER)
    here = order.index(kind) if kind in order else len(order) - 1
    return min(kinds & set(order), key=lambda k: (abs(order.index(k) - here), -order.index(k)), default=None)


def makespan(seconds: dict, threads: dict, priority: dict, deps: dict, cores: int) -> float:
    """When the last job ends, each started as soon as its inputs are done and enough cores are
    free, ready jobs in order of priority (then the longest first)."""
    pending, running, done, now, free = set(seconds), [], set(), 0.0, cores
    while pending or running:
        ready = sorted((j for j in pending if deps.get(j, set()) <= done), key=lambda j: (-priority[j], -seconds[j], str(j)))
        for job in ready:
            need = min(threads[job], cores)
            if need <= free:
                free -= need
                pending.discard(job)
                running.append((now + seconds[job], job, need))
        if not running:
            raise Ws2sError(f"jobs wait on one another: {sorted(map(str, pending))[:3]}")
        running.sort(key=lambda r: r[0])
        now, job, need = running.pop(0)
        done.add(job)
        free += need
    return now


def clock(seconds: float) -> str:
    """75 -> "about 2 min", 3700 -> "about 1 h 02 min", 30 -> "under 1 min"."""
    minutes = math.ceil(seconds / 60)
    if seconds < 60:
        return "under 1 min"
    return f"about {minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"about {minutes} min"


def estimate(config: dict, jobs: list[dict], deps: dict, cores: int, times: pd.DataFrame,
             kind: str | None = None) -> str:
    """One paragraph: the planned jobs' wall time on `cores` (and on 4 and 8 where more), the
    CPU kind whose times it uses, the longest steps. `jobs`: dicts of id, rule, wildcards,
    threads, priority; `deps`: id -> ids it waits on."""
    kind = kind or cpu_kind()
    basis = measured_kind(times, kind)
    seconds, untimed = {}, set()
    for job in jobs:
        rate = seconds_per_work(times, job["rule"], step_key(config, job["rule"], job["wildcards"]), basis) \
            if basis else None
        if rate is None:
            untimed.add(job["rule"])
            seconds[job["id"]] = UNTIMED_SECONDS
        else:
            seconds[job["id"]] = max(UNTIMED_SECONDS, rate * work(config, job["rule"], job["wildcards"]))
    threads = {job["id"]: job["threads"] for job in jobs}
    priority = {job["id"]: job["priority"] for job in jobs}
    wall = makespan(seconds, threads, priority, deps, cores)
    by_rule: dict[str, list[float]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(seconds[job["id"]])
    longest = sorted(by_rule.items(), key=lambda item: -sum(item[1]))[:3]
    where = f"step times measured on {basis}" if basis == kind else \
        f"no step times for this CPU ({kind}); {basis}'s used" if basis else "no step times at all"
    text = (f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}, {clock(wall)} on {cores} core{'s' if cores > 1 else ''} ({where}, "
            f"workflow/resources/step_times.tsv); most time in "
            + ", ".join(f"{rule} ({len(s)} x {clock(sum(s) / len(s))})" for rule, s in longest))
    more = [(n, w) for n in (4, 8) if n > cores and (w := makespan(seconds, threads, priority, deps, n)) < wall - 60]
    if more:
        text += "; with " + ", ".join(f"{n} cores {clock(w)}" for n, w in more)
    if untimed:
        text += f"; {UNTIMED_SECONDS:.0f} s counted for each job of {', '.join(sorted(untimed))} (not timed)"
    return text


def snakemake_jobs(dag) -> tuple[list[dict], dict]:
    """The jobs a Snakemake DAG will run, and what each waits on among them."""
    # in a fixed order (Snakemake's is a set's), so that ties are broken alike on every run
    planned = sorted(dag.needrun_jobs(), key=lambda job: (job.rule.name, sorted(job.wildcards_dict.items())))
    ids = {job: i for i, job in enumerate(planned)}
    jobs = [{"id": ids[job], "rule": job.rule.name, "wildcards": dict(job.wildcards_dict),
             "threads": job.threads, "priority": job.priority} for job in planned]
    deps = {ids[job]: {ids[d] for d in dag.dependencies[job] if d in ids} for job in planned}
    return jobs, deps
