"""Each loss against an independent computation (numpy, torch.distributions, closed forms)."""

import math

import numpy as np
import pytest
import torch

from ws2s.objectives import (LossConfig, aux_weight, dirichlet_kl, dirichlet_mean, edl_loss, eqn4_kl, harden,
                             pooled_top_k, soft_cross_entropy, training_summary, weak_ensemble_loss)

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
    got = edl_loss(LOGITS, torch.tensor(onehot), 0.0, LossConfig("edl", activation=activation))  # annealing 0: NLL alone
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=0, atol=1e-6)
    probs = dirichlet_mean(LOGITS, activation).double().numpy()
    np.testing.assert_allclose(probs, alpha / alpha.sum(-1, keepdims=True), atol=1e-6)


def test_kl_term_matches_torch_distributions():
    alpha = torch.rand(5, 4, dtype=torch.float64) * 20 + 0.1
    reference = torch.distributions.kl_divergence(torch.distributions.Dirichlet(alpha),
                                                  torch.distributions.Dirichlet(torch.ones_like(alpha)))
    torch.testing.assert_close(dirichlet_kl(alpha), reference, rtol=0, atol=1e-9)
    # KL to the uniform Dirichlet = −entropy − log Γ(K)... (density of Dir(1) is Γ(K))
    entropy = torch.distributions.Dirichlet(alpha).entropy()
    torch.testing.assert_close(dirichlet_kl(alpha), -entropy - math.lgamma(4), rtol=0, atol=1e-9)
    prior = torch.rand(4, dtype=torch.float64) * 5 + 0.5
    reference = torch.distributions.kl_divergence(torch.distributions.Dirichlet(alpha),
                                                  torch.distributions.Dirichlet(prior.expand_as(alpha)))
    torch.testing.assert_close(dirichlet_kl(alpha, prior), reference, rtol=0, atol=1e-9)


def _kl_uniform(alpha):
    """KL(Dir(α) ‖ Dir(1)) by torch.distributions: the reference the tests compare with."""
    return torch.distributions.kl_divergence(torch.distributions.Dirichlet(alpha),
                                             torch.distributions.Dirichlet(torch.ones_like(alpha)))


def enumerated_eqn4_kl(alpha, p):
    """Eqn 4's KL as the paper writes it: Σ_k p_k KL(Dir(α̃^(k)) ‖ Dir(1)), α̃^(k) = α with α_k = 1,
    one Dirichlet per class, in float64."""
    total = torch.zeros(alpha.shape[0], dtype=torch.float64)
    for k in range(alpha.shape[1]):
        tilde = alpha.clone()
        tilde[:, k] = 1.0
        total = total + p[:, k] * _kl_uniform(tilde)
    return total


def test_authors_soft_label_kl_with_annealing_matches_closed_form():
    """kl_target soft_label (the authors' code): one Dirichlet α̃ = y + (1 − y)·α."""
    y = WEAK[:, 1].double()
    alpha = torch.exp(LOGITS.double()) + 1
    kl = _kl_uniform(y + (1 - y) * alpha)
    nll = (y * (torch.log(alpha.sum(-1, keepdim=True)) - torch.log(alpha))).sum(-1)
    for step_frac, anneal in ((0.25, 0.25), (0.8, 0.8), (1.7, 1.0)):
        expected = nll + 0.3 * anneal * kl
        got = edl_loss(LOGITS, y, step_frac, LossConfig("edl", kl_weight=0.3, kl_target="soft_label")).double()
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("k", [2, 5, 50])
def test_exact_eqn4_equals_the_enumeration_over_classes(k):
    """Eqn 4 as the paper states it, for any soft p, against one KL per class (float64)."""
    gen = torch.Generator().manual_seed(k)
    logits = torch.randn(7, k, generator=gen, dtype=torch.float64) * 3
    p = torch.softmax(torch.randn(7, k, generator=gen, dtype=torch.float64) * 2, dim=-1)
    alpha = torch.exp(logits) + 1
    torch.testing.assert_close(eqn4_kl(alpha, p), enumerated_eqn4_kl(alpha, p), rtol=0, atol=1e-6)
    nll = (p * (torch.log(alpha.sum(-1, keepdim=True)) - torch.log(alpha))).sum(-1)
    for clamp in (None, 0.5):
        cfg = LossConfig("edl", kl_weight=0.7, kl_clamp=clamp)
        kl = 0.6 * enumerated_eqn4_kl(alpha, p)
        expected = nll + 0.7 * (kl if clamp is None else kl.clamp(max=clamp))
        torch.testing.assert_close(edl_loss(logits, p, 0.6, cfg).double(), expected, rtol=0, atol=1e-6)


