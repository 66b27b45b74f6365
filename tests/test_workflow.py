"""Snakemake on the real workflow files: dry runs of the shipped configs, and the smoke run."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import SMOKE, copy_repo, snakemake, with_official_slurp_train



def job_counts(stdout: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> job count."""
    counts = {}
    for line in stdout.split("Job stats:")[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture
def workdir(tmp_path):
    return copy_repo(tmp_path)


def test_dry_run_paper_config(workdir):
    run = snakemake(with_official_slurp_train(workdir), "-n", "--cores", "1")
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    assert counts["weak_classify"] == (5 + 3) * 3  # weak models of sciq and cosmosqa, 3 seeds
    # per seed: ceiling + 2 aux variants x (5 single + 2 ensembles x 3 methods) on SciQ,
    # and x (3 single + 1 ensemble x 3 methods) on Cosmos QA
    assert counts["strong_classify"] == 3 * ((1 + 2 * (5 + 6)) + (1 + 2 * (3 + 3)))
    assert counts["table1"] == counts["table2"] == counts["table7"] == 1
    assert "prepare_model" not in counts and "strong_features" not in counts  # hub models, full finetuning
    assert counts["generation_splits"] == 1 and counts["weak_generate"] == 5 * 3
    # per seed: ceiling + 2 aux x (5 single + 2 ensembles x 3 methods), then the ablations
    # on ws5 without aux: Table 8 and 9 add two runs each, Table 11 two (M = 3, 10)
    assert counts["strong_generate"] + counts["strong_generate_keep_model"] == 3 * (1 + 2 * (5 + 6) + 6)
    assert counts["map_hypotheses"] == 5 * 3 and counts["joint_decode"] == 2 * 3 + 2 * 3
    assert counts["table3"] == counts["table4"] == counts["table5"] == 1 and counts["table_ablation"] == 3


def test_dry_run_embedded_default(workdir):
    run = snakemake(workdir, "-n", "--cores", "1", "--configfile", "workflow/configs/small.yaml")
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    # SmolLM2-135M and Gemma 3 from GGUF, Qwen2.5-Coder joined from six parts, MPNet unzipped
    # from five, a cut-down SmolLM2
    assert counts["prepare_model"] == 5 and counts["weak_classify"] == 3 * 2 and counts["strong_features"] == 1
    assert counts["strong_classify"] == 2 * (1 + 2 * (3 + 3)) and counts["table_slurp_intent"] == 1
    assert "table2" not in counts and "table7" not in counts  # the CPU-sized classification task only
    # generation, one seed: 2 weak models; the ceiling, each single weak model, Naive and
    # Bayesian Multi-Weak without aux
    assert counts["weak_generate"] == counts["map_hypotheses"] == 2 and "joint_decode" not in counts
    assert counts["strong_generate"] == 1 + 2 + 2 and "strong_generate_keep_model" not in counts
    assert "cdpo" not in counts and "table_ablation" not in counts


def test_the_finetuned_readout_arm_reads_the_model_and_shared_bottom_states(workdir):
    """`head: readout` with `train_layers: 2`: the frozen bottom blocks' states computed once
    (strong_features, for that block count); each strong run reads them and the strong model
    and asks the data set's yes/no question itself."""
    (workdir / "arm.yaml").write_text("tracks: [classification]\nclassification: {strong_training: {train_layers: 2}}\n")
    run = snakemake(workdir, "-n", "-p", "--cores", "1", "--configfile", "workflow/configs/small.yaml", "arm.yaml")
    assert run.returncode == 0, run.stderr[-2000:]
    assert job_counts(run.stdout)["strong_features"] == 1
    features = [line for line in run.stdout.splitlines() if "strong-features --name" in line]
    assert len(features) == 1 and '"train_layers":2' in features[0] and '"head":"readout"' in features[0]
    commands = [line for line in run.stdout.splitlines() if "strong-classify --params" in line]
    assert commands and all('"head":"readout"' in c and '"prompt":"' in c and '"train_layers":2' in c and
                            "--features=results/classification/slurp_intent/strong/features/qwen2.5-coder-0.5b.parquet"
                            in c for c in commands)


def test_dry_run_bench(workdir):
    run = snakemake(workdir, "-n", "--cores", "1", "--configfile", "workflow/configs/small.yaml",
                    "workflow/configs/bench.yaml")
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    seeds = 5
    assert counts["weak_classify"] == 5 * seeds and counts["label_models"] == 2 * seeds
    # per seed: ceiling + 2 aux variants x (5 single + 2 ensembles x 8 methods: Naive, five
    # label models of the libraries, Flying Squid, Bayesian)
    assert counts["strong_classify"] == seeds * (1 + 2 * (5 + 2 * 8))
    gen_seeds = 3
    assert counts["weak_generate"] == counts["map_hypotheses"] == 2 * gen_seeds and "joint_decode" not in counts
    # per seed: the ceiling, 2 single, Naive and Bayesian Multi-Weak (the embedded default's
    # methods); Bayesian's run keeps its weights for cDPO, which starts from it
    assert counts["strong_generate"] == gen_seeds * (1 + 2 + 1)
    assert counts["strong_generate_keep_model"] == counts["cdpo"] == gen_seeds
    assert counts["table4"] == counts["table5"] == 1


def test_bad_config_one_line_and_nothing_written(workdir):
    (workdir / "bad.yaml").write_text("classification: {max_length: -3}\n")
    run = snakemake(workdir, "--cores", "1", "--configfile", "bad.yaml")
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("ws2s:")]
    assert errors == ["ws2s: config error: config key 'classification.max_length' has value -3; -3 is less than the minimum of 1"]
    assert not (workdir / "results").exists()


