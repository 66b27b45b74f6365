import math

import numpy as np
import pytest

from ws2s.metrics.classification import accuracy, expected_calibration_error, reliability_bins
from ws2s.objectives import multi_weak_pgr, pgr


def test_pgr_closed_form():
    assert pgr(0.7, 0.6, 0.8) == pytest.approx(0.5)
    assert pgr(0.6, 0.6, 0.8) == 0.0
    assert pgr(0.85, 0.6, 0.8) == pytest.approx(1.25)  # beyond the ceiling
    assert pgr(0.5, 0.6, 0.8) == pytest.approx(-0.5)


def test_pgr_degenerate_gap_is_undefined_not_an_error():
    assert math.isnan(pgr(0.7, 0.8, 0.8))          # P_s = P_w
    assert math.isnan(pgr(0.7, 0.8, 0.6))          # weak above the ceiling
    assert math.isnan(pgr(0.7, 0.60, 0.615))       # gap under 2 points
    assert not math.isnan(pgr(0.7, 0.60, 0.62))


def test_multi_weak_pgr_is_mean_over_weak_models():
    assert multi_weak_pgr(0.7, [0.6, 0.5], 0.8) == pytest.approx((0.5 + 2 / 3) / 2)
    assert math.isnan(multi_weak_pgr(0.7, [0.6, 0.8], 0.8))


def test_accuracy():
    assert accuracy(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), np.array([0, 1, 1])) == pytest.approx(2 / 3)


def test_ece_against_a_hand_computed_example():
    """Four predictions, 15 bins of width 1/15: confidences 0.9 (right), 0.6 (wrong), 0.8 (right)
    and 0.7 (right) each fall in a bin of their own, so ECE = (0.1 + 0.6 + 0.2 + 0.3) / 4."""
    probs = np.array([[0.1, 0.9], [0.4, 0.6], [0.8, 0.2], [0.3, 0.7]])
    labels = np.array([1, 0, 0, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.3, abs=1e-6)
    # two in one bin: |mean accuracy − mean confidence| weighted by the bin's share
    probs = np.array([[0.05, 0.95], [0.04, 0.96], [0.5, 0.5], [0.45, 0.55]])
    labels = np.array([1, 0, 0, 1])
    # bin 14: confidences 0.95 (right) and 0.96 (wrong) -> 2/4·|0.5 − 0.955|; bin 7: 0.5 (argmax 0,
    # right) -> 1/4·|1 − 0.5|; bin 8: 0.55 (right) -> 1/4·|1 − 0.55|
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.455 + 0.25 * 0.5 + 0.25 * 0.45, abs=1e-6)


def test_reliability_bins_count_every_prediction():
    probs = np.array([[0.1, 0.9], [0.4, 0.6], [0.8, 0.2], [0.3, 0.7], [0.05, 0.95]])
    labels = np.array([1, 0, 0, 1, 0])
    bins = reliability_bins(probs, labels)
    assert sum(count for *_, count in bins) == 5
    top = [b for b in bins if b[0] == 13 / 15][0]
    assert top[1] == pytest.approx(0.9) and top[2] == 1.0
