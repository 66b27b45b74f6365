import numpy as np
import pytest

from ws2s.errors import Ws2sError
from ws2s.label_models import (class_balance, flying_squid, posterior_positive, soft_labels,
                               triplet_accuracies)


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
    soft = flying_squid(votes)
    assert np.allclose(soft.sum(1), 1)
    label_model_acc = (soft.argmax(1) == y).mean()
    majority_acc = ((votes.mean(1) > 0.5).astype(int) == y).mean()
    assert label_model_acc > majority_acc + 0.05


def test_needs_three_voters():
    with pytest.raises(Ws2sError, match="three or more"):
        triplet_accuracies(np.zeros((10, 2)))


def test_class_balance_is_estimated_from_votes_and_accuracies():
    """With a skewed class balance the mean vote is biased toward 1/2; the estimate is not, and
    the posterior is then the Bayes-optimal one computed from the true accuracies and balance."""
    accuracies = np.array([0.85, 0.7, 0.65, 0.6])
    y, votes = synthetic(accuracies, n=40000, positive=0.2, seed=1)
    assert abs(votes.mean() - 0.2) > 0.1  # the old prior, the mean vote, is far off
    assert class_balance(votes, triplet_accuracies(votes)) == pytest.approx(0.2, abs=0.02)
    bayes = posterior_positive(votes, accuracies, 0.2)
    np.testing.assert_allclose(flying_squid(votes)[:, 1], bayes, atol=0.03)
    # a balance from the config is taken as given
    np.testing.assert_allclose(flying_squid(votes, 0.5)[:, 1], posterior_positive(votes, triplet_accuracies(votes), 0.5))


# A fixed label matrix: 12 items, 3 voters (the third often wrong).
VOTES = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1], [0, 0, 0], [1, 0, 1], [0, 1, 0],
                  [1, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0], [1, 0, 0], [0, 1, 1]])


@pytest.mark.parametrize("method,model", [("majorityvote", "MajorityVote"), ("dawidskene", "DawidSkene"),
                                          ("glad", "GLAD"), ("mace", "MACE")])
def test_crowd_kit_label_models_are_the_librarys_own_output(method, model):
    import pandas as pd
    from crowdkit import aggregation

    rows = pd.DataFrame([(i, w, int(VOTES[i, w])) for i in range(len(VOTES)) for w in range(3)],
                        columns=["task", "worker", "label"])
    options = {"majorityvote": {}, "dawidskene": {"n_iter": 100}, "glad": {"n_iter": 100},
               "mace": {"n_iter": 100, "random_state": 0}}[method]
    reference = getattr(aggregation, model)(**options).fit_predict_proba(rows)
    got = soft_labels(method, VOTES, seed=0)
    np.testing.assert_allclose(got[:, 1], reference.loc[np.arange(len(VOTES)), 1].to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(got.sum(axis=1), 1.0)


def test_snorkel_label_model_is_the_librarys_own_output():
    from snorkel.labeling.model import LabelModel

    model = LabelModel(cardinality=2, verbose=False)
    model.fit(VOTES, seed=0, progress_bar=False)
    np.testing.assert_allclose(soft_labels("snorkel", VOTES, seed=0), model.predict_proba(VOTES), rtol=1e-9)


def test_every_label_model_beats_a_bad_voter_on_synthetic_votes():
    y, votes = synthetic([0.9, 0.8, 0.55], n=3000)
    for method in ("majorityvote", "dawidskene", "glad", "mace", "snorkel", "flyingsquid"):
        probs = soft_labels(method, votes)
        assert probs.shape == (3000, 2) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
        assert (probs.argmax(axis=1) == y).mean() > 0.8, method
