"""The run-time estimate printed before a local run's first job (ws2s/eta.py, issue 30)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from ws2s import eta
from ws2s.configfile import load
from ws2s.errors import Ws2sError

ROOT = Path(__file__).resolve().parents[1]


def test_makespan_of_a_diamond_on_one_and_two_cores():
    # a -> (b, c) -> d; b 30 s, c 20 s: one core runs them one after another, two side by side
    seconds = {"a": 10, "b": 30, "c": 20, "d": 5}
    deps = {"b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
    threads = dict.fromkeys(seconds, 1)
    priority = dict.fromkeys(seconds, 0)
    assert eta.makespan(seconds, threads, priority, deps, 1) == 10 + 30 + 20 + 5
    assert eta.makespan(seconds, threads, priority, deps, 2) == 10 + 30 + 5
    # a job of two threads takes both cores: nothing beside it
    assert eta.makespan(seconds, {**threads, "b": 2}, priority, deps, 2) == 10 + 30 + 20 + 5


def test_priority_decides_which_job_takes_the_free_core():
    # two cores; x (50 s) waits for p (10 s); q1, q2 (50 s each) wait for nothing
    seconds, deps = {"p": 10, "q1": 50, "q2": 50, "x": 50}, {"x": {"p"}}
    threads = dict.fromkeys(seconds, 1)
    # the chain first: p and q1 at 0, x at 10, q2 at 50 -> 100
    assert eta.makespan(seconds, threads, {"p": 1, "q1": 0, "q2": 0, "x": 1}, deps, 2) == 100
    # the q's first: p at 50, x at 60 -> 110
    assert eta.makespan(seconds, threads, {"p": 0, "q1": 1, "q2": 1, "x": 0}, deps, 2) == 110


def test_jobs_that_wait_on_each_other_are_an_error():
    with pytest.raises(Ws2sError, match="wait on one another"):
        eta.makespan({"a": 1, "b": 1}, {"a": 1, "b": 1}, {"a": 0, "b": 0}, {"a": {"b"}, "b": {"a"}}, 2)


def test_work_counts_the_examples_a_job_passes():
    config = load(ROOT / "config.yaml", ROOT / "workflow" / "configs" / "small.yaml")
    assert eta.work(config, "weak_classify", {"model": "minilm-l6"}) == 400 * 2 + 1200 + 400 + 1000
    assert eta.work(config, "strong_classify", {"method": "naive"}) == 1200 * 64
    # 2 epochs x 4 evaluation points and the start model decode the 50 few-gold utterances
    assert eta.work(config, "strong_generate", {"method": "ceiling"}) == 400 * 2 + 400 + 100 + 50 * 9
    assert eta.work(config, "strong_generate", {"method": "naive"}) == 400 * 2 + 400 + 50 * 9
    assert eta.work(config, "joint_decode", {"m": "3"}) == 3 * (400 + 100)
    assert eta.work(config, "map_hypotheses", {"model": "gemma3-270m"}) == 400 + 100
    assert eta.work(config, "table1", {}) == 1
    assert eta.step_key(config, "prepare_model", {"model": "smollm2-l4"}) == "cut-down"
    assert eta.step_key(config, "prepare_model", {"model": "smollm2-135m"}) == "smollm2-135m"
    assert eta.step_key(config, "strong_generate", {"method": "naive", "source": "ws2"}) == "naive"
    assert eta.step_key(config, "strong_features", {"dataset": "slurp_intent", "model": "qwen2.5-coder-0.5b"}) == "-"


def times_table(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=eta.STEP_TIMES_COLUMNS)


def test_a_jobs_time_is_its_keys_rate_times_its_work_else_the_rules_median():
    times = times_table([("weak_classify", "a", "avx2", 0.01, 1, "m"), ("weak_classify", "b", "avx2", 0.03, 1, "m"),
                         ("weak_classify", "c", "avx2", 0.05, 1, "m"), ("weak_classify", "a", "amx", 0.001, 1, "m")])
    assert eta.seconds_per_work(times, "weak_classify", "b", "avx2") == 0.03
    assert eta.seconds_per_work(times, "weak_classify", "new-model", "avx2") == 0.03  # median of 0.01, 0.03, 0.05
    assert eta.seconds_per_work(times, "strong_features", "-", "avx2") is None


def test_a_cpu_kind_without_times_uses_the_nearest_measured_one():
    times = times_table([("r", "-", "amx", 1.0, 1, "m"), ("r", "-", "avx2", 3.0, 1, "m")])
    assert eta.measured_kind(times, "avx2") == "avx2"
    assert eta.measured_kind(times, "avx512_bf16") == "amx"  # nearer to amx than to avx2
    assert eta.measured_kind(times, "avx512") == "avx2"
    assert eta.measured_kind(times_table([]), "avx2") is None


def test_the_estimate_names_its_cpu_kind_and_the_longest_steps():
    config = load(ROOT / "config.yaml", ROOT / "workflow" / "configs" / "small.yaml")
    times = times_table([("strong_features", "-", "avx2", 0.5, 1, "m"), ("strong_classify", "*", "avx2", 0.001, 2, "m")])
    jobs = [{"id": 0, "rule": "strong_features", "wildcards": {"dataset": "slurp_intent", "model": "q"}, "threads": 1,
             "priority": 0}] + [
        {"id": i, "rule": "strong_classify", "wildcards": {"method": "naive", "seed": str(i)}, "threads": 1,
         "priority": 0} for i in (1, 2)] + [{"id": 3, "rule": "table1", "wildcards": {}, "threads": 1, "priority": 0}]
    deps = {1: {0}, 2: {0}, 3: {1, 2}}
    # features 0.5 x 2600 = 1300 s, then the two runs (76.8 s each) side by side, then 10 s
    text = eta.estimate(config, jobs, deps, 2, times, kind="avx2")
    assert text.startswith("4 jobs, about 24 min on 2 cores (step times measured on avx2"), text
    assert "strong_features (1 x about 22 min)" in text and "10 s counted for each job of table1" in text
    assert re.search(r"no step times for this CPU \(amx\); avx2's used", eta.estimate(config, jobs, deps, 2, times,
                                                                                      kind="amx"))


def test_the_shipped_step_times_cover_the_timed_rules_and_agree_with_the_rules_benchmarks():
    times = eta.read_step_times(ROOT / "workflow" / "resources" / "step_times.tsv")
    assert set(times["cpu_kind"]) <= set(eta.KIND_ORDER)
    assert (times["seconds_per_work"] > 0).all()
    text = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    for rule, names in eta.BENCHMARK_WILDCARDS.items():
        pattern = re.search(rf'\n    benchmark:\n        "results/benchmarks/{rule}/([^"]+)\.tsv"', text)
        assert pattern, rule
        assert tuple(re.findall(r"\{(\w+)\}", pattern.group(1))) == names, rule


def test_step_times_from_a_runs_benchmark_files(tmp_path):
    """tests/benchmarks/step_times.py: each job's seconds over its work, the median per key."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("step_times", ROOT / "tests" / "benchmarks" / "step_times.py")
    step_times = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step_times)
    config = load(ROOT / "config.yaml", ROOT / "workflow" / "configs" / "small.yaml")
    bench = tmp_path / "benchmarks"
    for path, wall, cpu in (("weak_classify/slurp_intent/minilm-l6/seed0.tsv", 68.0, 34.0),
                            ("weak_classify/slurp_intent/minilm-l6/seed1.tsv", 102.0, 51.0),
                            ("strong_generate/naive/ws2/noaux/seed0.tsv", 1200.0, 600.0),
                            ("prepare_model/mpnet-base.tsv", 7.0, 5.0)):
        (bench / path).parent.mkdir(parents=True, exist_ok=True)
        (bench / path).write_text(f"s\th:m:s\tmax_rss\tcpu_time\n{wall}\t0:00:00\t1\t{cpu}\n")
    rows = step_times.measured_rows(tmp_path, config, "avx2", "test").set_index(["rule", "key"])
    assert rows.loc[("weak_classify", "minilm-l6"), "seconds_per_work"] == pytest.approx(85.0 / 3400)
    assert rows.loc[("weak_classify", "minilm-l6"), "jobs"] == 2
    assert rows.loc[("strong_generate", "naive"), "seconds_per_work"] == pytest.approx(1200.0 / 1650)
    by_cpu = step_times.measured_rows(tmp_path, config, "avx2", "test", clock="cpu").set_index(["rule", "key"])
    assert by_cpu.loc[("strong_generate", "naive"), "seconds_per_work"] == pytest.approx(600.0 / 1650)
    assert by_cpu.loc[("prepare_model", "mpnet-base"), "seconds_per_work"] == 7.0  # its wall time, always
    # a run of part of the workflow replaces only what it measured (--partial)
    old = times_table([("weak_classify", "minilm-l6", "avx2", 9.0, 1, "old"),
                       ("strong_features", "-", "avx2", 0.5, 1, "old"), ("strong_features", "-", "amx", 0.1, 1, "old")])
    new = rows.reset_index().assign(cpu_kind="avx2", measured="test")[old.columns]
    partial = step_times.updated(old, new, "avx2", partial=True).set_index(["rule", "key", "cpu_kind"])
    assert partial.loc[("weak_classify", "minilm-l6", "avx2"), "seconds_per_work"] == pytest.approx(85.0 / 3400)
    assert partial.loc[("strong_features", "-", "avx2"), "seconds_per_work"] == 0.5
    assert len(partial) == len(new) + 2
    whole = step_times.updated(old, new, "avx2", partial=False)
    assert ("strong_features", "avx2") not in set(zip(whole["rule"], whole["cpu_kind"])) and len(whole) == len(new) + 1
