"""Bring your own data set, method and weak model: the README's worked examples, run.

- A data set from a file (`data.NAME: {source, format}`): the generic loader's strict checks,
  and the README's example run through the classification track end to end (e2e).
- A method: one `design.METHODS` entry, registered here, dry-runs its strong runs and table
  with no other file edited.
- A weak model: one `models` entry and its name in `weak_models`, dry-run.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, SMOKE, copy_repo, snakemake

from ws2s import configfile, design
from ws2s.data.binary import make_splits
from ws2s.data.classification import dataset_of, load_file
from ws2s.errors import Ws2sError

README = (ROOT / "README.md").read_text()


def readme_yaml(section: str) -> str:
    """The first YAML block of a README section."""
    body = README.split(f"\n### {section}\n", 1)[1]
    return re.search(r"```yaml\n(.*?)```", body, flags=re.S).group(1)


def write(path: Path, rows: list[dict]) -> Path:
    frame = pd.DataFrame(rows)
    {".csv": lambda: frame.to_csv(path, index=False), ".parquet": lambda: frame.to_parquet(path),
     ".jsonl": lambda: frame.to_json(path, orient="records", lines=True)}[path.suffix]()
    return path


PAIRS = [
    {"text": "2 + 2?", "candidate": "4", "label": 1}, {"text": "2 + 2?", "candidate": "5", "label": 0},
    {"text": "2 + 2?", "candidate": "22", "label": 0},
    {"text": "Capital of France?", "candidate": "Lyon", "label": 0},
    {"text": "Capital of France?", "candidate": "Paris", "label": 1},
]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_pairs_become_questions_with_one_correct_candidate(tmp_path, suffix):
    source = {"source": str(write(tmp_path / f"mine{suffix}", PAIRS)), "format": "pairs"}
    questions = load_file(source, "data.mine")
    assert [(q.text, q.correct, q.distractors) for q in questions] == [
        ("2 + 2?", "4", ("5", "22")), ("Capital of France?", "Paris", ("Lyon",))]
    splits = make_splits("mine", questions, {"weak_train": 2, "strong_train": 2, "test": 0}, 0)
    assert sorted(splits["weak_train"]["label"]) == [0, 1]


def test_classes_become_questions_whose_candidates_are_the_classes(tmp_path):
    rows = [{"text": "wake me at 7", "label": "alarm"}, {"text": "play jazz", "label": "music"},
            {"text": "is it raining", "label": "weather"}]
    source = {"source": str(write(tmp_path / "mine.jsonl", rows)), "format": "classes"}
    questions = load_file(source, "data.mine")
    assert questions[1].correct == "music" and questions[1].distractors == ("alarm", "weather")
    declared = load_file({**source, "classes": ["weather", "music", "alarm", "timer"]}, "data.mine")
    assert declared[0].distractors == ("weather", "music", "timer")


@pytest.mark.parametrize("rows, problem", [
    ([{"text": "a", "candidate": "x"}], "lacks column(s) label"),
    ([*PAIRS[:2], {"text": "b", "candidate": "y", "label": 2}, {"text": "b", "candidate": "z", "label": 0}],
     "mine.csv row 3: 'label' must be a correctness label in 0..1; got 2 (1: correct, 0: wrong)"),
    ([{**row, "id": "q1" if i in (0, 3) else f"r{i}"} for i, row in enumerate(PAIRS)],
     "mine.csv row 4: duplicate id 'q1' (first at "),
    ([*PAIRS, {"text": "2 + 2?", "candidate": "5", "label": 0}], "mine.csv row 6: the same text and candidate as "),
    ([*PAIRS, {"text": "2 + 2?", "candidate": "four", "label": 1}], "mine.csv row 1: its text has 2 correct candidates"),
    (PAIRS[:1] + PAIRS[3:], "mine.csv row 1: its text has no wrong candidate (label 0)"),
    (PAIRS[1:], "mine.csv row 1: its text has no correct candidate (label 1)"),
    ([*PAIRS, {"text": " ", "candidate": "x", "label": 0}], "mine.csv row 6: 'text' is empty"),
])
def test_a_bad_pairs_file_is_one_error_naming_file_and_row(tmp_path, rows, problem):
    source = {"source": str(write(tmp_path / "mine.csv", rows)), "format": "pairs"}
    with pytest.raises(Ws2sError, match=re.escape(problem)) as err:
        load_file(source, "data.mine")
    assert str(err.value).startswith("data.mine") and "\n" not in str(err.value)


@pytest.mark.parametrize("rows, classes, problem", [
    ([{"text": "a", "label": "x"}, {"text": "b", "label": "q"}], ["x", "y"],
     "mine.csv row 2: label 'q' is not among data.mine.classes (x, y)"),
    ([{"text": "a", "label": "x"}, {"text": "b", "label": "y"}, {"text": "a", "label": "y"}], None,
     "mine.csv row 3: its text is labelled 'y' here and 'x' at "),
    ([{"text": "a", "label": "x"}, {"text": "b", "label": "x"}], None, "data.mine: 1 class(es) (x); a classification"),
])
def test_a_bad_classes_file_is_one_error_naming_file_and_row(tmp_path, rows, classes, problem):
    source = {"source": str(write(tmp_path / "mine.csv", rows)), "format": "classes", "classes": classes}
    with pytest.raises(Ws2sError, match=re.escape(problem)):
        load_file(source, "data.mine")


def smoke_config(**data_entry) -> dict:
    config = configfile.read_config_file(ROOT / "config.yaml")
    from snakemake.utils import update_config

    update_config(config, configfile.read_config_file(ROOT / "workflow/configs/smoke.yaml"))
    update_config(config, {"data": {"mine": {"source": "./mine.csv", "format": "pairs", **data_entry}},
                           "classification": {"datasets": ["mine"], "weak_models": {"mine": ["minilm-l1"]}}})
    return config


def test_a_users_data_set_gets_its_table_title_and_prompt_from_the_config():
    config = configfile.validate(smoke_config(title="Mine", prompt="{text} -> {candidate}? yes or no"))
    assert design.w2s_tables(config) == {"table_mine": "mine"}
    assert config["tables"]["table_mine"] == {"decimals": 1, "ci95": False}
    entry = design.dataset_entry(config, "mine")
    assert (entry.title, entry.prompt, entry.paper_table) == ("Mine", "{text} -> {candidate}? yes or no", None)
    assert dataset_of("mine", {"source": "x", "format": "classes"}).prompt.count("{candidate}") == 1
    assert "results/tables/table_mine.csv" in design.all_targets(config)


@pytest.mark.parametrize("entry, problem", [
    ({"prompt": "Is {candidate} right?"}, "config key 'data.mine.prompt' lacks {text}"),
    ({"prompt": "{text} {candidate} {answer}"}, "config key 'data.mine.prompt' has field(s) {answer}"),
    ({"prompt": "{text} {candidate"}, "config key 'data.mine.prompt' not a format string"),
    ({"classes": ["a", "b"]}, "config key 'data.mine.classes' is for format: classes"),
    ({"format": "triples"}, "config key 'data.mine.format' has value \"triples\"; allowed: pairs, classes"),
])
def test_a_bad_data_entry_is_one_error_naming_its_key(entry, problem):
    with pytest.raises(Ws2sError, match=re.escape(problem)):
        configfile.validate(smoke_config(**entry))


def test_a_data_set_without_source_or_format_is_named():
    config = smoke_config()
    del config["data"]["mine"]["format"]
    with pytest.raises(Ws2sError, match=re.escape("config key 'data.mine': 'format' is a required property")):
        configfile.validate(config)
    config = smoke_config()
    config["classification"]["weak_models"]["mien"] = ["minilm-l1"]
    with pytest.raises(Ws2sError, match="'classification.weak_models.mien' names no classification data set"):
        configfile.validate(config)


# ---- a method of one's own: one METHODS entry ------------------------------------------------

TOY_METHOD = """
from ws2s import design
# Naive Multi-Weak's targets and weights under the EDL loss: a method of its own, by one entry
design.METHODS["toy"] = design.Method("ensemble", {"classification": "weak_labels"}, "Toy Multi-Weak ({})",
                                      loss="edl", weights="members")