def test_eqn4_and_the_authors_soft_label_form_differ():
    """The issue's case: for K = 2 the two KL terms differ by up to a factor of three."""
    alpha = torch.tensor([[3.0, 1.5]], dtype=torch.float64)
    p = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    paper = eqn4_kl(alpha, p)
    authors = _kl_uniform(p + (1 - p) * alpha)
    assert not torch.allclose(paper, authors, rtol=0.1)


def test_exact_eqn4_gradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(3)
    for k in (2, 5, 50):
        alpha = (torch.exp(torch.randn(3, k, generator=gen, dtype=torch.float64) * 2) + 1).requires_grad_(True)
        p = torch.softmax(torch.randn(3, k, generator=gen, dtype=torch.float64), dim=-1)
        assert torch.autograd.gradcheck(lambda a: eqn4_kl(a, p), (alpha,), eps=1e-6, atol=1e-5, rtol=1e-4)
    logits = (torch.randn(3, 5, generator=gen, dtype=torch.float64) * 2).requires_grad_(True)
    p = torch.softmax(torch.randn(3, 5, generator=gen, dtype=torch.float64), dim=-1)
    for clamp in (None, 2.0):
        cfg = LossConfig("edl", kl_weight=0.5, kl_clamp=clamp, centre_logits=True)
        assert torch.autograd.gradcheck(lambda z: edl_loss(z, p, 0.9, cfg).double(), (logits,), eps=1e-6,
                                        atol=1e-4, rtol=1e-3)