def test_missing_data_path_fails_cleanly(workdir):
    (workdir / "missing.yaml").write_text("tracks: [classification]\ndata: {cosmosqa: {source: ./nowhere/valid.csv}}\n")
    run = snakemake(workdir, "--cores", "1", "--configfile", "workflow/configs/smoke.yaml", "missing.yaml")
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("ws2s:")]
    assert errors == ["ws2s: config error: data.cosmosqa.source: nowhere/valid.csv does not exist; "
                      "download the data set there or set data.cosmosqa.source to its hub id"]
    assert not (workdir / "results").exists()


def test_an_edited_data_file_reruns_exactly_what_reads_it(workdir):
    """Data files are rule inputs: truncating SLURP's devel.jsonl in place (and re-pinning it,
    as a deliberate edit would) reruns the generation splits, not Cosmos QA's splits."""
    until = ("--until", "classification_splits", "generation_splits")
    assert snakemake(workdir, "--cores", "2", *SMOKE, *until).returncode == 0
    devel = workdir / "data" / "slurp" / "devel.jsonl"
    devel.write_text("".join(devel.read_text().splitlines(keepends=True)[:1500]))
    sums = workdir / "data" / "slurp" / "SHA256SUMS"
    sums.write_text("".join(line for line in sums.read_text().splitlines(keepends=True) if "devel" not in line))
    run = snakemake(workdir, "-n", "--cores", "2", *SMOKE, *until)
    assert run.returncode == 0, run.stderr[-2000:]
    assert {rule: n for rule, n in job_counts(run.stdout).items() if rule != "total"} == {"generation_splits": 1}


def test_an_edited_pinned_data_file_is_one_error_naming_it(workdir):
    test = workdir / "data" / "slurp" / "test.jsonl"
    test.write_text("".join(test.read_text().splitlines(keepends=True)[:100]))
    run = snakemake(workdir, "--cores", "1", "--configfile", "workflow/configs/smoke.yaml",
                    "--until", "generation_splits")
    assert run.returncode != 0
    log = (workdir / "results/logs/generation_splits.log").read_text()
    errors = [line for line in log.splitlines() if line.startswith("ws2s:")]
    assert errors == ["ws2s: error: data.slurp.test: data/slurp/test.jsonl does not match the sha256 pinned for it in "
                      "data/slurp/SHA256SUMS: the file was changed or truncated; restore the original (see "
                      "data/README.md), or update its line if the change is meant"]
    assert not list((workdir / "results").glob("generation/splits/*.parquet"))


