"""Training curves and the selection protocols (ws2s.curves): each against a closed form or
an independent computation, and selection that reads validation only."""

import numpy as np
import pandas as pd
import pytest

from ws2s.curves import (PROTOCOLS, SELECTION_COLUMNS, goldfree_point, picks, score_run, select_point,
                         teacher_errors)
from ws2s.errors import Ws2sError
from ws2s.frames import fewgold_ids


def test_the_fewgold_subset_is_drawn_per_seed_whatever_the_order_of_val():
    ids = [f"id{i:03d}" for i in range(50)]
    a, b = fewgold_ids(ids, 10, seed=3), fewgold_ids(ids[::-1], 10, seed=3)
    assert list(a) == list(b) and len(set(a)) == 10 and set(a) <= set(ids)
    assert set(fewgold_ids(ids, 10, seed=4)) != set(a)
    with pytest.raises(Ws2sError, match=r"classification.fewgold_val: 51 asked for, the validation split has 50"):
        fewgold_ids(ids, 51, seed=0)
    with pytest.raises(Ws2sError, match=r"generation.fewgold_val: 51 asked for"):
        fewgold_ids(ids, 51, seed=0, key="generation.fewgold_val")


def test_teacher_errors_recover_known_accuracies_without_gold():
    """Conditionally independent voters with symmetric errors on balanced labels: the triplet
    estimate of each voter's error is its true error rate."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 40000)
    errors = {"a": 0.1, "b": 0.25, "c": 0.35, "d": 0.2}
    votes = pd.DataFrame({name: np.where(rng.random(len(truth)) < e, 1 - truth, truth) for name, e in errors.items()})
    estimated = teacher_errors(votes)
    for name, error in errors.items():
        assert estimated[name] == pytest.approx(error, abs=0.015)
    assert all(np.isnan(v) for v in teacher_errors(votes[["a", "b"]]).values())  # two voters: no estimate


@pytest.mark.parametrize("disagreement,error,expected", [
    ([0.40, 0.30, 0.20, 0.10], [0.25] * 4, 1),   # first below at 2: keep the point before
    ([0.40, 0.35, 0.30, 0.28], [0.25] * 4, 3),   # never below: the last
    ([0.10, 0.05, 0.02, 0.01], [0.25] * 4, 0),   # below from the start: the first
    ([0.40, 0.20, 0.40, 0.10], [0.25] * 4, 0),   # the first crossing counts, not a later recovery
])
def test_the_goldfree_rule_keeps_the_last_point_before_the_crossing(disagreement, error, expected):
    assert goldfree_point(np.array(disagreement), np.array(error)) == expected


def _curve(rng, points=6, members=("w0", "w1")):
    return pd.DataFrame({
        "point": np.arange(points), "val_loss": rng.random(points), "fewgold_accuracy": rng.random(points),
        "teacher_agreement": [list(rng.random(len(members))) for _ in range(points)],
        "teacher_error": [[0.3] * len(members) for _ in range(points)],
        "val_accuracy": rng.random(points), "test_accuracy": rng.random(points)})


def test_each_protocol_picks_by_its_validation_column_among_training_points():
    rng = np.random.default_rng(1)
    curve = _curve(rng)
    curve.loc[0, ["val_loss", "fewgold_accuracy"]] = [-1.0, 2.0]  # the start model is never picked
    train = curve[curve["point"] > 0]
    assert select_point("paper", curve) == 5
    assert select_point("nogold", curve) == int(train["point"].iloc[train["val_loss"].argmin()])
    assert select_point("fewgold", curve) == int(train["point"].iloc[train["fewgold_accuracy"].argmax()])
    agreement = [0.5, 0.6, 0.65, 0.8, 0.9]  # disagreement 0.5, 0.4, 0.35, 0.2, 0.1 against error 0.3
    curve.loc[1:, "teacher_agreement"] = pd.Series([[a, a] for a in agreement], index=range(1, 6))
    assert select_point("goldfree", curve) == 3
    curve["teacher_error"] = [[np.nan, 0.3]] * 6
    assert select_point("goldfree", curve) is None  # no estimate: no pick, never a silent fallback


def test_selection_reads_validation_only():
    """Every protocol's pick is the same with the test scores scrambled, and from the
    validation columns alone; no selection column is a test score."""
    assert not any(column.startswith("test") for column in SELECTION_COLUMNS)
    rng = np.random.default_rng(2)
    for _ in range(20):
        curve = _curve(rng)
        chosen = picks(curve)
        scrambled = curve.assign(test_accuracy=rng.permutation(curve["test_accuracy"].to_numpy()))
        assert picks(scrambled) == chosen
        assert picks(curve[SELECTION_COLUMNS]) == chosen
        assert set(chosen) == set(PROTOCOLS)


def test_score_run_against_an_independent_count():
    val_ids, test_ids = ["v0", "v1", "v2", "v3"], ["t0", "t1"]
    gold_val = pd.Series([1, 0, 1, 0], index=val_ids)
    gold_test = pd.Series([1, 1], index=test_ids)
    rows = []
    for point, (val_p, test_p) in enumerate([([0.9, 0.8, 0.2, 0.1], [0.7, 0.2]), ([0.9, 0.1, 0.9, 0.1], [0.8, 0.9])]):
        rows += [{"point": point, "epochs": float(point), "val_loss": 1.0 / (point + 1), "split": "val", "id": i,
                  "prob_1": p} for i, p in zip(val_ids, val_p)]
        rows += [{"point": point, "epochs": float(point), "val_loss": 1.0 / (point + 1), "split": "test", "id": i,
                  "prob_1": p} for i, p in zip(test_ids, test_p)]
    curve = pd.DataFrame(rows).sample(frac=1, random_state=0)  # any row order
    teacher = pd.Series([1, 1, 0, 0], index=val_ids)
    scored = score_run(curve, gold_val, gold_test, np.array(["v0", "v1"]), {"w": teacher}, {"w": 0.25}, "run")
    # point 0 predicts 1,1,0,0: gold accuracy 2/4, few-gold (v0, v1) 1/2, agrees with the teacher 4/4, test 1/2
    # point 1 predicts 1,0,1,0: gold accuracy 4/4, few-gold 2/2, agrees with the teacher 2/4, test 2/2
    assert scored["val_accuracy"].tolist() == [0.5, 1.0]
    assert scored["fewgold_accuracy"].tolist() == [0.5, 1.0]
    assert scored["teacher_agreement"].tolist() == [[1.0], [0.5]]
    assert scored["teacher_error"].tolist() == [[0.25], [0.25]]
    assert scored["test_accuracy"].tolist() == [0.5, 1.0]
    with pytest.raises(Ws2sError, match="run: ids .* are in the run.s curve or the gold validation labels but not both"):
        score_run(curve, gold_val.drop("v3"), gold_test, np.array(["v0"]), {}, {}, "run")


def test_missing_votes_and_unsorted_curves_are_caught():
    votes = pd.DataFrame({"a": [1, 0, 1], "b": [1, 1, np.nan], "c": [0, 0, 1]})
    with pytest.raises(Ws2sError, match="weak labels of b lack some validation pairs"):
        teacher_errors(votes)
    rng = np.random.default_rng(3)
    curve = _curve(rng)
    assert picks(curve.sample(frac=1, random_state=1)) == picks(curve)  # row order does not matter


def test_the_generation_fewgold_file_is_the_seeds_draw_of_val_with_its_targets(tmp_path):
    import pandas as pd

    from ws2s import schemas
    from ws2s.config import FewgoldConfig
    from ws2s.io import write_parquet
    from ws2s.stages.generation_splits import write_fewgold

    gold = pd.DataFrame({"id": [f"u{i}" for i in range(10)], "target": [f"t{i}" for i in range(10)],
                         "gold_entities": [f"[{i}]" for i in range(10)]})
    write_parquet(gold, tmp_path / "val_gold.parquet", schemas.GOLD_TARGETS)
    write_fewgold(FewgoldConfig(size=4, seed=3), tmp_path / "val_gold.parquet", tmp_path / "few.parquet")
    few = pd.read_parquet(tmp_path / "few.parquet")
    assert list(few["id"]) == list(fewgold_ids(gold["id"], 4, seed=3))
    assert (few["target"] == few["id"].str.replace("u", "t")).all()
    with pytest.raises(Ws2sError, match="generation.fewgold_val: 11 asked for"):
        write_fewgold(FewgoldConfig(size=11, seed=3), tmp_path / "val_gold.parquet", tmp_path / "more.parquet")
    assert not (tmp_path / "more.parquet").exists()
