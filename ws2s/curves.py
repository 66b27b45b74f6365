"""Training curves of the classification track's strong runs, and four protocols that pick a
point on each curve.

Every strong run writes its curve (`schemas.STRONG_CURVE`): at each evaluation point, from
the start model on, its validation loss against its own targets and its predictions on val
and test. Here each point gets its gold validation accuracy (all of val, and a few-gold
subset), its agreement with each teacher on val, and its test accuracy; then each protocol
picks one training point per run, reading validation columns only (`SELECTION_COLUMNS`):

| protocol | picks                                                  | gold it reads            |
| -------- | ------------------------------------------------------ | ------------------------ |
| paper    | the last point (settings tuned for the ceiling)        | the ceiling's, to tune   |
| nogold   | the lowest validation loss against the run's targets   | none                     |
| fewgold  | the best accuracy on `fewgold_val` gold pairs of val   | a few validation labels  |
| goldfree | the teacher-error crossing (`goldfree_point`)          | none                     |

Few-gold is a Weak-to-Strong upper bound, not a W2S method: Burns et al. (2023) report
ground-truth early stopping the same way. The gold-free rule rests on the triangle
inequality: a student's error is at least its teacher's error minus their disagreement,
err(S) ≥ err(T) − d(S, T). While d ≥ err(T) the bound says nothing and the student may be
right where its teacher is wrong; once d falls below err(T) it must share some of the
teacher's errors: imitation has begun. The rule keeps the last point before the mean over
the run's teachers of d − err(T) first turns negative, err(T) estimated without gold by
Flying Squid's triplet method from every weak model's votes on val (conditionally
independent voters with symmetric errors assumed; `ws2s.label_models`). The ceiling, whose
teacher is gold, keeps its last point under it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ws2s.errors import Ws2sError
from ws2s.label_models import triplet_accuracies
from ws2s.metrics.classification import accuracy, expected_calibration_error

PROTOCOLS = ("paper", "nogold", "fewgold", "goldfree")
# What a protocol may read of a curve: validation only, never a test score.
SELECTION_COLUMNS = ["point", "val_loss", "fewgold_accuracy", "teacher_agreement", "teacher_error"]


def two_class(prob_1: np.ndarray) -> np.ndarray:
    prob_1 = np.asarray(prob_1, dtype=np.float64)
    return np.stack([1.0 - prob_1, prob_1], axis=1)


def teacher_errors(val_votes: pd.DataFrame) -> dict[str, float]:
    """Each weak model's estimated error on val from the votes of all (columns: weak models,
    rows: val pairs, values 0/1), no gold read; NaN for every model with fewer than three."""
    if val_votes.isna().any().any():
        missing = val_votes.columns[val_votes.isna().any()].tolist()
        raise Ws2sError(f"weak labels of {', '.join(missing)} lack some validation pairs the others have; "
                        "rerun those weak models")
    if val_votes.shape[1] < 3:
        return {name: np.nan for name in val_votes.columns}
    return dict(zip(val_votes.columns, 1.0 - triplet_accuracies(val_votes.to_numpy())))


def goldfree_point(disagreement: np.ndarray, error: np.ndarray) -> int:
    """Index of the last training point before the student's disagreement with its teachers
    first falls below their estimated error (module docstring); the first training point
    where it starts below (no protocol picks the start model), the last where it never falls."""
    below = np.asarray(disagreement) < np.asarray(error)
    if not below.any():
        return len(below) - 1
    return max(int(np.argmax(below)) - 1, 0)


def select_point(protocol: str, curve: pd.DataFrame) -> int | None:
    """The point a protocol picks on one run's training points (rows with point ≥ 1), read
    from the validation columns only; None for the gold-free rule where a teacher's error has
    no estimate (fewer than three weak models)."""
    train = curve.loc[curve["point"] > 0, SELECTION_COLUMNS].sort_values("point").reset_index(drop=True)
    if train.empty:
        raise Ws2sError("a curve without training points: the run scored no evaluation point")
    if protocol == "paper":
        index = len(train) - 1
    elif protocol == "nogold":
        index = int(np.nanargmin(train["val_loss"].to_numpy(dtype=np.float64)))
    elif protocol == "fewgold":
        index = int(np.nanargmax(train["fewgold_accuracy"].to_numpy(dtype=np.float64)))
    elif protocol == "goldfree":
        errors = np.array([np.mean(e) if len(e) else 0.0 for e in train["teacher_error"]])
        if np.isnan(errors).any():
            return None
        if not len(train["teacher_error"].iloc[0]):  # the ceiling: its teacher is gold
            index = len(train) - 1
        else:
            index = goldfree_point(1.0 - np.array([np.mean(a) for a in train["teacher_agreement"]]), errors)
    else:
        raise Ws2sError(f"protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return int(train["point"].iloc[index])


def score_run(curve: pd.DataFrame, gold_val: pd.Series, gold_test: pd.Series, fewgold: np.ndarray,
              teacher_preds: dict[str, pd.Series], errors: dict[str, float], where: str) -> pd.DataFrame:
    """One run's curve, a row per point: gold validation and few-gold accuracy, agreement with
    each teacher (`teacher_preds`: its val predictions by id), their estimated errors, test
    accuracy. Series are indexed by example id."""
    rows = []
    for point, part in curve.groupby("point", sort=True):
        val = part[part["split"] == "val"].set_index("id")["prob_1"]
        test = part[part["split"] == "test"].set_index("id")["prob_1"]
        missing = val.index.symmetric_difference(gold_val.index).union(test.index.difference(gold_test.index))
        if len(missing):
            raise Ws2sError(f"{where}: ids {list(missing[:3])} are in the run's curve or the gold validation labels "
                            "but not both; the run and the splits disagree")
        predicted = two_class(val.to_numpy()).argmax(axis=1)
        rows.append({
            "point": int(point), "epochs": float(part["epochs"].iloc[0]), "val_loss": float(part["val_loss"].iloc[0]),
            "val_accuracy": accuracy(two_class(val.to_numpy()), gold_val[val.index].to_numpy()),
            "fewgold_accuracy": accuracy(two_class(val[fewgold].to_numpy()), gold_val[fewgold].to_numpy()),
            "members": list(teacher_preds),
            "teacher_agreement": [float((predicted == preds[val.index].to_numpy()).mean())
                                  for preds in teacher_preds.values()],
            "teacher_error": [float(errors[name]) for name in teacher_preds],
            "test_accuracy": accuracy(two_class(test.to_numpy()), gold_test[test.index].to_numpy()),
        })
    return pd.DataFrame(rows)


def picks(scored: pd.DataFrame) -> dict[str, int | None]:
    """Each protocol's point on one scored run."""
    return {protocol: select_point(protocol, scored) for protocol in PROTOCOLS}


