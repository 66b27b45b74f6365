"""Each loss against an independent computation (numpy, torch.distributions, closed forms)."""

import math

import numpy as np
import pytest
import torch

from ws2s.losses import (LossConfig, aux_weight, dirichlet_mean, edl_loss, harden,
                         kl_to_uniform_dirichlet, soft_cross_entropy, weak_ensemble_loss)

torch.manual_seed(0)
LOGITS = torch.randn(6, 2) * 3
WEAK = torch.softmax(torch.randn(6, 3, 2), dim=-1)  # 3 weak models' soft labels


def np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_soft_cross_entropy_matches_numpy():
    y = WEAK[:, 0].numpy().astype(np.float64)
    expected = -(y * np.log(np_softmax(LOGITS.numpy().astype(np.float64)))).sum(-1)
    np.testing.assert_allclose(soft_cross_entropy(LOGITS, WEAK[:, 0]).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("activation,evidence", [
    ("exp", np.exp), ("softplus", lambda z: np.log1p(np.exp(z))), ("relu", lambda z: np.maximum(z, 0))])
def test_edl_nll_is_minus_log_expected_probability(activation, evidence):
    z = LOGITS.double().numpy()
    alpha = evidence(z) + 1
    onehot = np.eye(2)[[0, 1, 1, 0, 1, 0]]
    expected = -np.log((alpha * onehot).sum(-1) / alpha.sum(-1))  # −log E_Dir(α)[π_y]
    got = edl_loss(LOGITS, torch.tensor(onehot), 0.0, activation, kl_weight=1.0)  # annealing 0: NLL alone
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=0, atol=1e-6)
    probs = dirichlet_mean(LOGITS, activation).double().numpy()
    np.testing.assert_allclose(probs, alpha / alpha.sum(-1, keepdims=True), atol=1e-6)


def test_kl_term_matches_torch_distributions():
    alpha = torch.rand(5, 4, dtype=torch.float64) * 20 + 0.1
    reference = torch.distributions.kl_divergence(torch.distributions.Dirichlet(alpha),
                                                  torch.distributions.Dirichlet(torch.ones_like(alpha)))
    torch.testing.assert_close(kl_to_uniform_dirichlet(alpha), reference, rtol=0, atol=1e-9)
    # KL to the uniform Dirichlet = −entropy − log Γ(K)... (density of Dir(1) is Γ(K))
    entropy = torch.distributions.Dirichlet(alpha).entropy()
    torch.testing.assert_close(kl_to_uniform_dirichlet(alpha), -entropy - math.lgamma(4), rtol=0, atol=1e-9)


def test_edl_loss_with_annealed_kl_matches_closed_form():
    y = WEAK[:, 1].double()
    alpha = torch.exp(LOGITS.double()) + 1
    alpha_tilde = y + (1 - y) * alpha
    kl = torch.distributions.kl_divergence(torch.distributions.Dirichlet(alpha_tilde),
                                           torch.distributions.Dirichlet(torch.ones_like(alpha_tilde)))
    nll = (y * (torch.log(alpha.sum(-1, keepdim=True)) - torch.log(alpha))).sum(-1)
    for step_frac, anneal in ((0.25, 0.25), (0.8, 0.8), (1.7, 1.0)):
        expected = nll + 0.3 * anneal * kl
        got = edl_loss(LOGITS, y, step_frac, "exp", kl_weight=0.3).double()
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["ce", "edl"])
def test_ensemble_weights_each_weak_model(kind):
    """Eqns 2 and 4: the weighted sum over weak models of each one's own loss."""
    weights = torch.tensor([0.2, 0.5, 0.3])
    cfg = LossConfig(kind=kind)
    total = weak_ensemble_loss(LOGITS, WEAK, weights, 0.5, cfg)
    singles = [weak_ensemble_loss(LOGITS, WEAK[:, i:i + 1], torch.ones(1), 0.5, cfg) for i in range(3)]
    assert total.item() == pytest.approx(sum(w * s.item() for w, s in zip(weights.tolist(), singles)), rel=1e-5)


