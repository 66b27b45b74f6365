"""`snakemake --profile slurm` against a real one-node SLURM (tests/slurm/start_cluster.sh).

Skipped when no SLURM answers, unless WS2S_REQUIRE_SLURM=1 (as .ci/run sets): then it fails.
"""

import os
import shutil
import subprocess

import pandas as pd
import pytest

from conftest import SMOKE, copy_repo, snakemake, write_data_overlay

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]

# The test cluster has no accounting: jobs are watched with squeue (its MinJobAge keeps
# finished ones visible) and no account is looked up. Users' clusters need none of this.
TEST_CLUSTER_FLAGS = ("--slurm-status-command", "squeue", "--slurm-no-account",
                      "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "2")
# The strong runs ask for one (fake) GPU, as GPU jobs do on a real cluster.
GPU_OVERLAY = "resources: {strong: {gpu: 1}}\n"


def slurm_unreachable() -> str | None:
    if not shutil.which("sbatch"):
        return "no sbatch on PATH (start one with tests/slurm/start_cluster.sh)"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if "UP" not in ping.stdout:
        return f"no SLURM controller answers: {ping.stdout.strip() or ping.stderr.strip()}"
    return None


def jobs_after(first_id: int) -> list[dict]:
    """`scontrol show job` of every job with an id above `first_id`, as dicts."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True).stdout
    jobs = [dict(field.split("=", 1) for field in line.split() if "=" in field) for line in out.splitlines()]
    return [job for job in jobs if int(job.get("JobId", 0)) > first_id]


def last_job_id() -> int:
    return max((int(job["JobId"]) for job in jobs_after(0)), default=0)


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory, shared_data):
    reason = slurm_unreachable()
    if reason:
        if os.environ.get("WS2S_REQUIRE_SLURM") == "1":
            pytest.fail(f"WS2S_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    workdir = copy_repo(tmp_path_factory.mktemp("slurm"))
    write_data_overlay(workdir, shared_data)
    (workdir / "gpu.yaml").write_text(GPU_OVERLAY)
    first = last_job_id()
    # HOME elsewhere: the profile must be the repository's ./slurm, not one in ~/.config.
    env = {"WS2S_SLURM_PARTITION": "cpu", "WS2S_SLURM_GPU_PARTITION": "gpu",
           "HOME": str(tmp_path_factory.mktemp("home"))}
    run = snakemake(workdir, "--profile", "slurm", *SMOKE, "gpu.yaml", *TEST_CLUSTER_FLAGS, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return workdir, jobs_after(first)


def test_tables_equal_a_local_run(slurm_run, smoke_run):
    workdir, _ = slurm_run
    for table in ("table1.csv", "table7.csv", "table1.md", "table7.md"):
        assert (workdir / "results/tables" / table).read_text() == (smoke_run / "results/tables" / table).read_text()
    pd.testing.assert_frame_equal(pd.read_csv(workdir / "results/tables/table7.csv"),
                                  pd.read_csv(smoke_run / "results/tables/table7.csv"))


def test_every_job_went_through_sbatch_with_its_kind_of_resources(slurm_run):
    workdir, jobs = slurm_run
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        rule = job["Comment"].removeprefix("rule_").split("_wildcards_")[0]
        by_rule.setdefault(rule, []).append(job)
    assert len(by_rule["strong_classify"]) == 1 + 2 * (3 + 3)  # ceiling + (3 single + 3 ws3 methods) x aux
    assert {"classification_splits", "weak_classify", "strong_features", "table1", "table7"} <= set(by_rule)
    assert all(job["JobState"] == "COMPLETED" for job in jobs)
    # GPU rule: the GPU partition, one GPU, the config's memory, CPUs and runtime.
    for job in by_rule["strong_classify"]:
        assert job["Partition"] == "gpu" and job.get("TresPerJob") == "gres:gpu:1"
        assert job["MinMemoryNode"] == "8000M" and job["NumCPUs"] == "2" and job["TimeLimit"] == "01:00:00"
    # CPU rules: the default partition and no GPU.
    for rule in ("classification_splits", "table1", "table7", "weak_classify"):
        for job in by_rule[rule]:
            assert job["Partition"] == "cpu" and "gpu" not in job.get("TresPerJob", "") + job["TRES"]
    assert by_rule["table1"][0]["MinMemoryNode"] == "4000M"  # the profile's default-resources