def test_exact_eqn4_over_a_vocabulary_takes_its_series_where_exact():
    """Over 49k tokens most T_k = Σα − α_k + 1 lie within 1e-4 of Σα and take a Taylor series:
    checked against the closed form of every class a label puts mass on."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 49152, generator=gen, dtype=torch.float64) * 2.5
    logits[:, :4] += 12  # a few tokens hold most of the evidence
    alpha = torch.exp(logits) + 1
    p = torch.zeros_like(alpha)
    columns = torch.cat([torch.arange(4), torch.randint(4, 49152, (12,), generator=gen)])
    p[:, columns] = torch.rand(3, 16, generator=gen, dtype=torch.float64)
    p = p / p.sum(-1, keepdim=True)
    expected = torch.zeros(3, dtype=torch.float64)
    for row in range(3):
        for k in columns.tolist():
            tilde = alpha[row].clone()
            tilde[k] = 1.0
            expected[row] += p[row, k] * dirichlet_kl(tilde[None])[0]
    torch.testing.assert_close(eqn4_kl(alpha, p), expected, rtol=1e-12, atol=0)


def test_pooled_top_k_is_eqn4_on_the_aggregated_dirichlet():
    """Pooling classes of Dir(α) sums their α (the aggregation property): Eqn 4 on the top-k
    tokens and one pooled class equals the enumeration on the pooled Dirichlet, against the
    pooled prior Dir(1, …, 1, K − k); and pooling a single token changes nothing."""
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 30, generator=gen, dtype=torch.float64) * 2
    p = torch.softmax(torch.randn(4, 30, generator=gen, dtype=torch.float64) * 2, dim=-1)
    log_alpha = torch.nn.functional.softplus(logits)
    alpha, probs, prior = pooled_top_k(log_alpha, p, 6)
    assert torch.equal(prior, torch.tensor([1.0] * 6 + [24.0], dtype=torch.float64))
    rows = torch.arange(4)
    assert torch.all(alpha[rows, :6].max(-1).values >= alpha[rows, :6].min(-1).values)
    top = (log_alpha + 1e9 * torch.nn.functional.one_hot(p.argmax(-1), 30)).topk(6).indices
    torch.testing.assert_close(alpha[:, :6], torch.exp(log_alpha).gather(-1, top))
    torch.testing.assert_close(alpha[:, 6], torch.exp(log_alpha).sum(-1) - alpha[:, :6].sum(-1))
    expected = torch.zeros(4, dtype=torch.float64)
    for k in range(7):
        tilde = alpha.clone()
        tilde[:, k] = prior[k]
        expected += probs[:, k] * torch.distributions.kl_divergence(
            torch.distributions.Dirichlet(tilde), torch.distributions.Dirichlet(prior.expand_as(tilde)))
    torch.testing.assert_close(eqn4_kl(alpha, probs, prior), expected, rtol=0, atol=1e-9)
    whole = LossConfig("edl", kl_weight=1.0)
    pooled = LossConfig("edl", kl_weight=1.0, kl_top_k=29)
    torch.testing.assert_close(edl_loss(logits, p, 1.0, pooled), edl_loss(logits, p, 1.0, whole), rtol=1e-6, atol=0)


@pytest.mark.parametrize("cfg", [LossConfig("edl", centre_logits=True, kl_weight=1e-3),
                                 LossConfig("edl", centre_logits=True, kl_weight=1e-3, kl_top_k=8),
                                 LossConfig("edl", centre_logits=True, kl_weight=1e-3, kl_target="soft_label")])
def test_centred_evidence_ignores_a_constant_shift_of_the_logits(cfg):
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(5, 300, generator=gen) * 3
    p = torch.softmax(torch.randn(5, 300, generator=gen) * 3, dim=-1)
    base = edl_loss(logits, p, 0.8, cfg)
    for shift in (12.5, -40.0):
        torch.testing.assert_close(edl_loss(logits + shift, p, 0.8, cfg), base, rtol=1e-6, atol=0)
    raw = LossConfig("edl", kl_weight=1e-3)
    assert not torch.allclose(edl_loss(logits + 12.5, p, 0.8, raw), edl_loss(logits, p, 0.8, raw), rtol=1e-3)


def test_centred_evidence_is_the_authors_formula_at_mean_zero_logits():
    logits = torch.randn(5, 40) * 2
    logits = logits - logits.mean(-1, keepdim=True)
    p = torch.softmax(torch.randn(5, 40), dim=-1)
    centred = LossConfig("edl", centre_logits=True, kl_weight=0.1)
    torch.testing.assert_close(edl_loss(logits, p, 0.5, centred), edl_loss(logits, p, 0.5, LossConfig("edl", kl_weight=0.1)))


@pytest.mark.parametrize("cfg", [LossConfig("edl", kl_weight=1e-4), LossConfig("edl", kl_weight=1e-4, centre_logits=True),
                                 LossConfig("edl", kl_weight=1e-4, centre_logits=True, kl_top_k=16, kl_clamp=2e5),
                                 LossConfig("edl", kl_weight=1e-4, kl_target="soft_label")])
def test_the_kl_term_stays_finite_over_a_262k_vocabulary(cfg):
    """Logits anywhere in [−100, 100], float32, over Gemma 3's vocabulary: no inf, no NaN."""
    gen = torch.Generator().manual_seed(4)
    logits = ((torch.rand(2, 262144, generator=gen) * 200 - 100)).requires_grad_(True)
    logits.data[0, :3] = 100.0
    logits.data[1, :] = -100.0
    p = torch.softmax(torch.randn(2, 262144, generator=gen) * 5, dim=-1)
    loss = edl_loss(logits, p, 1.0, cfg)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("kind", ["ce", "edl"])
