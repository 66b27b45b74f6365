"""A clone alone runs (issue 19): the embedded default's data travels with the repository,
and what the README tells a user to run needs only the main install."""

import importlib.metadata
import re
import subprocess
import sys

from packaging.requirements import Requirement

from conftest import ROOT, snakemake


def test_a_clone_with_nothing_beside_it_plans_the_embedded_default(tmp_path):
    """The README's quick start as written, in an empty directory: the committed tree alone."""
    clone = tmp_path / "empty" / "ws2s"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    assert sorted(p.name for p in clone.parent.iterdir()) == ["ws2s"]
    run = snakemake(clone, "-n", "--cores", "2", "--configfile=workflow/configs/small.yaml")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "generation_splits" in run.stdout and "classification_splits" in run.stdout


def test_no_tracked_file_reads_data_beside_the_checkout():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    beside = "../" + "shared"
    hits = [name for name in tracked
            if (ROOT / name).is_file() and (ROOT / name).suffix not in (".png", ".jsonl", ".csv")
            and beside in (ROOT / name).read_text(errors="ignore")]
    assert hits == []


def _closure(name: str, extras: frozenset = frozenset(), seen: set | None = None) -> set[str]:
    """Distributions `pip install NAME[extras]` brings in, read from the installed metadata."""
    seen = set() if seen is None else seen
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        return seen
    seen.add(key)
    for line in importlib.metadata.requires(name) or []:
        requirement = Requirement(line)
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in extras or {""}):
            continue
        _closure(requirement.name, frozenset(requirement.extras), seen)
    return seen


def test_the_main_install_brings_what_snakemakes_report_imports():
    """`pip install -e .` without the test extras must bring pygments, which `snakemake --report`
    imports (pytest brings it to the test install, so a test run alone would not notice)."""
    main = _closure("ws2s")
    assert "pygments" in main
    assert "pytest" not in main and "jiwer" not in main  # the closure really leaves the test extras out


def test_user_commands_import_nothing_from_the_test_extras():
    """inspect, validate, the SLU-F1 scorer and the figures, with the test extras made unimportable."""
    blocker = ("import sys\n"
               "class Block:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] in ('jiwer', 'textdistance', 'pytest'):\n"
               "            raise ImportError(name + ' is a test extra')\n"
               "sys.meta_path.insert(0, Block())\n"
               "import ws2s.cli, ws2s.inspect, ws2s.metrics.slu_f1, ws2s.figures, ws2s.config\n"
               "import matplotlib, Levenshtein, pygments\n")
    run = subprocess.run([sys.executable, "-c", blocker], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
