import shutil

import ws2s.codeversion as cv


def test_closure_follows_ws2s_imports():
    files = {p.relative_to(cv.PACKAGE_ROOT).as_posix() for p in cv.module_closure("ws2s.train.strong")}
    assert {"train/strong.py", "losses.py", "label_models.py", "train/classify.py", "io.py", "__init__.py"} <= files
    assert "tables.py" not in files and "cli.py" not in files


def test_editing_a_module_changes_only_the_steps_that_run_it(tmp_path, monkeypatch):
    copy = tmp_path / "ws2s"
    shutil.copytree(cv.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cv, "PACKAGE_ROOT", copy)
    cv.module_closure.cache_clear()
    before = cv.code_version("ws2s.train.strong"), cv.code_version("ws2s.tables")
    with (copy / "losses.py").open("a") as handle:
        handle.write("\n# an edit\n")
    cv.module_closure.cache_clear()
    after = cv.code_version("ws2s.train.strong"), cv.code_version("ws2s.tables")
    cv.module_closure.cache_clear()
    assert after[0] != before[0] and after[1] == before[1]
