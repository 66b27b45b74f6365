import shutil

import pytest

import ws2s.codeversion as cv


def test_closure_follows_ws2s_imports():
    files = {p.relative_to(cv.PACKAGE_ROOT).as_posix() for p in cv.module_closure("ws2s.stages.strong_classify")}
    assert {"stages/strong_classify.py", "objectives.py", "train/classify.py", "io.py",
            "__init__.py"} <= files
    assert "tables.py" not in files and "cli.py" not in files


def test_editing_a_module_changes_only_the_steps_that_run_it(tmp_path, monkeypatch):
    copy = tmp_path / "ws2s"
    shutil.copytree(cv.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cv, "PACKAGE_ROOT", copy)
    cv.module_closure.cache_clear()
    before = cv.code_version("ws2s.stages.strong_classify"), cv.code_version("ws2s.tables")
    with (copy / "train" / "classify.py").open("a") as handle:
        handle.write("\n_EDITED = 1\n")
    cv.module_closure.cache_clear()
    after = cv.code_version("ws2s.stages.strong_classify"), cv.code_version("ws2s.tables")
    cv.module_closure.cache_clear()
    assert after[0] != before[0] and after[1] == before[1]


GENERATION_STAGES = ("ws2s.stages.weak_generate", "ws2s.stages.map_hypotheses", "ws2s.stages.joint_decode",
                     "ws2s.stages.strong_generate", "ws2s.stages.cdpo", "ws2s.stages.generation_splits")
CLASSIFICATION_ONLY = ("data/classification.py", "data/binary.py", "train/classify.py", "label_models.py",
                       "metrics/classification.py", "stages/classification_splits.py", "stages/weak_classify.py",
                       "stages/strong_features.py", "stages/strong_classify.py", "stages/label_models.py")


def test_no_stage_imports_another():
    """A stage's code version covers what it runs: stages share library modules, never each other."""
    stages = {"ws2s.stages.weak_classify", "ws2s.stages.strong_classify", "ws2s.stages.strong_features",
              "ws2s.stages.label_models", "ws2s.stages.classification_splits", *GENERATION_STAGES}
    for stage in stages:
        imported = {name.rsplit(".", 1)[0] if name.rsplit(".", 1)[0] in stages else name
                    for name in cv._imports(cv._module_file(stage))}
        assert not (imported & stages) - {stage}, stage


def test_an_edit_of_a_classification_module_leaves_every_generation_step_as_it_was(tmp_path, monkeypatch):
    copy = tmp_path / "ws2s"
    shutil.copytree(cv.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cv, "PACKAGE_ROOT", copy)
    cv.module_closure.cache_clear()
    before = {stage: cv.code_version(stage) for stage in GENERATION_STAGES}
    strong_before = cv.code_version("ws2s.stages.strong_classify")
    for module in CLASSIFICATION_ONLY:  # the SciQ loader among them
        with (copy / module).open("a") as handle:
            handle.write("\n_EDITED = 1\n")
    cv.module_closure.cache_clear()
    assert {stage: cv.code_version(stage) for stage in GENERATION_STAGES} == before
    assert cv.code_version("ws2s.stages.strong_classify") != strong_before
    cv.module_closure.cache_clear()


def test_a_module_that_does_not_exist_is_an_error():
    with pytest.raises(ValueError, match="ws2s.train.nowhere"):
        cv.code_version("ws2s.train.nowhere")


def test_comments_docstrings_and_layout_change_no_version_and_code_does(tmp_path, monkeypatch):
    copy = tmp_path / "ws2s"
    shutil.copytree(cv.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cv, "PACKAGE_ROOT", copy)
    cv.module_closure.cache_clear()
    config = copy / "config.py"
    original = config.read_text()
    before = cv.code_version("ws2s.stages.strong_classify")
    edited = original.replace('"""', '"""Reworded. ', 1)  # the module docstring
    edited = edited.replace("\ndef ", "\n# a new comment\n\n\ndef ", 1)  # a comment and blank lines
    assert edited != original
    config.write_text(edited)
    assert cv.code_version("ws2s.stages.strong_classify") == before
    config.write_text(original + "\n_EDITED = 1\n")
    assert cv.code_version("ws2s.stages.strong_classify") != before
    # a string that is not a docstring is code
    config.write_text(original + '\nNOTE = "a string constant"\n')
    assert cv.code_version("ws2s.stages.strong_classify") != before
    cv.module_closure.cache_clear()


STAGES = ("ws2s.stages.weak_classify", "ws2s.stages.strong_classify", "ws2s.stages.strong_features",
          "ws2s.stages.label_models", "ws2s.stages.classification_splits", *GENERATION_STAGES)


def test_no_stage_runs_the_config_files_validation():
    """Stages read typed configs (ws2s.config); the config file's checks (ws2s.configfile) run
    in the workflow and `ws2s validate` only, so editing a check or its message reruns nothing."""
    for stage in STAGES:
        files = {p.relative_to(cv.PACKAGE_ROOT).as_posix() for p in cv.module_closure(stage)}
        assert "config.py" in files and "configfile.py" not in files, stage


def test_the_bench_dry_run_follows_code_not_comments(tmp_path):
    """The bench with every output in place and its provenance recorded (`--touch`): a reworded
    docstring or a new comment in ws2s/objectives.py and ws2s/config.py leaves it at "Nothing
    to be done"; an edit of a loss reruns the runs that use it, and not the data splits.
    The edited package is a copy put first on PYTHONPATH, so the checkout stays as it is."""
    from conftest import copy_repo, snakemake
    from test_workflow import job_counts

    (tmp_path / "bench").mkdir()
    workdir = copy_repo(tmp_path / "bench")
    bench = ("--configfile", "workflow/configs/small.yaml", "workflow/configs/bench.yaml")
    summary = snakemake(workdir, "-n", "--summary", *bench)
    assert summary.returncode == 0, summary.stderr[-2000:]
    for line in summary.stdout.splitlines()[1:]:
        path = workdir / line.split("\t")[0]
        if line.startswith("results/models/") or path.name == "model":  # directory() outputs
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    touched = snakemake(workdir, "--touch", "--forceall", "--cores", "1", *bench)
    assert touched.returncode == 0, touched.stderr[-2000:]

    package = tmp_path / "package"
    shutil.copytree(cv.PACKAGE_ROOT, package / "ws2s", ignore=shutil.ignore_patterns("__pycache__"))
    edited = {"objectives.py": None, "config.py": None}
    for name in edited:
        path = package / "ws2s" / name
        edited[name] = path.read_text()
        text = edited[name].replace('"""', '"""Reworded. ', 1).replace("\ndef ", "\n# a new comment\n\ndef ", 1)
        assert text != edited[name]
        path.write_text(text)
    env = {"PYTHONPATH": str(package)}
    run = snakemake(workdir, "-n", *bench, env=env)
    assert run.returncode == 0 and "Nothing to be done" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]

    objectives = package / "ws2s" / "objectives.py"
    loss = "    return soft_cross_entropy(logits, targets), LossStats("
    assert loss in edited["objectives.py"]
    objectives.write_text(edited["objectives.py"].replace(loss, "    logits = logits * 1.0\n" + loss, 1))
    counts = job_counts(snakemake(workdir, "-n", *bench, env=env).stdout)
    assert counts["strong_classify"] == 5 * (1 + 2 * (5 + 2 * 8)) and counts["strong_generate"] > 0
    # code versions are per module: every step whose code imports ws2s.objectives reruns (the weak
    # runs too: they train with its cross-entropy), the data splits and prepared models do not
    assert not {"classification_splits", "generation_splits", "prepare_model"} & set(counts)
