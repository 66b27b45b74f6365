"""The package stands alone: the schema, the DeepSpeed template and the SLURM profile are
package data, and a wheel built from the checkout holds them (issue 28)."""

import shutil
import subprocess
import sys
import zipfile

from conftest import ROOT

from ws2s.config import DEFAULT_DEEPSPEED_CONFIG, PACKAGED_DEEPSPEED_CONFIG, EngineConfig
from ws2s.configfile import SCHEMA_PATH

RESOURCES = ("ws2s/resources/config.schema.yaml", "ws2s/resources/deepspeed/zero2.json",
             "ws2s/resources/slurm/config.yaml")


def test_the_workflow_reads_the_package_data():
    """One copy of each file: the workflow's paths are links to the package's."""
    for link, target in (("workflow/schemas/config.schema.yaml", RESOURCES[0]),
                         ("workflow/deepspeed/zero2.json", RESOURCES[1]), ("slurm/config.yaml", RESOURCES[2])):
        assert (ROOT / link).is_symlink() and (ROOT / link).resolve() == (ROOT / target).resolve(), link
    assert SCHEMA_PATH == (ROOT / RESOURCES[0]).resolve()


def test_the_default_deepspeed_template_is_found_without_a_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no workflow/ here
    ds = EngineConfig(backend="deepspeed").deepspeed_config(micro_batch=4)
    assert EngineConfig().config == DEFAULT_DEEPSPEED_CONFIG and PACKAGED_DEEPSPEED_CONFIG.is_file()
    assert ds["train_micro_batch_size_per_gpu"] == 4


def test_a_wheel_holds_the_package_data(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ beside pyproject.toml
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    shutil.copytree(ROOT / "ws2s", source / "ws2s", ignore=shutil.ignore_patterns("__pycache__"))
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                          str(tmp_path), str(source)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    wheel, = tmp_path.glob("ws2s-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(RESOURCES) <= names, sorted(n for n in names if "resources" in n)
