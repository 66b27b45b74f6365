"""`snakemake --profile slurm` against a real one-node SLURM (tests/slurm/start_cluster.sh).

Skipped when no SLURM answers, unless WS2S_REQUIRE_SLURM=1 (as .ci/run sets): then it fails.
"""

import io
import json
import os
import shutil
import subprocess

import numpy as np
import pandas as pd
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


def require_slurm() -> None:
    reason = slurm_unreachable()
    if reason:
        if os.environ.get("WS2S_REQUIRE_SLURM") == "1":
            pytest.fail(f"WS2S_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)


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
    assert "ws2s launch --gpus 4 --nodes 1 -- strong-classify" in jobs["strong_classify"]
    assert "gpu=1, slurm_partition=a100q, mem_mb=64000" in resources["weak_classify"]
    for rule in ("classification_splits", "generation_splits"):
        assert resources[rule] == "tmpdir=/tmp"  # the profile's defaults only; no GPU


def test_a_strong_job_over_two_nodes_asks_for_one_task_and_its_gpus_a_node(tmp_path):
    """Without a cluster: resources.strong.nodes 2 (a dry run of config.yaml)."""
    workdir = with_official_slurp_train(copy_repo(tmp_path))
    (workdir / "nodes.yaml").write_text("resources: {strong: {nodes: 2, gpu: 4, gpu_model: h100}}\n")
    run = snakemake(workdir, "-n", "-p", "--cores", "64", "--configfile", "config.yaml", "nodes.yaml")
    assert run.returncode == 0, run.stderr[-2000:]
    block = next(b for b in run.stdout.split("\nrule ")[1:] if b.startswith("strong_classify:"))
    resources = next(line for line in block.splitlines() if "resources:" in line)
    for request in ("launch_gpus=4", "launch_nodes=2", "tasks=2", "mpi=srun", "tasks_per_gpu=0", "nodes=2",
                    "gres=gpu:h100:4", "slurm_partition=gpu"):
        assert request in resources, resources
    assert "gpu=4" not in resources.replace("launch_gpu", "")  # --gpus would count the whole job's GPUs
    assert "ws2s launch --gpus 4 --nodes 2 -- strong-classify" in block
    (workdir / "nodes.yaml").write_text("resources: {weak: {nodes: 2}}\n")
    run = snakemake(workdir, "-n", "--cores", "64", "--configfile", "config.yaml", "nodes.yaml")
    assert run.returncode != 0 and "resources.weak.nodes" in run.stderr


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory):
    require_slurm()
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


@pytest.mark.e2e
@pytest.mark.slurm
def test_a_strong_run_over_two_nodes_writes_the_one_process_result(smoke_run, tmp_path):
    """resources.strong.nodes: 2 through the real srun + torchrun + c10d rendezvous path.

    The tests' cluster has one node, so WS2S_SLURM_ONE_HOST=1 asks for the job's two tasks on
    it (on a real cluster: --nodes=2, one task a node); the job's own srun then starts one
    torchrun a "node", they meet at the rendezvous on the first host, and the two ranks train
    what the local one-process run trained. A W2S run without aux: the aux term's balanced
    threshold is a per-rank quantile, not equal across world sizes (README, Several nodes)."""
    require_slurm()
    workdir = tmp_path / "nodes"
    shutil.copytree(smoke_run, workdir, symlinks=True)  # copy2 keeps mtimes: nothing else is outdated
    run_dir = next(p.parent for p in sorted(workdir.glob("results/classification/*/strong/*/*/noaux/seed*/metrics.json"))
                   if "/ceiling/" not in str(p))
    local = {name: (run_dir / name).read_bytes() for name in ("predictions.parquet", "metrics.json")}
    for name in local:
        (run_dir / name).unlink()
    (workdir / "nodes.yaml").write_text("resources: {strong: {nodes: 2, cpus: 1}}\n")
    first = last_job_id()
    env = {"WS2S_SLURM_PARTITION": "cpu", "WS2S_SLURM_ONE_HOST": "1", "HOME": str(tmp_path / "home")}
    run = snakemake(workdir, "--profile", "slurm", *SMOKE, "nodes.yaml", *TEST_CLUSTER_FLAGS, env=env,
                    target=str((run_dir / "metrics.json").relative_to(workdir)))
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = jobs_after(first)
    assert [job["Comment"].split("_wildcards_")[0] for job in jobs] == ["rule_strong_classify"]
    assert jobs[0]["NumTasks"] == "2" and jobs[0]["JobState"] == "COMPLETED"
    dataset, _, *run = run_dir.relative_to(workdir / "results/classification").parts
    log = (workdir / "results/logs/strong_classify" / dataset / "/".join(run)).with_suffix(".log")
    assert "rank 0/2" in log.read_text() and "rank 1/2" in log.read_text(), log.read_text()[-2000:]
    two = pd.read_parquet(run_dir / "predictions.parquet")
    one = pd.read_parquet(io.BytesIO(local["predictions.parquet"]))
    assert list(two.columns) == list(one.columns) and (two["id"] == one["id"]).all()
    # to 1e-4, not test_distributed's 1e-5 (fp32): the smoke config trains under bf16 autocast,
    # whose roundings differ when a batch is split over two ranks (1.6e-5 seen)
    for column in two.columns:
        if two[column].dtype.kind == "f":
            np.testing.assert_allclose(two[column], one[column], atol=1e-4)
    two_metrics, one_metrics = json.loads((run_dir / "metrics.json").read_text()), json.loads(local["metrics.json"])
    np.testing.assert_allclose(two_metrics["train_losses"], one_metrics["train_losses"], atol=1e-4)
    assert two_metrics["test_accuracy"] == one_metrics["test_accuracy"]
