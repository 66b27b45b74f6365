"""`snakemake --profile slurm` against a real one-node SLURM (tests/slurm/start_cluster.sh).

Skipped when no SLURM answers, unless WS2S_REQUIRE_SLURM=1 (as .ci/run sets): then it fails.
"""

import os
import shutil
import subprocess

import pytest

from conftest import SMOKE, copy_repo, snakemake, with_official_slurp_train


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


def test_paper_config_asks_gpus_for_training_and_nothing_for_the_rest(tmp_path):
    """Without a cluster: what each kind of job of config.yaml asks for (a dry run)."""
    workdir = with_official_slurp_train(copy_repo(tmp_path))
    run = snakemake(workdir, "-n", "-p", "--cores", "64", env={"WS2S_SLURM_GPU_PARTITION": "a100q"})
    assert run.returncode == 0, run.stderr[-2000:]
    jobs = {}
    for block in run.stdout.split("\nrule ")[1:]:
        jobs.setdefault(block.split(":")[0], block)
    resources = {rule: next(line.split(":", 1)[1].strip() for line in block.splitlines() if "resources:" in line)
                 for rule, block in jobs.items()}
    assert "gpu=4, slurm_partition=a100q, mem_mb=256000" in resources["strong_classify"]
    assert "runtime=120" in resources["strong_classify"] and "threads: 32" in jobs["strong_classify"]
    assert "ws2s launch --gpus 4 -- strong-classify" in jobs["strong_classify"]
    assert "gpu=1, slurm_partition=a100q, mem_mb=64000" in resources["weak_classify"]
    for rule in ("classification_splits", "generation_splits"):
        assert resources[rule] == "tmpdir=/tmp"  # the profile's defaults only; no GPU


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory):
    reason = slurm_unreachable()
    if reason:
        if os.environ.get("WS2S_REQUIRE_SLURM") == "1":
            pytest.fail(f"WS2S_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    workdir = copy_repo(tmp_path_factory.mktemp("slurm"))
    (workdir / "gpu.yaml").write_text(GPU_OVERLAY)
    first = last_job_id()
    # HOME elsewhere: the profile must be the repository's ./slurm, not one in ~/.config.
    env = {"WS2S_SLURM_PARTITION": "cpu", "WS2S_SLURM_GPU_PARTITION": "gpu",
           "HOME": str(tmp_path_factory.mktemp("home"))}
    run = snakemake(workdir, "--profile", "slurm", *SMOKE, "gpu.yaml", *TEST_CLUSTER_FLAGS, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return workdir, jobs_after(first)


@pytest.mark.e2e
@pytest.mark.slurm
def test_tables_equal_a_local_run(slurm_run, smoke_run):
    workdir, _ = slurm_run
    local = sorted(p.name for p in (smoke_run / "results/tables").iterdir())
    assert {"table1.csv", "table7.csv"} <= set(local)
    assert sorted(p.name for p in (workdir / "results/tables").iterdir()) == local
    for table in local:
        assert (workdir / "results/tables" / table).read_text() == (smoke_run / "results/tables" / table).read_text()


@pytest.mark.e2e
@pytest.mark.slurm
def test_every_job_went_through_sbatch_with_its_kind_of_resources(slurm_run):
    workdir, jobs = slurm_run
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        rule = job["Comment"].removeprefix("rule_").split("_wildcards_")[0]
        by_rule.setdefault(rule, []).append(job)
    assert len(by_rule["strong_classify"]) == 1 + 2 * (3 + 3)  # ceiling + (3 single + 3 ws3 methods) x aux
    assert {"classification_splits", "weak_classify", "strong_features", "table1", "table7"} <= set(by_rule)
    assert all(job["JobState"] == "COMPLETED" and job["Requeue"] == "1" for job in jobs)  # requeue on preemption
    # GPU rule: the GPU partition, one GPU, the config's memory, CPUs and runtime.
    for job in by_rule["strong_classify"]:
        assert job["Partition"] == "gpu" and job.get("TresPerJob") == "gres:gpu:1"
        # a linear probe (the smoke config's strong stage) asks one core, not the config's two
        assert job["MinMemoryNode"] == "8000M" and job["NumCPUs"] == "1" and job["TimeLimit"] == "01:00:00"
    # CPU rules: the default partition and no GPU.
    for rule in ("classification_splits", "table1", "table7", "weak_classify"):
        for job in by_rule[rule]:
            assert job["Partition"] == "cpu" and "gpu" not in job.get("TresPerJob", "") + job["TRES"]
    assert by_rule["table1"][0]["MinMemoryNode"] == "4000M"  # the profile's default-resources
