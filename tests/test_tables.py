import json
import math

import numpy as np
import pytest

from ws2s.tables import aux_variants_of, ci95, w2s_results, w2s_table


def test_ci95_is_the_student_t_interval():
    # n = 5: mean 3, s = sqrt(2.5), t_{0.975,4} = 2.776 (printed tables)
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)
    assert ci95([0.01, 0.02, 0.03, 0.04, 0.05], 2) == f"[{3 - half:.2f}, {3 + half:.2f}]"
    # n = 2: t_{0.975,1} = 12.706
    assert ci95([0.5, 0.6], 1) == f"[{55 - 12.706 * math.sqrt(50) / math.sqrt(2):.1f}, {55 + 12.706 * 5:.1f}]"
    assert ci95([0.5], 1) == "n/a" and ci95([0.5, np.nan], 1) == "n/a"


def test_aux_methods_limit_which_methods_run_with_aux():
    layout = {"aux_variants": ["noaux", "aux"]}
    assert aux_variants_of(layout, "ceiling") == ["noaux"]
    assert aux_variants_of(layout, "naive") == ["noaux", "aux"]
    only = {**layout, "aux_methods": ["bayesian"]}
    assert aux_variants_of(only, "naive") == ["noaux"] and aux_variants_of(only, "bayesian") == ["noaux", "aux"]