"""


def test_a_method_registered_here_dry_runs_its_runs_and_table(tmp_path):
    """The method is registered in this process's design.METHODS (no file of ws2s edited) and
    Snakemake runs in it: schema, wildcards, run params and the table follow the registry."""
    workdir = copy_repo(tmp_path)
    (workdir / "toy.yaml").write_text("tracks: [classification]\nclassification:\n"
                                      "  methods: [single, toy]\n  aux_variants: [noaux]\n")
    script = TOY_METHOD + """
from ws2s import configfile
config = configfile.load("config.yaml", "workflow/configs/smoke.yaml", "toy.yaml")
print(design.run_params(config, "strong_classify", dataset="cosmosqa", method="toy", source="ws3", aux="noaux",
                        seed="0"))  # canonical JSON
from snakemake.cli import main
main(["all", "-n", "--cores", "1", "--configfile", "workflow/configs/smoke.yaml", "toy.yaml"])
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    params = json.loads(run.stdout.splitlines()[0])
    assert params["target"] == "weak_labels" and params["loss"]["kind"] == "edl"
    assert params["members"] == ["minilm-l1", "minilm-l2", "minilm-l3"] and len(params["weights"]) == 3
    assert "results/classification/cosmosqa/strong/toy/ws3/noaux/seed0/metrics.json" in run.stdout
    table_job = run.stdout.split("rule table7:")[1].split("\n\n")[0]
    assert "strong/toy/ws3/noaux/seed0/metrics.json" in table_job
    # without the registration the same config is refused, naming the method
    unregistered = snakemake(workdir, "-n", "--configfile", "workflow/configs/smoke.yaml", "toy.yaml")
    assert unregistered.returncode != 0 and "classification.methods.1" in unregistered.stderr