def test_eqn4_weights_classes_by_weak_probabilities():
    """The NLL part weights the per-class terms log α_0 − log α_k by p_k^(i)."""
    p = WEAK[:, 2].double()
    log_alpha = np.log(np.exp(LOGITS.double().numpy()) + 1)
    per_class = np.log(np.exp(log_alpha).sum(-1, keepdims=True)) - log_alpha
    expected = (p.numpy() * per_class).sum(-1)
    got = edl_loss(LOGITS, p, 0.0, "exp", 1.0).double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_aux_warmup_ramps_continuously():
    assert aux_weight(0.0, 0.5, 0.2) == 0.0
    assert aux_weight(0.1, 0.5, 0.2) == pytest.approx(0.25)
    assert aux_weight(0.2, 0.5, 0.2) == pytest.approx(0.5)
    assert aux_weight(0.9, 0.5, 0.2) == pytest.approx(0.5)
    steps = np.linspace(0, 1, 1001)
    values = np.array([aux_weight(s, 0.5, 0.2) for s in steps])
    assert np.abs(np.diff(values)).max() <= 0.5 / 200 + 1e-12  # no jump at the end of warm-up
    assert aux_weight(0.3, 0.5, 0.0) == 0.5


def test_aux_term_mixes_own_hardened_prediction():
    cfg = LossConfig(kind="ce", aux=True, gamma_max=0.4, warmup_frac=0.5)
    got = weak_ensemble_loss(LOGITS, WEAK[:, :1], torch.ones(1), 1.0, cfg)
    probs = torch.softmax(LOGITS, -1)
    rate = WEAK[:, 0, 1].mean()
    hard = harden(probs, rate)
    expected = (0.6 * soft_cross_entropy(LOGITS, WEAK[:, 0]) + 0.4 * soft_cross_entropy(LOGITS, hard)).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_harden_keeps_weak_class_balance():
    probs = torch.softmax(torch.randn(100, 2), -1)
    hard = harden(probs, 0.3)
    assert hard.sum(0)[1].item() == pytest.approx(30, abs=1)
    positive = hard[:, 1].bool()
    assert probs[positive, 1].min() >= probs[~positive, 1].max()  # the most confident go positive
    assert torch.equal(harden(probs, None).argmax(-1), probs.argmax(-1))


@pytest.mark.parametrize("kind,activation", [("ce", "exp"), ("edl", "exp"), ("edl", "softplus"), ("edl", "relu")])
def test_finite_gradients_for_extreme_logits(kind, activation):
    logits = torch.tensor([[50.0, -50.0], [-50.0, 50.0], [50.0, 50.0], [-50.0, -50.0]], requires_grad=True)
    weak = torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]], [[0.5, 0.5]], [[0.9, 0.1]]])
    cfg = LossConfig(kind=kind, aux=True, activation=activation, warmup_frac=0.1)
    loss = weak_ensemble_loss(logits, weak, torch.ones(1), 1.0, cfg)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("kind", ["ce", "edl"])
def test_one_class_batch_has_a_defined_loss(kind):
    weak = torch.tensor([[[0.1, 0.9]]] * 4)  # every weak label says class 1
    loss = weak_ensemble_loss(torch.randn(4, 2), weak, torch.ones(1), 0.5, LossConfig(kind=kind, aux=True))
    assert torch.isfinite(loss)


def test_targets_carry_no_gradient():
    weak = WEAK.clone().requires_grad_(True)
    logits = LOGITS.clone().requires_grad_(True)
    weak_ensemble_loss(logits, weak, torch.ones(3) / 3, 0.5, LossConfig(kind="edl", aux=True)).backward()
    assert weak.grad is None and logits.grad is not None


def test_loss_does_not_depend_on_batch_split():
    cfg = LossConfig(kind="edl")
    whole = weak_ensemble_loss(LOGITS, WEAK, torch.ones(3) / 3, 0.5, cfg)
    halves = [weak_ensemble_loss(LOGITS[i:i + 3], WEAK[i:i + 3], torch.ones(3) / 3, 0.5, cfg) for i in (0, 3)]
    assert whole.item() == pytest.approx(sum(h.item() for h in halves) / 2, rel=1e-6)


def test_edl_nll_in_float32_over_a_vocabulary_matches_the_float64_closed_form():
    # the NLL runs in float32 for float32 logits; −log E[π_y] = log α_0 − log α_y in float64 is the reference
    torch.manual_seed(0)
    logits = torch.randn(6, 49152) * 3 + 12
    y = torch.randint(0, 49152, (6,))
    alpha = torch.exp(logits.double()) + 1
    expected = torch.log(alpha.sum(-1)) - torch.log(alpha[torch.arange(6), y])
    got = edl_loss(logits, torch.nn.functional.one_hot(y, 49152).float(), 0.5, "exp", 0.0)
    assert got.dtype == torch.float32
    assert torch.allclose(got.double(), expected, atol=1e-5, rtol=0)