def test_ensemble_weights_each_weak_model(kind):
    """Eqns 2 and 4: the weighted sum over weak models of each one's own loss."""
    weights = torch.tensor([0.2, 0.5, 0.3])
    cfg = LossConfig(kind=kind)
    total, _ = weak_ensemble_loss(LOGITS, WEAK, weights, 0.5, cfg)
    singles = [weak_ensemble_loss(LOGITS, WEAK[:, i:i + 1], torch.ones(1), 0.5, cfg)[0] for i in range(3)]
    assert total.item() == pytest.approx(sum(w * s.item() for w, s in zip(weights.tolist(), singles)), rel=1e-5)


def test_eqn4_weights_classes_by_weak_probabilities():
    """The NLL part weights the per-class terms log α_0 − log α_k by p_k^(i)."""
    p = WEAK[:, 2].double()
    log_alpha = np.log(np.exp(LOGITS.double().numpy()) + 1)
    per_class = np.log(np.exp(log_alpha).sum(-1, keepdims=True)) - log_alpha
    expected = (p.numpy() * per_class).sum(-1)
    got = edl_loss(LOGITS, p, 0.0, LossConfig("edl")).double().numpy()
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
    got, _ = weak_ensemble_loss(LOGITS, WEAK[:, :1], torch.ones(1), 1.0, cfg)
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
    loss, _ = weak_ensemble_loss(logits, weak, torch.ones(1), 1.0, cfg)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("kind", ["ce", "edl"])
def test_one_class_batch_has_a_defined_loss(kind):
    weak = torch.tensor([[[0.1, 0.9]]] * 4)  # every weak label says class 1
    loss, _ = weak_ensemble_loss(torch.randn(4, 2), weak, torch.ones(1), 0.5, LossConfig(kind=kind, aux=True))
    assert torch.isfinite(loss)


def test_targets_carry_no_gradient():
    weak = WEAK.clone().requires_grad_(True)
    logits = LOGITS.clone().requires_grad_(True)
    weak_ensemble_loss(logits, weak, torch.ones(3) / 3, 0.5, LossConfig(kind="edl", aux=True))[0].backward()
    assert weak.grad is None and logits.grad is not None


def test_loss_does_not_depend_on_batch_split():
    cfg = LossConfig(kind="edl")
    whole, _ = weak_ensemble_loss(LOGITS, WEAK, torch.ones(3) / 3, 0.5, cfg)
    halves = [weak_ensemble_loss(LOGITS[i:i + 3], WEAK[i:i + 3], torch.ones(3) / 3, 0.5, cfg)[0] for i in (0, 3)]
    assert whole.item() == pytest.approx(sum(h.item() for h in halves) / 2, rel=1e-6)


def test_edl_nll_in_float32_over_a_vocabulary_matches_the_float64_closed_form():
    # the NLL runs in float32 for float32 logits; −log E[π_y] = log α_0 − log α_y in float64 is the reference
    torch.manual_seed(0)
    logits = torch.randn(6, 49152) * 3 + 12
    y = torch.randint(0, 49152, (6,))
    alpha = torch.exp(logits.double()) + 1
    expected = torch.log(alpha.sum(-1)) - torch.log(alpha[torch.arange(6), y])
    got = edl_loss(logits, torch.nn.functional.one_hot(y, 49152).float(), 0.5, LossConfig("edl", kl_weight=0.0))
    assert got.dtype == torch.float32
    assert torch.allclose(got.double(), expected, atol=1e-5, rtol=0)


def test_training_summary_records_the_kl_weight_against_the_nll():
    stats = [{"mean_logit": 12.0, "nll": 2.0, "kl": 3e4, "log_strength": 20.0},
             {"mean_logit": 14.0, "nll": 4.0, "kl": 5e4, "log_strength": 22.0}]
    summary = training_summary(stats, LossConfig("edl", kl_weight=1e-4))
    assert summary == pytest.approx({"mean_logit": 13.0, "mean_nll": 3.0, "mean_kl": 4e4, "kl_nll_ratio": 4.0 / 3.0,
                                     "mean_log_strength": 21.0})
    assert training_summary(stats, LossConfig("ce")) == {"mean_logit": 13.0}
