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


def test_stage_functions_stay_short():
    """A stage is a short script over library functions (the strong-run skeleton is
    ws2s.train.strong): no function of ws2s/stages has a body over 50 lines."""
    import ast

    for path in sorted((ROOT / "ws2s" / "stages").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body  # past the docstring
                assert node.end_lineno - body[0].lineno < 50, f"{path.name}: {node.name}"
