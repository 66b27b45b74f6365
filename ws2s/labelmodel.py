"""Flying Squid's triplet method (Fu et al., ICML 2020) for binary weak labels.

The `flyingsquid` package (0.0.0a0) imports pgmpy's removed `MarkovModel` and needs
numpy<2, so the estimator is written here. With votes λ_i ∈ {−1, +1}, a latent label
Y ∈ {−1, +1} and votes conditionally independent given Y, E[λ_i λ_j] = a_i a_j where
a_i = E[λ_i Y]. For any triplet (i, j, k): |a_i| = sqrt(|M_ij M_ik / M_jk|). Each a_i is
the mean over the triplets that contain i, weighted by |M_jk| (a small denominator makes
a noisy ratio), its sign taken positive (every weak model is assumed better than chance,
as Flying Squid does). The posterior is naive Bayes with
P(λ_i = Y) = (1 + a_i) / 2 and the class balance of the votes as prior.
"""

from __future__ import annotations

from itertools import combinations

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


def flying_squid_soft_labels(votes: np.ndarray) -> np.ndarray:
    """Soft labels [B, 2] from hard votes [B, N] of N ≥ 3 binary weak models."""
    accuracies = triplet_accuracies(votes)
    p1 = posterior_positive(votes, accuracies, float(votes.mean()))
    return np.stack([1.0 - p1, p1], axis=1)
