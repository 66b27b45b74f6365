"""The workflow's rules pass Snakemake's linter and snakefmt's layout check (issue 28)."""

import subprocess
import sys

from conftest import ROOT, SMOKE


def test_snakemake_lint_is_clean():
    run = subprocess.run([sys.executable, "-m", "snakemake", "--lint", *SMOKE], cwd=ROOT, capture_output=True,
                         text=True)
    assert run.returncode == 0 and "Lints for" not in run.stdout + run.stderr, (run.stdout + run.stderr)[-4000:]


def test_rules_are_formatted_by_snakefmt():
    run = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "--diff", "Snakefile", "workflow/"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