def _write(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return str(path)


def _strong(folder, method, source, seed, accuracy):
    """A strong run's metrics.json under a name that says nothing: tables read the run's record."""
    members = [] if method == "ceiling" else [source]
    return _write(folder / f"run-{method}-{seed}.json", {"method": method, "source": source, "aux": False, "seed": seed,
                                                         "members": members, "test_accuracy": accuracy})


def test_w2s_table_with_ci_and_aux_for_some_methods(tmp_path):
    layout = {"weak_models": ["a"], "ensembles": {}, "methods": ["single"], "aux_variants": ["noaux", "aux"],
              "aux_methods": [], "format": {"decimals": 1, "ci95": True}}
    weak, strong = [], []
    for seed, (w, c, s) in enumerate([(0.60, 0.80, 0.70), (0.60, 0.70, 0.65), (0.50, 0.70, 0.55)]):
        weak.append(_write(tmp_path / f"weak{seed}.json", {"model": "a", "seed": seed, "test_accuracy": w}))
        strong.append(_strong(tmp_path, "ceiling", "gold", seed, c))
        strong.append(_strong(tmp_path, "single", "a", seed, s))
    table = w2s_table(w2s_results(weak, strong, layout), layout)
    single = table.iloc[1]
    pgrs = np.array([50.0, 50.0, 25.0])  # (s − w)/(c − w) per seed
    half = 4.303 * pgrs.std(ddof=1) / math.sqrt(3)
    assert single["PGR (%)"] == f"{pgrs.mean():.1f} ± {pgrs.std(ddof=1):.1f}"
    assert single["PGR 95% CI"] == f"[{pgrs.mean() - half:.1f}, {pgrs.mean() + half:.1f}]"
    assert single["accuracy (%) +aux"] == "—" and single["PGR 95% CI +aux"] == "—"  # aux_methods: []
    assert table.iloc[0]["PGR 95% CI"] == "—"  # the ceiling has no PGR


def test_paired_difference_is_the_t_interval_of_per_seed_differences():
    from ws2s.tables import paired_difference

    a = {0: 0.50, 1: 0.40, 2: 0.70, 3: 0.10}
    b = {0: 0.30, 1: 0.35, 2: 0.45, 4: 0.90}  # seed 3 and seed 4 are unpaired: left out
    mean, half, n = paired_difference(a, b)
    diffs = [20.0, 5.0, 25.0]
    assert n == 3 and mean == pytest.approx(50 / 3)
    assert half == pytest.approx(4.303 * np.std(diffs, ddof=1) / math.sqrt(3))
    assert paired_difference({0: 0.1}, {0: 0.2}) is None and paired_difference({0: np.nan, 1: 0.1}, {0: 0.1, 1: 0.1}) is None


def test_a_pgr_whose_gap_is_under_2_points_prints_as_gap_too_small(tmp_path):
    from ws2s.tables import GAP_TOO_SMALL

    layout = {"weak_models": ["a"], "ensembles": {}, "methods": ["single"], "aux_variants": ["noaux"],
              "format": {"decimals": 1, "ci95": True}}
    weak = [_write(tmp_path / "weak.json", {"model": "a", "seed": 0, "test_accuracy": 0.600})]
    strong = [_strong(tmp_path, "ceiling", "gold", 0, 0.615), _strong(tmp_path, "single", "a", 0, 0.61)]
    single = w2s_table(w2s_results(weak, strong, layout), layout).iloc[1]
    assert single["PGR (%)"] == GAP_TOO_SMALL and single["accuracy (%)"] == "61.0 ± 0.0"


def test_generation_protocol_tables_and_curves_from_the_runs_records(tmp_path):
    """table4's few-gold table reads each run's own few-gold test score; the curves flag each
    protocol's point; PGR per seed by hand."""
    import pandas as pd

    from ws2s.tables import write_generation_protocols

    layout = {"weak_models": ["a"], "ensembles": {}, "methods": ["single"], "aux_variants": ["noaux"],
              "aux_methods": [], "format": {"decimals": 1, "ci95": True}, "metric": "slu_f1"}
    weak, strong = [], []
    for seed, (w, c, s, s_few) in enumerate([(0.40, 0.80, 0.50, 0.60), (0.40, 0.60, 0.45, 0.50)]):
        weak.append(_write(tmp_path / f"weak{seed}.json", {"model": "a", "seed": seed, "slu_f1": w}))
        for method, source, last, few in (("ceiling", "gold", c, c), ("single", "a", s, s_few)):
            teachers = [] if method == "ceiling" else ["a"]
            strong.append(_write(tmp_path / f"run-{method}-{seed}.json", {
                "method": method, "source": source, "aux": False, "seed": seed, "members": teachers,
                "slu_f1": last, "slu_f1_nogold": last, "slu_f1_fewgold": few, "fewgold_utterances": 2,
                "point_epochs": [0.5, 1.0], "val_losses": [2.0, 1.0], "selected_epoch": 1.0, "fewgold_epoch": 0.5,
                "fewgold_slu_f1": [0.1, 0.6, 0.4], "teachers": teachers, "teacher_fewgold_slu_f1": [0.3] * len(teachers),
                "teacher_agreement": [[0.5] * len(teachers)] * 3}))
    write_generation_protocols(weak, strong, layout, str(tmp_path / "t4"), "Table 4", tmp_path / "c.parquet",
                               tmp_path / "c.png")
    fewgold = pd.read_csv(tmp_path / "t4_fewgold.csv")
    pgrs = np.array([(0.60 - 0.40) / (0.80 - 0.40), (0.50 - 0.40) / (0.60 - 0.40)]) * 100
    assert fewgold.iloc[1]["PGR (%)"] == f"{pgrs.mean():.1f} ± {pgrs.std(ddof=1):.1f}"
    protocols = pd.read_csv(tmp_path / "t4_protocols.csv")
    assert [c.split(":")[0] for c in protocols.columns[2::3]] == ["paper", "nogold", "fewgold"]
    curves = pd.read_parquet(tmp_path / "c.parquet")
    run = curves[(curves["method"] == "single") & (curves["seed"] == 0)]
    assert run["epochs"].tolist() == [0.0, 0.5, 1.0] and run["fewgold_slu_f1"].tolist() == [0.1, 0.6, 0.4]
    assert run["fewgold"].tolist() == [False, True, False] and run["paper"].tolist() == [False, False, True]
    assert run["nogold"].tolist() == [False, False, True] and (tmp_path / "c.png").stat().st_size > 0
