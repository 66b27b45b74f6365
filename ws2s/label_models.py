"""Label models: soft labels for the strong model from the weak models' hard votes.

Each is a Multi-Weak baseline (its posterior, then cross-entropy, with or without aux),
keyed by the method name the config uses:

| method        | label model                                              | from              |
| ------------- | -------------------------------------------------------- | ----------------- |
| majorityvote  | the share of votes for each class                        | crowd-kit 1.4.2   |
| dawidskene    | Dawid and Skene (1979), EM over per-worker confusions     | crowd-kit         |
| glad          | GLAD (Whitehill et al. 2009), worker skill × item ease    | crowd-kit         |
| mace          | MACE (Hovy et al. 2013), spamming workers                 | crowd-kit         |
| snorkel       | Snorkel's LabelModel (Ratner et al. 2019)                | snorkel 0.10.0    |
| flyingsquid   | Flying Squid's triplet method (Fu et al. 2020)           | written here      |

The `flyingsquid` package (0.0.0a0) imports pgmpy's removed `MarkovModel` and needs
numpy<2, so its estimator is written here. With votes λ_i ∈ {−1, +1}, a latent label
Y ∈ {−1, +1} and votes conditionally independent given Y, E[λ_i λ_j] = a_i a_j where
a_i = E[λ_i Y]. For any triplet (i, j, k): |a_i| = sqrt(|M_ij M_ik / M_jk|). Each a_i is
the mean over the triplets that contain i, weighted by |M_jk| (a small denominator makes
a noisy ratio), its sign taken positive (every weak model is assumed better than chance,
as Flying Squid does). The posterior is naive Bayes with P(λ_i = Y) = (1 + a_i) / 2 and
the class balance p = P(Y = 1) as prior: from the config, or estimated from the votes and
the accuracies, E[vote_i] = p·acc_i + (1 − p)(1 − acc_i) (the mean vote alone is biased
toward 1/2 whenever the voters err).
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable, NamedTuple

import numpy as np

from ws2s.errors import Ws2sError

_EPS = 1e-6


def triplet_accuracies(votes: np.ndarray) -> np.ndarray:
    """Estimated P(λ_i = Y) of each of the N ≥ 3 voters, from `votes` [B, N] in {0, 1}."""
    if votes.ndim != 2 or votes.shape[1] < 3:
        raise Ws2sError(f"Flying Squid needs three or more weak models; got {votes.shape[-1]}")
    signed = 2.0 * votes - 1.0
    second_moments = signed.T @ signed / len(signed)
    n = signed.shape[1]
    total, weight = np.zeros(n), np.zeros(n)
    for i, j, k in combinations(range(n), 3):
        for a, b, c in ((i, j, k), (j, i, k), (k, i, j)):
            denominator = abs(second_moments[b, c])
            if denominator > _EPS:
                total[a] += np.sqrt(abs(second_moments[a, b] * second_moments[a, c])) * np.sqrt(denominator)
                weight[a] += denominator
    a_hat = np.divide(total, weight, out=np.zeros(n), where=weight > 0)
    return np.clip((1.0 + a_hat) / 2.0, 0.5 + _EPS, 1.0 - _EPS)


def posterior_positive(votes: np.ndarray, accuracies: np.ndarray, prior_positive: float) -> np.ndarray:
    """P(Y = 1 | votes) [B] under conditional independence with symmetric accuracies."""
    log_odds_vote = np.log(accuracies) - np.log1p(-accuracies)
    prior = np.clip(prior_positive, _EPS, 1 - _EPS)
    log_odds = np.log(prior) - np.log1p(-prior) + ((2.0 * votes - 1.0) * log_odds_vote).sum(axis=1)
    return 1.0 / (1.0 + np.exp(-log_odds))


def class_balance(votes: np.ndarray, accuracies: np.ndarray) -> float:
    """P(Y = 1) from each voter's mean vote and accuracy, E[vote_i] = p·acc_i + (1 − p)(1 − acc_i),
    solved per voter and averaged with weights (2·acc_i − 1)² (a voter near chance says little)."""
    slope = 2.0 * accuracies - 1.0
    per_voter = (votes.mean(axis=0) - 1.0 + accuracies) / slope
    return float(np.clip((slope ** 2 * per_voter).sum() / (slope ** 2).sum(), _EPS, 1 - _EPS))


def flying_squid(votes: np.ndarray, prior_positive: float | None = None, seed: int = 0) -> np.ndarray:
    """Soft labels [B, 2] from hard votes [B, N] of N ≥ 3 binary weak models."""
    accuracies = triplet_accuracies(votes)
    prior = class_balance(votes, accuracies) if prior_positive is None else prior_positive
    p1 = posterior_positive(votes, accuracies, prior)
    return np.stack([1.0 - p1, p1], axis=1)


def _crowd_kit(model_name: str, **options):
    """A crowd-kit aggregator as a label model: votes become (task, worker, label) rows."""
    def soft_labels(votes: np.ndarray, prior_positive: float | None = None, seed: int = 0) -> np.ndarray:
        import crowdkit.aggregation
        import pandas as pd

        model_class = getattr(crowdkit.aggregation, model_name)
        tasks, workers = np.meshgrid(np.arange(votes.shape[0]), np.arange(votes.shape[1]), indexing="ij")
        rows = pd.DataFrame({"task": tasks.ravel(), "worker": workers.ravel(), "label": votes.ravel().astype(int)})
        # the run's seed for a model that draws at random; the registry's options stay as written
        seeded = {**options, "random_state": seed} if "random_state" in options else options
        probs = model_class(**seeded).fit_predict_proba(rows)
        return probs.reindex(index=np.arange(votes.shape[0]), columns=[0, 1]).fillna(0.0).to_numpy(dtype=np.float64)
    return soft_labels


def snorkel(votes: np.ndarray, prior_positive: float | None = None, seed: int = 0) -> np.ndarray:
    """Snorkel's LabelModel (matrix completion over the votes' agreements), its default fit."""
    from snorkel.labeling.model import LabelModel

    model = LabelModel(cardinality=2, verbose=False)
    balance = None if prior_positive is None else [1.0 - prior_positive, prior_positive]
    model.fit(votes.astype(int), class_balance=balance, seed=seed, progress_bar=False)
    return model.predict_proba(votes.astype(int)).astype(np.float64)


class LabelModel(NamedTuple):
    label: str  # in tables
    soft_labels: Callable[..., np.ndarray]  # (votes, prior_positive, seed) -> P(class) [B, 2]
    min_members: int = 2  # the votes it needs per example


# The label-model registry. crowd-kit and Snorkel are imported when a model runs, not when
# the registry is read. Flying Squid's triplets, and Snorkel's matrix completion, need three voters.
LABEL_MODELS = {
    "majorityvote": LabelModel("Majority vote", _crowd_kit("MajorityVote")),
    "dawidskene": LabelModel("Dawid-Skene", _crowd_kit("DawidSkene", n_iter=100)),
    "glad": LabelModel("GLAD", _crowd_kit("GLAD", n_iter=100)),
    "mace": LabelModel("MACE", _crowd_kit("MACE", n_iter=100, random_state=0)),
    "snorkel": LabelModel("Snorkel LabelModel", snorkel, min_members=3),
    "flyingsquid": LabelModel("Flying Squid", flying_squid, min_members=3),
}


def soft_labels(method: str, votes: np.ndarray, prior_positive: float | None = None, seed: int = 0) -> np.ndarray:
    """P(class) [B, 2] of label model `method` from hard votes [B, N] in {0, 1}."""
    return LABEL_MODELS[method].soft_labels(votes, prior_positive, seed)