def picked_scores(curves: pd.DataFrame, protocol: str) -> dict[tuple[str, str, str, int], float]:
    """Each run's test accuracy at `protocol`'s pick, from a curves file (schemas.CURVES), by
    (method, source, aux, seed); a run the protocol made no pick on is left out."""
    picked = curves[curves[protocol]]
    return {(m, s, a, int(seed)): float(acc) for m, s, a, seed, acc in
            picked[["method", "source", "aux", "seed", "test_accuracy"]].itertuples(index=False)}


def test_scores(curve: pd.DataFrame, point: int, gold_test: pd.Series) -> tuple[float, float]:
    """Test accuracy and ECE of one run at one point."""
    test = curve[(curve["point"] == point) & (curve["split"] == "test")]
    probs, labels = two_class(test["prob_1"].to_numpy()), gold_test[test["id"]].to_numpy()
    return accuracy(probs, labels), expected_calibration_error(probs, labels)


def generation_curves(strong_runs: list[dict]) -> pd.DataFrame:
    """The generation track's runs point by point (schemas.GENERATION_CURVES) from their
    metrics.json: each run picked its no-gold and few-gold points itself, the paper's
    protocol keeps the last."""
    rows = []
    for run in strong_runs:
        progress, losses = [0.0, *run["point_epochs"]], [math.nan, *run["val_losses"]]
        last = len(progress) - 1
        picked = {"paper": progress[last], "nogold": run["selected_epoch"], "fewgold": run["fewgold_epoch"]}
        for point, (epochs, loss, score, agreement) in enumerate(zip(progress, losses, run["fewgold_slu_f1"],
                                                                     run["teacher_agreement"], strict=True)):
            rows.append({"method": run["method"], "source": run["source"], "aux": "aux" if run["aux"] else "noaux",
                         "seed": run["seed"], "point": point, "epochs": epochs, "val_loss": loss,
                         "fewgold_slu_f1": score, "members": run["teachers"], "teacher_agreement": agreement,
                         # point 0 is the start model: no protocol picks it
                         **{p: point > 0 and epochs == at for p, at in picked.items()}})
    return pd.DataFrame(rows)
