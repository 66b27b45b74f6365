import numpy as np
import pytest

from ws2s.errors import Ws2sError
from ws2s.labelmodel import flying_squid_soft_labels, posterior_positive, triplet_accuracies


def synthetic(accuracies, n=20000, positive=0.5, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positive).astype(int)
    correct = rng.random((n, len(accuracies))) < np.array(accuracies)
    votes = np.where(correct, y[:, None], 1 - y[:, None])
    return y, votes


@pytest.mark.parametrize("accuracies", [[0.9, 0.75, 0.65], [0.85, 0.6, 0.7, 0.8, 0.55]])
def test_recovers_known_accuracies_within_0_02(accuracies):
    _, votes = synthetic(accuracies)
    np.testing.assert_allclose(triplet_accuracies(votes), accuracies, atol=0.02)


def test_posterior_is_naive_bayes():
    votes = np.array([[1, 1, 0]])
    acc = np.array([0.9, 0.7, 0.6])
    # P(Y=1|v) ∝ 0.5·0.9·0.7·0.4, P(Y=0|v) ∝ 0.5·0.1·0.3·0.6
    expected = 0.9 * 0.7 * 0.4 / (0.9 * 0.7 * 0.4 + 0.1 * 0.3 * 0.6)
    assert posterior_positive(votes, acc, 0.5)[0] == pytest.approx(expected)


def test_soft_labels_beat_majority_vote_with_one_strong_voter():
    y, votes = synthetic([0.95, 0.6, 0.6, 0.6])
    soft = flying_squid_soft_labels(votes)
    assert np.allclose(soft.sum(1), 1)
    label_model_acc = (soft.argmax(1) == y).mean()
    majority_acc = ((votes.mean(1) > 0.5).astype(int) == y).mean()
    assert label_model_acc > majority_acc + 0.05


def test_needs_three_voters():
    with pytest.raises(Ws2sError, match="three or more"):
        triplet_accuracies(np.zeros((10, 2)))