def planned(workdir: Path, *overlay: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run with the extra overlay lines would run."""
    extra = []
    if overlay:
        (workdir / "change.yaml").write_text("\n".join(overlay) + "\n")
        extra = ["change.yaml"]
    run = snakemake(workdir, "-n", "--cores", "2", *SMOKE, *extra)
    assert run.returncode == 0, run.stderr[-2000:]
    jobs, rule = [], None
    for line in run.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
            jobs.append((rule, ""))
        elif line.strip().startswith("wildcards:") and jobs:
            jobs[-1] = (jobs[-1][0], line.split(":", 1)[1].strip())
    return [job for job in jobs if job[0] != "all"]


@pytest.mark.e2e
def test_smoke_config_end_to_end(smoke_run):
    workdir = smoke_run
    table = pd.read_csv(workdir / "results/tables/table1.csv")
    assert list(table["model"]) == ["minilm-l1", "minilm-l2", "minilm-l3", "smollm2-135m"]
    assert list(table["role"]) == ["weak"] * 3 + ["strong"]
    table7 = pd.read_csv(workdir / "results/tables/table7.csv")
    assert len(table7) == 1 + 3 + 3 and table7.columns[-1] == "ECE (%) +aux"
    assert len(pd.read_csv(workdir / "results/tables/table7_nogold.csv")) == 1 + 3 + 3
    labels = pd.read_parquet(workdir / "results/classification/cosmosqa/weak/minilm-l3/seed0/labels.parquet")
    assert len(labels) == 80 and set(labels["split"]) == {"strong_train", "val", "test"}
    assert (workdir / "results/logs/weak_classify/cosmosqa/minilm-l3/seed0.log").stat().st_size > 0
    # the readout head: the strong model's own yes/no rows, stored beside its prompted states
    info = json.loads((workdir / "results/classification/cosmosqa/strong/features/smollm2-135m.json").read_text())
    assert len(info["readout"]) == 2 and len(info["readout"][0]) == info["hidden_size"]
    # the curves: every strong run (the ceiling without aux; 3 single-weak and 3 ensemble methods
    # without and with it) from point 0 on, each protocol picking one point of each
    curves = pd.read_parquet(workdir / "results/curves/cosmosqa.parquet")
    runs = curves.groupby(["method", "source", "aux", "seed"])
    assert runs.ngroups == 1 + 2 * 6 and (runs[["paper", "nogold", "fewgold", "goldfree"]].sum() == 1).all().all()
    assert (curves.groupby(["method", "source", "aux", "seed"])["point"].min() == 0).all()
    protocols = pd.read_csv(workdir / "results/tables/table7_protocols.csv")
    assert len(protocols) == 1 + 2 * 6 and "goldfree: PGR 95% CI" in protocols.columns
    for name in ("fewgold", "goldfree"):
        assert len(pd.read_csv(workdir / f"results/tables/table7_{name}.csv")) == 1 + 3 + 3
    for figure in ("fig3_cosmosqa.png", "pgr_cosmosqa.png", "reliability_cosmosqa.png", "fig3_slurp.png", "pgr_slurp.png",
                   "curves_cosmosqa.png"):
        assert (workdir / "results/figures" / figure).read_bytes()[:4] == b"\x89PNG"
    # generation: Table 3 (weak models and the ceiling), Table 4, the ablations, Table 5
    table3 = pd.read_csv(workdir / "results/tables/table3.csv")
    assert list(table3["model"]) == ["smollm2-d2", "gemma3-d2", "smollm2-135m"]
    table4 = pd.read_csv(workdir / "results/tables/table4.csv")
    assert list(table4["method"]) == ["Strong ceiling (gold)", "Weak-to-Strong (smollm2-d2)", "Weak-to-Strong (gemma3-d2)",
                                      "Naive Multi-Weak (ws2)", "Joint Decoding (ws2)", "Bayesian Multi-Weak (ws2)"]
    for name, settings in (("table8", ["onehot", "target", "full"]), ("table9", ["average", "dynamic", "fixed"]),
                           ("table11", ["m3", "m5", "m10"])):
        assert list(pd.read_csv(workdir / f"results/tables/{name}.csv")["setting"]) == settings
    # Table 10: a member that generates candidates but does not judge them
    assert list(pd.read_csv(workdir / "results/tables/table10.csv")["setting"]) == [
        "ws2: every member generates and judges", "gemma_judges: generators smollm2-d2+gemma3-d2; judges gemma3-d2"]
    joint = pd.read_parquet(workdir / "results/generation/joint/gemma_judges/m3/seed0.parquet")
    assert all(len(scores) == 1 for scores in joint["member_logprobs"])  # one judge
    assert len(pd.read_csv(workdir / "results/tables/table5.csv")) == 2  # seed 0 and the mean
    # the Gemma weak model's hypotheses in SmolLM2's tokenizer: same text, same total log-probability
    mapped = pd.read_parquet(workdir / "results/generation/mapped/gemma3-d2/seed0.parquet")
    hyps = pd.read_parquet(workdir / "results/generation/weak/gemma3-d2/seed0/hypotheses.parquet").set_index("id")
    for row in mapped.itertuples():
        assert "".join(row.strong_tokens) == row.text == hyps.loc[row.id, "text"]
        assert sum(row.target_logprobs) == pytest.approx(sum(hyps.loc[row.id, "token_logprobs"]), abs=1e-3)


@pytest.mark.e2e
def test_the_run_began_with_an_estimate_of_every_job_it_ran(smoke_run):
    seen = (smoke_run / "snakemake.stderr").read_text()
    estimate = re.search(r"^ws2s: estimate: (\d+) jobs, (about [\dh ]+min|under 1 min) on 2 cores "
                         r"\((step times measured on|no step times for this CPU)", seen, re.MULTILINE)
    assert estimate, seen[:3000]
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", seen)
    assert done and int(estimate.group(1)) == int(done[-1][1])
    assert seen.index("ws2s: estimate:") < seen.index("1 of ")  # before the first job ended


@pytest.mark.e2e
def test_report_has_every_table_and_figure_with_captions(smoke_run):
    run = snakemake(smoke_run, "--cores", "1", *SMOKE, "--report", "results/report.html")
    assert run.returncode == 0, run.stderr[-2000:]
    html = (smoke_run / "results/report.html").read_text()
    for name in ("table1.csv", "table7.csv", "table7_nogold.csv", "fig3_cosmosqa.png", "pgr_cosmosqa.png",
                 "reliability_cosmosqa.png", "table3.csv", "table4.csv", "table4_nogold.csv", "table5.csv",
                 "table8.csv", "fig3_slurp.png", "pgr_slurp.png", "table7_protocols.csv", "curves_cosmosqa.png"):
        assert name in html
    for caption in ("Table 1: every model finetuned", "Tables 2 (SciQ), 7 (Cosmos QA) and 4 (SLURP)",
                    "Table 3: SLURP slot filling", "Generation ablations", "Figure 3: agreement", "PGR per method",
                    "Reliability diagram", "no-gold", "protocol that uses no", "read under the selection protocols",
                    "against training progress"):
        assert caption in html


@pytest.mark.e2e
def test_nothing_reruns_when_nothing_changed(smoke_run):
    assert planned(smoke_run) == []
    # key order of a config slice does not matter: the same values written in another order
    assert planned(smoke_run, "classification: {weak_training: {train_layers: 1, lr: 5.0e-5, batch_size: 16, epochs: 1}}") == []


@pytest.mark.e2e
def test_one_weak_learning_rate_reruns_that_model_and_what_reads_it(smoke_run):
    jobs = planned(smoke_run, "classification: {weak_training: {lr_per_model: {minilm-l2: 1.0e-4}}}")
    rules = [rule for rule, _ in jobs]
    assert [w for r, w in jobs if r == "weak_classify"] == ["dataset=cosmosqa, model=minilm-l2, seed=0"]
    strong = [w for r, w in jobs if r == "strong_classify"]
    assert len(strong) == 2 * (1 + 3)  # single/minilm-l2 and the three ws3 methods, aux off and on
    assert all("source=minilm-l2" in w or "source=ws3" in w for w in strong)
    assert "prepare_model" not in rules and "strong_features" not in rules and "classification_splits" not in rules
    # the ensemble's label models read every member's votes
    assert [w for r, w in jobs if r == "label_models"] == ["dataset=cosmosqa, ensemble=ws3, seed=0"]
    assert sorted(set(rules) - {"weak_classify", "strong_classify"}) == [
        "curves_cosmosqa", "fig3_classification", "label_models", "pgr_cosmosqa", "reliability_cosmosqa", "table1",
        "table7"]


@pytest.mark.e2e
def test_a_table_format_option_reruns_only_that_table(smoke_run):
    # the curves stage writes the data set's protocol tables in the same format
    assert sorted(planned(smoke_run, "tables: {table7: {decimals: 2}}")) == [("curves_cosmosqa", ""), ("table7", "")]
    assert planned(smoke_run, "tables: {table1: {decimals: 3}}") == [("table1", "")]


@pytest.mark.e2e
def test_an_edl_setting_reruns_only_bayesian_runs(smoke_run):
    jobs = planned(smoke_run, "classification: {edl: {kl_weight: 0.5}}")
    assert sorted(w for r, w in jobs if r == "strong_classify") == [
        f"dataset=cosmosqa, method=bayesian, source=ws3, aux={aux}, seed=0" for aux in ("aux", "noaux")]
    assert sorted({r for r, _ in jobs}) == ["curves_cosmosqa", "pgr_cosmosqa", "reliability_cosmosqa",
                                            "strong_classify", "table7"]


@pytest.mark.e2e
def test_adding_a_seed_reruns_no_finished_job(smoke_run):
    jobs = planned(smoke_run, "seeds: [0, 1]")
    per_seed = [w for r, w in jobs if "seed=" in w]
    assert per_seed and all(w.endswith("seed=1") for w in per_seed)
    # the tables and figures gather the new seed
    gathering = {r for r, w in jobs if "seed=" not in w}
    assert {"table1", "table7", "fig3_classification", "pgr_cosmosqa", "reliability_cosmosqa", "curves_cosmosqa",
            "table3", "table4", "table5"} <= gathering
    assert all(r.startswith(("table", "fig3_", "pgr_", "reliability_", "curves_")) for r in gathering), gathering


def test_only_the_ceiling_is_handed_gold(workdir):
    run = snakemake(workdir, "-n", "-p", "--cores", "1", "--configfile", "workflow/configs/smoke.yaml")
    assert run.returncode == 0, run.stderr
    commands = [line for line in run.stdout.splitlines() if "strong-classify --params" in line
                or "strong-generate --params" in line]
    assert any("strong-classify" in c for c in commands) and any("strong-generate" in c for c in commands)
    for command in commands:
        is_ceiling = '"method":"ceiling"' in command
        assert ("strong_train_gold.parquet" in command) == is_ceiling, command
        assert ("val_gold.parquet" in command) == is_ceiling, command
        # every generation run is handed its seed's few-gold subset, to pick its few-gold point
        if "strong-generate" in command:
            assert "--fewgold=results/generation/splits/fewgold/seed0.parquet" in command, command


# ---- generation track and cDPO ----------------------------------------------------------


@pytest.mark.e2e
def test_a_cdpo_beta_reruns_only_cdpo_and_table5(smoke_run):
    jobs = planned(smoke_run, "generation: {cdpo: {beta: 1.0}}")
    assert sorted(jobs) == [("cdpo", "ensemble=ws2, seed=0"), ("table5", "")]


@pytest.mark.e2e
def test_the_mapping_weighting_reruns_the_soft_label_runs_only(smoke_run):
    jobs = planned(smoke_run, "generation: {mapping: {weighting: inverse_confidence}}")
    rules = {r for r, _ in jobs}
    assert sorted(w for r, w in jobs if r == "map_hypotheses") == ["model=gemma3-d2, seed=0", "model=smollm2-d2, seed=0"]
    strong = [w for r, w in jobs if r.startswith("strong_generate")]
    # single, naive and Bayesian read the mapping; the ceiling and Joint Decoding do not
    assert strong and not any("ceiling" in w or "jointdecoding" in w for w in strong)
    assert "weak_generate" not in rules and "joint_decode" not in rules


def test_cdpo_jobs_follow_the_config(workdir):
    (workdir / "on.yaml").write_text("generation: {cdpo: {enabled: true}}\n")
    run = snakemake(workdir, "-n", "-p", "--cores", "1", "--configfile", "workflow/configs/small.yaml", "on.yaml")
    assert run.returncode == 0, run.stderr[-2000:]
    counts = job_counts(run.stdout)
    assert counts["cdpo"] == 1 and counts["table5"] == 1  # one per generation seed
    command = next(line for line in run.stdout.splitlines() if "-- cdpo --params" in line)
    assert "--start-model results/generation/strong/bayesian/ws2/aux/seed" in command
    assert '"members":["smollm2-135m","gemma3-270m"]' in command and '"weights":[0.5,0.5]' in command
    off = snakemake(workdir, "-n", "--cores", "1", "--configfile", "workflow/configs/small.yaml")  # cDPO off there
    assert off.returncode == 0, off.stderr[-2000:]
    assert "cdpo" not in job_counts(off.stdout) and "table5" not in job_counts(off.stdout)
