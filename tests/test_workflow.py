"""Snakemake on the real workflow files: dry runs of the shipped configs, and the smoke run."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import copy_repo

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def job_counts(stdout: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> job count."""
    counts = {}
    for line in stdout.split("Job stats:")[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([*SNAKEMAKE, "all", *args], cwd=workdir, capture_output=True, text=True, env=env)


@pytest.fixture
def workdir(tmp_path):
    return copy_repo(tmp_path)


def test_dry_run_paper_config(workdir):
    run = snakemake(workdir, "-n", "--cores", "1")
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    assert counts["weak_classify"] == (5 + 3) * 3  # weak models of sciq and cosmosqa, 3 seeds
    # per seed: ceiling + 2 aux variants x (5 single + 2 ensembles x 3 methods) on SciQ,
    # and x (3 single + 1 ensemble x 3 methods) on Cosmos QA
    assert counts["strong_classify"] == 3 * ((1 + 2 * (5 + 6)) + (1 + 2 * (3 + 3)))
    assert counts["table1"] == counts["table2"] == counts["table7"] == 1
    assert "prepare_model" not in counts and "strong_features" not in counts  # hub models, full finetuning
    assert counts["generation_splits"] == 1 and counts["weak_generate"] == 5 * 3


def test_dry_run_embedded_default(workdir):
    run = snakemake(workdir, "-n", "--cores", "1", "--configfile", "workflow/configs/small.yaml")
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    assert counts["prepare_model"] == 4 and counts["weak_classify"] == 6 and counts["strong_features"] == 1
    assert counts["strong_classify"] == 2 * (1 + 2 * (3 + 3)) and "table2" not in counts  # SciQ is hub-only
    assert "weak_generate" not in counts  # the generation track is opt-in there
    opted_in = snakemake(workdir, "-n", "--cores", "1", "--configfile", "workflow/configs/small.yaml",
                         "--config", "tracks=[classification,generation]")
    assert job_counts(opted_in.stdout)["weak_generate"] == 2 * 2


def test_bad_config_one_line_and_nothing_written(workdir):
    (workdir / "bad.yaml").write_text("classification: {max_length: -3}\n")
    run = snakemake(workdir, "--cores", "1", "--configfile", "bad.yaml")
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("ws2s:")]
    assert errors == ["ws2s: config error: config key 'classification.max_length' has value -3; -3 is less than the minimum of 1"]
    assert not (workdir / "results").exists()


def test_missing_data_path_fails_cleanly(workdir):
    (workdir / "missing.yaml").write_text("data: {cosmosqa: {source: ./nowhere/valid.csv}}\n")
    run = snakemake(workdir, "--cores", "1", "--configfile", "workflow/configs/smoke.yaml", "missing.yaml")
    assert run.returncode != 0
    log = (workdir / "results/logs/classification_splits/cosmosqa.log").read_text()
    assert "ws2s: error: data.cosmosqa.source: nowhere/valid.csv does not exist" in log
    assert not list((workdir / "results").glob("classification/**/*.parquet"))


@pytest.mark.e2e
def test_smoke_config_end_to_end(workdir, shared_data):
    (workdir / "data.yaml").write_text(f"data: {{cosmosqa: {{source: {shared_data}/cosmosqa/valid.csv}}}}\n")
    run = snakemake(workdir, "--cores", "2", "--configfile", "workflow/configs/smoke.yaml", "data.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    table = pd.read_csv(workdir / "results/tables/table1.csv")
    assert list(table["model"]) == ["minilm-l1", "minilm-l2", "minilm-l3", "minilm-l6"]
    assert list(table["role"]) == ["weak"] * 3 + ["strong"]
    table7 = pd.read_csv(workdir / "results/tables/table7.csv")
    assert len(table7) == 1 + 3 + 3 and table7.columns[-1] == "PGR (%) +aux"
    labels = pd.read_parquet(workdir / "results/classification/cosmosqa/weak/minilm-l3/seed0/labels.parquet")
    assert len(labels) == 64 and set(labels["split"]) == {"strong_train", "test"}
    assert (workdir / "results/logs/weak_classify/cosmosqa/minilm-l3/seed0.log").stat().st_size > 0
    again = snakemake(workdir, "-n", "--cores", "2", "--configfile", "workflow/configs/smoke.yaml", "data.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_only_the_ceiling_is_handed_gold(workdir):
    run = snakemake(workdir, "-n", "-p", "--cores", "1", "--configfile", "workflow/configs/smoke.yaml")
    assert run.returncode == 0, run.stderr
    commands = [line for line in run.stdout.splitlines() if "ws2s strong-classify" in line]
    assert commands
    for command in commands:
        is_ceiling = '"method":"ceiling"' in command
        assert ("strong_train_gold.parquet" in command) == is_ceiling, command