def test_a_weak_model_of_ones_own_is_one_models_entry(tmp_path):
    workdir = copy_repo(tmp_path)
    (workdir / "weak.yaml").write_text(readme_yaml("Add a weak model"))
    run = snakemake(workdir, "-n", "--cores", "1", *SMOKE, "weak.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "results/classification/cosmosqa/weak/minilm-l4/seed0/labels.parquet" in run.stdout
    assert "results/classification/cosmosqa/strong/bayesian/ws4/aux/seed0/metrics.json" in run.stdout


# ---- the README's own data set, end to end -----------------------------------------------------


@pytest.mark.e2e
def test_own_data_set_runs_the_classification_track_end_to_end(tmp_path, data_dir):
    """README "Add your own data set": a file and a config, and the whole classification track."""
    workdir = copy_repo(tmp_path)
    utterances = pd.read_json(data_dir / "slurp" / "devel.jsonl", lines=True)
    (workdir / "my_data").mkdir()
    utterances.rename(columns={"sentence": "text", "scenario": "label"})[["text", "label"]].to_csv(
        workdir / "my_data" / "scenarios.csv", index=False)
    (workdir / "mine.yaml").write_text(readme_yaml("Add your own data set"))
    run = snakemake(workdir, "--cores", "2", "--configfile", "mine.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    table = pd.read_csv(workdir / "results" / "tables" / "table_scenarios.csv")
    assert list(table["method"])[:3] == ["Strong ceiling (gold)", "Weak-to-Strong (minilm-l1)",
                                         "Weak-to-Strong (minilm-l2)"]
    md = (workdir / "results" / "tables" / "table_scenarios.md").read_text()
    assert md.startswith("# Table (not in the paper): Weak(S)-to-Strong on scenarios")
    splits = pd.read_parquet(workdir / "results/classification/scenarios/splits/test.parquet")
    assert set(splits["candidate"]) <= set(utterances["scenario"]) and splits["label"].mean() == 0.5
    assert (workdir / "results" / "figures" / "pgr_scenarios.png").is_file()
    assert yaml.safe_load((workdir / "mine.yaml").read_text())["data"]["scenarios"]["format"] == "classes"
