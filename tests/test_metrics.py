import math

import numpy as np
import pytest

from ws2s.metrics import accuracy, multi_weak_pgr, pgr


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
