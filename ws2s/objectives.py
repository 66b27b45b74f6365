"""The paper's objectives as pure functions: losses, targets, member weights, ensemble
scores, cDPO and PGR. Model code (`ws2s.train`) computes logits and log-probabilities; what
is done with them is here, once for both tracks.

Shapes: `logits` [B, K] (K classes, or a vocabulary at B token positions); `weak_probs`
[B, N, K] (N weak models, or N = 1 for a single soft label such as gold, one weak model or
a label model's posterior); `weights` [N] or [B, N] (the λ_i of Eqns 2, 4 and 11). Every
loss is the mean over the batch, so it is the same function of the data at any batch size.
Targets never carry gradients. Where a config value chooses the formula, the function takes
that value by its config name (`LossConfig.kind`, `soft_labels.kind`, `weighting`, `score`).

| paper                                        | function                                          |
| -------------------------------------------- | ------------------------------------------------- |
| Eqn 1, Eqns 2 and 11 (CE, Σ λ_i CE)          | `soft_cross_entropy`, `member_sum`                |
| Eqn 3 (EDL: Dirichlet NLL + KL)              | `edl_terms`, `edl_loss`                           |
| Eqn 4 (Σ_i λ_i Σ_k p_k^(i) L_EDL)            | `eqn4_kl` (exact, O(K)), `edl_loss`, `member_sum` |
| Eqn 5 (auxiliary confidence term)            | `aux_weight`, `harden`, `aux_targets`             |
| Section 4.1 (KL scale and clamping)          | `LossConfig.kl_weight`, `LossConfig.kl_clamp`     |
| one strong step, either track                | `LOSSES`, `example_loss`, `weak_ensemble_loss`    |
| Stage 3 (soft labels from mapped P(s_i))     | `soft_label_rows`, `soft_targets`                 |
| λ_i per utterance: dynamic (Table 9)         | `utterance_weights`                               |
| Eqn 8 (ensemble score; Joint Decoding, cDPO) | `preference_scores`, `select_pairs`               |
| Eqns 9-10 (cDPO)                             | `cdpo_loss`                                       |
| PGR (Section 5)                              | `pgr`, `multi_weak_pgr`                           |
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ws2s.config import LossConfig
from ws2s.errors import Ws2sError

# ---- the auxiliary confidence term (Burns et al. 2023) ------------------------------


def aux_weight(step_frac: float, gamma_max: float, warmup_frac: float) -> float:
    """γ_t: rises linearly from 0 to γ_max over the first `warmup_frac` of training, then stays.

    openai/weak-to-strong uses γ·step_frac during warm-up and then jumps to γ (from
    0.1·γ at the default warm-up of 0.1); we ramp continuously so the loss has no step.
    """
    if warmup_frac <= 0:
        return gamma_max
    return gamma_max * min(1.0, step_frac / warmup_frac)


def harden(probs: torch.Tensor, positive_rate: torch.Tensor | float | None) -> torch.Tensor:
    """The strong model's own predictions `probs` [B, K] as one-hot targets, detached.

    With `positive_rate` (the weak labels' share of class 1 in the batch), class 1 goes to
    the examples above that quantile of P(class 1), so the hardened labels keep the weak
    labels' class balance, as Burns et al. do; with None, plain argmax (any K).
    """
    probs = probs.detach().float()
    if positive_rate is None:
        return F.one_hot(probs.argmax(dim=-1), probs.shape[-1]).to(probs.dtype)
    rate = torch.as_tensor(positive_rate, dtype=probs.dtype)
    threshold = torch.quantile(probs[:, 0], rate)
    positive = probs[:, 0] < threshold
    return torch.stack([~positive, positive], dim=-1).to(probs.dtype)


# ---- cross-entropy with soft targets (Eqns 1 and 2) ---------------------------------


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example −Σ_k y_k log softmax(z)_k, [B]."""
    return -(targets.detach() * torch.log_softmax(logits.float(), dim=-1)).sum(dim=-1)


# ---- evidential (Dirichlet) loss (Sensoy et al. 2018; Eqns 3-5) ---------------------

EVIDENCE = {
    # log α for each activation, computed stably: α = evidence + 1.
    "exp": F.softplus,  # log(e^z + 1); the authors' code uses exp evidence
    "softplus": lambda z: torch.log(F.softplus(z) + 1.0),
    "relu": lambda z: torch.log(F.relu(z) + 1.0),
}


def dirichlet_log_alpha(logits: torch.Tensor, activation: str, centre: bool = False) -> torch.Tensor:
    """log α of the evidence of `logits`. With `centre`, from z − mean_K z: a softmax ignores a
    constant added to every logit and so must the evidence, or a language model's arbitrary
    logit level (SmolLM2-135M: +12.5 on average over its vocabulary) sets its Dirichlet's
    strength. For logits of mean 0 both are the authors' formula."""
    if centre:
        logits = logits - logits.mean(dim=-1, keepdim=True)
    return EVIDENCE[activation](logits)


def edl_nll(log_alpha: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Σ_k y_k (log α_0 − log α_k), [B]: −log E_Dir(α)[π_y] for a one-hot y; linear in y."""
    log_alpha0 = torch.logsumexp(log_alpha, dim=-1, keepdim=True)
    return (targets.detach() * (log_alpha0 - log_alpha)).sum(dim=-1)


def dirichlet_kl(alpha: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
    """KL(Dir(α) ‖ Dir(β)) in closed form, [B]; β = 1 (the uniform Dirichlet) when None."""
    k = alpha.shape[-1]
    alpha0 = alpha.sum(dim=-1)
    if prior is None:
        log_norm_prior = math.lgamma(k)  # Dir(1, …, 1) has density Γ(K)
        excess = alpha - 1
    else:
        log_norm_prior = torch.lgamma(prior.sum(dim=-1)) - torch.lgamma(prior).sum(dim=-1)
        excess = alpha - prior
    return (torch.lgamma(alpha0) - torch.lgamma(alpha).sum(dim=-1) - log_norm_prior
            + (excess * (torch.digamma(alpha) - torch.digamma(alpha0)[..., None])).sum(dim=-1))


# Where |α_k − β_k| is under this share of Σα, f(Σα − α_k + β_k) is a Taylor series about Σα:
# its third-order term is about |x|^3·Σβ/(3·(Σα)^3) ≤ 1e-12·Σβ/3 (f‴(s) ≈ 2Σβ/s^3), below
# float64's rounding of f ≈ Σα·log Σα. The rest, few, take the special functions.
_TAYLOR_SHARE = 1e-4
# Rows per block of the elementwise work: a block's tensors stay in cache (on 2 cores, 5 times
# faster than whole [B, 49k] tensors, which every operation allocates afresh).
_BLOCK_ELEMENTS = 1 << 17


def _f_shifted(u: torch.Tensor, total_prior: float, x: torch.Tensor, shifted: torch.Tensor):
    """f(u − x) and f'(u − x) for f(s) = log Γ(s) − (s − Σβ) ψ(s), at every element of x [B, K],
    u = Σα per row [B, 1] and Σβ; `shifted` is u − x, computed without cancellation."""
    w = u - total_prior
    psi0, psi1, psi2, psi3 = torch.digamma(u), *(torch.polygamma(n, u) for n in (1, 2, 3))
    f0, f1, f2, f3 = torch.lgamma(u) - w * psi0, -w * psi1, -psi1 - w * psi2, -2 * psi2 - w * psi3
    value = torch.addcmul(f0, x, torch.addcmul(f1, x, f2 / 2, value=-1), value=-1)
    slope = torch.addcmul(f1, x, torch.addcmul(f2, x, f3 / 2, value=-1), value=-1)
    far = (x.abs() > _TAYLOR_SHARE * u).nonzero(as_tuple=True)
    if far[0].numel():
        s = shifted[far]
        shift = s - total_prior
        value[far] = torch.lgamma(s) - shift * torch.digamma(s)
        slope[far] = -shift * torch.polygamma(1, s)
    return value, slope


def _blocks(n_rows: int, n_cols: int):
    step = max(1, _BLOCK_ELEMENTS // max(n_cols, 1))
    return [slice(start, start + step) for start in range(0, n_rows, step)]


class _Eqn4KL(torch.autograd.Function):
    """Σ_k p_k KL(Dir(α̃^(k)) ‖ Dir(β)), α̃^(k) = α with α_k set to β_k, in O(K).

    With g(a; b) = log Γ(a) − (a − b) ψ(a), f(s) = log Γ(s) − (s − Σβ) ψ(s), T_k = Σα − α_k + β_k
    and P = Σ_k p_k:
        L = Σ_k p_k [f(T_k) + g(α_k; β_k) − log Γ(β_k)] − P [Σ_j g(α_j; β_j) + log Γ(Σβ) − Σ_j log Γ(β_j)]
        ∂L/∂α_j = Σ_k p_k f'(T_k) − p_j f'(T_j) + (P − p_j)(α_j − β_j) ψ'(α_j),
    f'(s) = −(s − Σβ) ψ'(s). The gradient is written out so that autograd does not take
    a second derivative of every log Γ and ψ over the vocabulary. `prior` None is β = 1
    (log Γ(1) = 0): the vocabulary-sized case, kept free of [B, K] tensors of ones.
    """

    @staticmethod
    def forward(ctx, alpha, probs, prior):
        k = alpha.shape[-1]
        if prior is None:
            total_prior, log_gamma_prior, constant = float(k), 0.0, math.lgamma(k)
        else:
            log_gamma_prior = torch.lgamma(prior)
            total_prior = float(prior.sum())
            constant = math.lgamma(total_prior) - float(log_gamma_prior.sum())
        kl = torch.empty(alpha.shape[:-1], dtype=alpha.dtype, device=alpha.device)
        f_slope = torch.empty_like(alpha)
        for rows in _blocks(alpha.shape[0], k):
            a, p = alpha[rows], probs[rows]
            x = a - (1.0 if prior is None else prior)
            g = torch.lgamma(a).sub_(torch.digamma(a).mul_(x))
            u = a.sum(dim=-1, keepdim=True)
            # T_k = Σα − α_k + β_k; where α_k holds most of Σα, from the other α directly
            shifted = u - x
            top = a.argmax(dim=-1, keepdim=True)
            others = a.scatter(-1, top, 0.0).sum(dim=-1, keepdim=True)
            shifted.scatter_(-1, top, others + (1.0 if prior is None else prior.expand_as(a).gather(-1, top)))
            value, f_slope[rows] = _f_shifted(u, total_prior, x, shifted)
            mass = p.sum(dim=-1)
            kl[rows] = (torch.linalg.vecdot(p, value.add_(g).sub_(log_gamma_prior))
                        - mass * (g.sum(dim=-1) + constant))
        ctx.save_for_backward(alpha, probs, f_slope, *(() if prior is None else (prior,)))
        return kl

    @staticmethod
    def backward(ctx, grad_kl):
        alpha, probs, f_slope, *prior = ctx.saved_tensors
        grad = torch.empty_like(alpha)
        for rows in _blocks(alpha.shape[0], alpha.shape[-1]):
            a, p = alpha[rows], probs[rows]
            weighted_slope = p * f_slope[rows]
            excess = a - (prior[0] if prior else 1.0)
            block = torch.polygamma(1, a).mul_(excess).mul_(p.sum(dim=-1, keepdim=True) - p)
            block.add_(weighted_slope.sum(dim=-1, keepdim=True)).sub_(weighted_slope)
            grad[rows] = block.mul_(grad_kl[rows, None])
        return grad, None, None


def eqn4_kl(alpha: torch.Tensor, probs: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
    """Eqn 4's KL part, [B]: Σ_k p_k KL(Dir(α̃^(k)) ‖ Dir(β)), where each class's one-hot label
    ŷ^(k) has its own α̃^(k) = α with α_k set to β_k (Sensoy et al.: the target's evidence is
    not penalised); β = 1 when `prior` [K] is None. Exact for any K in O(K) (`_Eqn4KL`)."""
    prior = None if prior is None else prior.to(alpha.dtype)
    return _Eqn4KL.apply(alpha, probs.detach().to(alpha.dtype), prior)


def pooled_top_k(log_alpha: torch.Tensor, probs: torch.Tensor, k: int):
    """The Dirichlet and the labels over k + 1 classes: the k tokens of highest evidence (the
    label's most probable token always among them) and one class pooling the rest. By the
    Dirichlet's aggregation property, pooling classes of Dir(α) gives the Dirichlet of their
    summed α, so Dir(1, …, 1) pools to Dir(1, …, 1, K − k), and Eqn 4 on the pooled classes
    is exact for the pooled distribution at O(k) special functions instead of O(K).
    Returns α [B, k+1] in float64, the pooled labels and the pooled prior."""
    vocab = log_alpha.shape[-1]
    score = log_alpha.detach().clone()
    score.scatter_(-1, probs.argmax(dim=-1, keepdim=True), math.inf)
    top = score.topk(k, dim=-1).indices
    rest = log_alpha.scatter(-1, top, -math.inf)
    log_pooled = torch.cat([log_alpha.gather(-1, top), torch.logsumexp(rest, dim=-1, keepdim=True)], dim=-1)
    probs_top = probs.gather(-1, top)
    probs_pooled = torch.cat([probs_top, (probs.sum(dim=-1, keepdim=True) - probs_top.sum(dim=-1, keepdim=True))
                              .clamp_min(0)], dim=-1)
    prior = torch.ones(k + 1, dtype=torch.float64, device=log_alpha.device)
    prior[-1] = vocab - k
    return torch.exp(log_pooled.double()), probs_pooled.double(), prior


class EdlTerms(NamedTuple):
    nll: torch.Tensor           # [B] −Σ_k y_k log E[π_k]
    kl: torch.Tensor            # [B] the KL term before annealing, clamping and weighting
    log_strength: torch.Tensor  # [B] log S, S = Σ_k α_k


def edl_terms(logits: torch.Tensor, targets: torch.Tensor, cfg: LossConfig, with_kl: bool = True) -> EdlTerms:
    """The NLL (in at least float32: over a 49k vocabulary float64 made it 7 times the cost of
    cross-entropy) and the KL term (in float64: log Γ and ψ of large α cancel catastrophically
    in float32) of `targets` [B, K] (soft: Eqn 4 weights each class's one-hot label by p_k)."""
    dtype = torch.promote_types(logits.dtype, torch.float32)
    log_alpha = dirichlet_log_alpha(logits.to(dtype), cfg.activation, cfg.centre_logits)
    targets = targets.detach().to(dtype)
    nll = edl_nll(log_alpha, targets)
    log_strength = torch.logsumexp(log_alpha.detach(), dim=-1)
    if not with_kl:
        return EdlTerms(nll, torch.zeros_like(nll), log_strength)
    if cfg.kl_top_k and cfg.kl_top_k < logits.shape[-1]:
        alpha, probs, prior = pooled_top_k(log_alpha, targets, cfg.kl_top_k)
    else:
        alpha, probs, prior = torch.exp(log_alpha.double()), targets.double(), None
    if cfg.kl_target == "eqn4":
        kl = eqn4_kl(alpha, probs, prior)
    else:  # the authors' code: one Dirichlet, the soft label's evidence removed
        base = 1.0 if prior is None else prior
        kl = dirichlet_kl(probs * base + (1 - probs) * alpha, prior)
    return EdlTerms(nll, kl, log_strength)


def edl_loss(logits: torch.Tensor, targets: torch.Tensor, step_frac: float, cfg: LossConfig) -> torch.Tensor:
    """Per-example EDL loss, [B]: NLL + λ_EDL · clamp(min(1, progress) · KL, ±c)."""
    return edl_objective(logits, targets, step_frac, cfg)[0]


def edl_objective(logits: torch.Tensor, targets: torch.Tensor, step_frac: float,
                  cfg: LossConfig) -> tuple[torch.Tensor, EdlTerms]:
    """`edl_loss` and the terms it is made of."""
    anneal = min(1.0, max(0.0, step_frac))
    # log Γ and ψ over a vocabulary cost a strong step more than the model: skip them
    # where they count for nothing (the first step; kl_weight 0)
    terms = edl_terms(logits, targets, cfg, with_kl=cfg.kl_weight * anneal > 0)
    kl = anneal * terms.kl
    if cfg.kl_clamp is not None:
        kl = kl.clamp(-cfg.kl_clamp, cfg.kl_clamp)
    return (terms.nll.double() + cfg.kl_weight * kl).to(terms.nll.dtype), terms


def dirichlet_mean(logits: torch.Tensor, activation: str, centre: bool = False) -> torch.Tensor:
    """Predictions of an EDL-trained model: α / α_0."""
    return torch.softmax(dirichlet_log_alpha(logits.float(), activation, centre), dim=-1)


def dirichlet_log_strength(logits: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """log S, S = Σ_k α_k per example, [B]; the vacuity (uncertainty mass) is K / S."""
    return torch.logsumexp(dirichlet_log_alpha(logits.double(), cfg.activation, cfg.centre_logits), dim=-1)


# ---- the strong-stage objective ------------------------------------------------------


def predict(logits: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """Class probabilities of a model trained with `cfg`: softmax, or α/α_0 after EDL."""
    return LOSSES[cfg.kind].predict(logits, cfg)


def aux_targets(logits: torch.Tensor, targets: torch.Tensor, step_frac: float, cfg: LossConfig,
                positive_rate: torch.Tensor | float | None = None) -> torch.Tensor:
    """Eqn 5's targets, (1 − γ_t)·y + γ_t·ŷ_strong (the strong model's own hardened prediction):
    cross-entropy and Eqn 4 are linear in the label, so one loss of the mixture is
    (1 − γ_t)·ℓ(y) + γ_t·ℓ(ŷ_strong). Without aux, `targets` unchanged."""
    if not cfg.aux:
        return targets
    gamma = aux_weight(step_frac, cfg.gamma_max, cfg.warmup_frac)
    return (1 - gamma) * targets.detach().float() + gamma * harden(predict(logits, cfg), positive_rate)


class LossStats(NamedTuple):
    """What a strong run records about its loss over training (batch means)."""
    mean_logit: float
    nll: float | None           # EDL only
    kl: float | None
    log_strength: float | None


def _ce_example(logits: torch.Tensor, targets: torch.Tensor, step_frac: float,
                cfg: LossConfig) -> tuple[torch.Tensor, LossStats]:
    return soft_cross_entropy(logits, targets), LossStats(float(logits.detach().float().mean()), None, None, None)


def _edl_example(logits: torch.Tensor, targets: torch.Tensor, step_frac: float,
                 cfg: LossConfig) -> tuple[torch.Tensor, LossStats]:
    loss, terms = edl_objective(logits, targets, step_frac, cfg)
    return loss, LossStats(float(logits.detach().float().mean()), float(terms.nll.detach().mean()),
                           float(terms.kl.detach().mean()), float(terms.log_strength.mean()))


@dataclass(frozen=True)
class Loss:
    """A loss kind (`LossConfig.kind`, `design.Method.loss`): its per-example loss [B] with
    its statistics, and the class probabilities of a model trained with it."""

    example: Callable[[torch.Tensor, torch.Tensor, float, LossConfig], tuple[torch.Tensor, LossStats]]
    predict: Callable[[torch.Tensor, LossConfig], torch.Tensor]


# The loss registry: a method with a loss of its own adds one entry.
LOSSES = {
    "ce": Loss(_ce_example, lambda logits, cfg: torch.softmax(logits.float(), dim=-1)),  # Eqns 1-2
    "edl": Loss(_edl_example, lambda logits, cfg: dirichlet_mean(logits, cfg.activation, cfg.centre_logits)),  # 3-5
}


def example_loss(logits: torch.Tensor, targets: torch.Tensor, step_frac: float,
                 cfg: LossConfig) -> tuple[torch.Tensor, LossStats]:
    """Per-example loss [B] of `cfg.kind` (cross-entropy or EDL), and its statistics."""
    return LOSSES[cfg.kind].example(logits, targets, step_frac, cfg)


def weak_ensemble_loss(logits: torch.Tensor, weak_probs: torch.Tensor, weights: torch.Tensor,
                       step_frac: float, cfg: LossConfig) -> tuple[torch.Tensor, LossStats]:
    """Σ_i λ_i ℓ(z, (1 − γ_t)·p^(i) + γ_t·ŷ_strong), the batch mean, and its statistics.

    With ℓ = CE this is Eqn 1 (N = 1) and Naive Multi-Weak, Eqn 2; with ℓ = EDL it is
    Bayesian Multi-Weak, Eqn 4, and Eqn 5 with the auxiliary term (γ_t = 0 without it).
    """
    weights = weights.to(logits.device, torch.float32)
    rate = None
    if cfg.aux and cfg.balanced_threshold:
        rate = (weak_probs[:, :, 1].float() * weights).sum(dim=-1).mean() / weights.sum()
    return member_sum([example_loss(logits, aux_targets(logits, weak_probs[:, i], step_frac, cfg, rate), step_frac, cfg)
                       for i in range(weak_probs.shape[1])], weights)


def member_sum(per_member: list[tuple[torch.Tensor, LossStats]], weights: torch.Tensor) -> tuple[torch.Tensor, LossStats]:
    """Σ_i λ_i ℓ_i, the batch mean, from each member's per-example loss [B] and statistics;
    `weights` [N] (one λ per member) or [B, N] (per example: dynamic weights). The statistics
    are the λ-weighted means of the members' (λ averaged over the batch)."""
    loss = (torch.stack([loss for loss, _ in per_member], dim=-1) * weights).sum(dim=-1).mean()
    mean_weights = (weights if weights.dim() == 1 else weights.mean(dim=0)).tolist()
    total = sum(mean_weights)
    stats = LossStats(*(None if values[0] is None else sum(w * v for w, v in zip(mean_weights, values)) / total
                        for values in zip(*(stats for _, stats in per_member))))
    return loss, stats


def training_summary(stats: list[dict], cfg: LossConfig) -> dict:
    """What a strong run's metrics.json records about its loss, as means over the steps: the
    mean logit (the level shift-invariant evidence ignores), and for EDL the mean NLL and KL
    (before annealing and clamping), the KL term's weight against the NLL
    (λ_EDL · KL / NLL) and the mean log Dirichlet strength, log S."""
    summary = {"mean_logit": float(_mean(s["mean_logit"] for s in stats))}
    if cfg.kind == "edl":
        nll, kl = _mean(s["nll"] for s in stats), _mean(s["kl"] for s in stats)
        summary.update(mean_nll=nll, mean_kl=kl, kl_nll_ratio=cfg.kl_weight * kl / nll if nll else float("nan"),
                       mean_log_strength=_mean(s["log_strength"] for s in stats))
    return summary


def _mean(values) -> float:
    values = list(values)
    return float(sum(values) / len(values)) if values else float("nan")


# ---- the generation track's targets and member weights (Stage 3, Section 4.1) -----------


def soft_label_rows(strong_probs, target_ids, target_logprobs, min_prob: float = 1e-4):
    """Stage 3: soft labels [T, V] for the strong model's positions.

    The target token gets P(s_i) = exp(log P(s_i)), clamped to [min_prob, 1]; the rest,
    1 − P(s_i), is spread over the other tokens in proportion to the strong model's own
    (detached) distribution `strong_probs` [T, V], so every row sums to 1 and the
    target's mass is exact.
    """
    probs = strong_probs.detach().float()
    target_p = torch.exp(target_logprobs.float()).clamp(min_prob, 1.0)
    rows = torch.arange(len(target_ids))
    others = probs.clone()
    others[rows, target_ids] = 0.0
    mass = others.sum(dim=-1, keepdim=True)
    # A strong distribution with (nearly) all mass on the target leaves nothing to spread
    # in proportion to: spread uniformly over the other tokens instead.
    uniform = torch.ones_like(others)
    uniform[rows, target_ids] = 0.0
    others = torch.where(mass > 1e-12, others / mass.clamp_min(1e-12), uniform / (others.shape[-1] - 1))
    soft = others * (1.0 - target_p)[:, None]
    soft[rows, target_ids] = target_p
    return soft


def soft_targets(logits: torch.Tensor, target_ids: torch.Tensor, target_logprobs: torch.Tensor | None,
                 kind: str, min_prob: float) -> torch.Tensor:
    """[P, V] targets at P positions: Stage 3 rows (full), P(s_i) alone (target) or one-hot."""
    if target_logprobs is None or kind == "onehot":
        return F.one_hot(target_ids, logits.shape[-1]).float()
    if kind == "full":
        return soft_label_rows(torch.softmax(logits.detach().float(), dim=-1), target_ids, target_logprobs, min_prob)
    rows = torch.zeros(logits.shape, dtype=torch.float32, device=logits.device)
    rows[torch.arange(len(target_ids)), target_ids] = torch.exp(target_logprobs.float()).clamp(min_prob, 1.0)
    return rows


def utterance_weights(weighting: str, weights: list[float], weak_mean_logprobs: np.ndarray) -> np.ndarray:
    """λ [B, N] per utterance: the run's λ_i (average or fixed, normalised once, by
    `ws2s.design.member_weights`) for every utterance, or (dynamic) a softmax over the members
    of each hypothesis's mean token log-probability, the weak models' own confidence."""
    if weighting == "dynamic":
        return torch.softmax(torch.as_tensor(weak_mean_logprobs, dtype=torch.float64), dim=-1).numpy()
    return np.broadcast_to(np.asarray(weights, dtype=np.float64), weak_mean_logprobs.shape).copy()


def position_uncertainty(log_strength: torch.Tensor, vocab: int) -> dict:
    """Summary over every generated test position of its Dirichlet: mean log strength and the
    vacuity V / S (the mass left to "I don't know"), mean and 10/50/90% quantiles."""
    vacuity = torch.exp(math.log(vocab) - log_strength.double()).numpy()
    return {"test_positions": int(len(vacuity)), "test_mean_log_strength": float(log_strength.double().mean()),
            "test_mean_vacuity": float(vacuity.mean()),
            **{f"test_vacuity_p{q}": float(np.quantile(vacuity, q / 100)) for q in (10, 50, 90)}}


# ---- ensemble scores (Eqn 8: Joint Decoding and cDPO) and cDPO (Eqns 9-10) ---------------

SCORE_KINDS = ("sequence_prob", "mean_logprob")


def preference_scores(per_weak_logprobs: np.ndarray, lengths: np.ndarray, weights, kind: str) -> np.ndarray:
    """The ensemble's score of each candidate, [n_cand], from [n_weak, n_cand] log-probs and token counts.

    "sequence_prob" (Eqn 8): Σ_i λ_i p_i(y), returned as its logarithm, log Σ_i λ_i exp(log p_i(y)),
    which ranks the same and does not underflow for long candidates.
    "mean_logprob" (the authors' code): Σ_i λ_i · (log p_i(y) / |y|_i), |y|_i counted in
    model i's own tokens.
    """
    logp = np.asarray(per_weak_logprobs, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if logp.ndim != 2 or len(weights) != logp.shape[0] or np.shape(lengths) != logp.shape:
        raise Ws2sError(f"preference scores: log-probs {logp.shape}, lengths {np.shape(lengths)} and "
                        f"{len(weights)} weights do not match ([n_weak, n_cand] and n_weak)")
    if kind == "sequence_prob":
        with np.errstate(divide="ignore"):  # a zero weight is log 0 = −inf: that model drops out
            return np.logaddexp.reduce(logp + np.log(weights)[:, None], axis=0)
    if kind == "mean_logprob":
        return (weights[:, None] * logp / np.maximum(np.asarray(lengths), 1)).sum(axis=0)
    raise Ws2sError(f"preference score kind '{kind}' is unknown; allowed: {', '.join(SCORE_KINDS)}")


@dataclass(frozen=True)
class Pair:
    """One prompt's preference: indices into its candidates."""

    prompt: int
    chosen: int
    rejected: int


def select_pairs(candidates: list[list[str]], scores: list[np.ndarray]) -> tuple[list[Pair], int, int]:
    """Chosen = the highest-scored candidate of each prompt, rejected = the lowest.

    A prompt with fewer than two distinct candidate texts gives no pair (counted in the
    second value); one whose distinct candidates all score the same gives none either
    (the third value), since no preference can be read from it.
    """
    pairs, identical, tied = [], 0, 0
    for p, (texts, score) in enumerate(zip(candidates, scores)):
        distinct = [i for i, text in enumerate(texts) if texts.index(text) == i]  # first of each text
        if len(distinct) < 2:
            identical += 1
            continue
        values = np.asarray(score)[distinct]
        if values.max() == values.min():
            tied += 1
            continue
        pairs.append(Pair(p, distinct[int(values.argmax())], distinct[int(values.argmin())]))
    return pairs, identical, tied


def cdpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
              ref_rejected: torch.Tensor, beta: float, epsilon: float) -> torch.Tensor:
    """Per-pair cDPO loss (Eqns 9-10): (1 − ε)·(−log σ(βΔ)) + ε·(−log σ(−βΔ)).

    Δ = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r)); ε is the chance that
    a preference label is flipped. ε = 0 is standard DPO. The reference never carries gradients.
    """
    delta = (policy_chosen - ref_chosen.detach()) - (policy_rejected - ref_rejected.detach())
    return (1 - epsilon) * -F.logsigmoid(beta * delta) + epsilon * -F.logsigmoid(-beta * delta)


# ---- Performance Gap Recovered ----------------------------------------------------------

# Issue 8: below a 2-point gap between ceiling and weak model, PGR is noise, not a result.
MIN_GAP = 0.02


def pgr(performance: float, weak: float, strong: float, min_gap: float = MIN_GAP) -> float:
    """(P − P_w) / (P_s − P_w); NaN (undefined) when the gap P_s − P_w is under `min_gap`.

    A gap of zero or below (weak at or above the ceiling) is also undefined, never a
    division error.
    """
    gap = strong - weak
    if not gap >= min_gap:
        return math.nan
    return (performance - weak) / gap


def multi_weak_pgr(performance: float, weak: list[float], strong: float, min_gap: float = MIN_GAP) -> float:
    """A multi-weak row's PGR: the mean of its PGRs against each of its weak models (as the
    paper does); undefined if any of them is."""
    values = [pgr(performance, w, strong, min_gap) for w in weak]
    return float(np.mean(values)) if not any(math.isnan(v) for v in values) else math.nan
