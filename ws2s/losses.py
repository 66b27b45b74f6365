"""Losses of the strong stage: small pure functions of (logits, targets, progress).

Shapes: `logits` [B, K]; `weak_probs` [B, N, K] (N weak models, or N = 1 for a single
soft label such as gold, one weak model or the Flying Squid posterior); `weights` [N]
(the λ_i of Eqns 2 and 4). Every loss is the mean over the batch, so it is the same
function of the data at any batch size. Targets never carry gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

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


def dirichlet_log_alpha(logits: torch.Tensor, activation: str) -> torch.Tensor:
    return EVIDENCE[activation](logits)


def edl_nll(log_alpha: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Σ_k y_k (log α_0 − log α_k), [B]: −log E_Dir(α)[π_y] for a one-hot y."""
    log_alpha0 = torch.logsumexp(log_alpha, dim=-1, keepdim=True)
    return (targets.detach() * (log_alpha0 - log_alpha)).sum(dim=-1)


def kl_to_uniform_dirichlet(alpha: torch.Tensor) -> torch.Tensor:
    """KL(Dir(α) ‖ Dir(1, …, 1)) in closed form, [B]."""
    k = alpha.shape[-1]
    alpha0 = alpha.sum(dim=-1)
    return (
        torch.lgamma(alpha0) - torch.lgamma(alpha).sum(dim=-1) - math.lgamma(k)
        + ((alpha - 1) * (torch.digamma(alpha) - torch.digamma(alpha0)[..., None])).sum(dim=-1)
    )


def edl_loss(logits: torch.Tensor, targets: torch.Tensor, step_frac: float,
             activation: str, kl_weight: float) -> torch.Tensor:
    """Per-example EDL loss, [B]: NLL + λ_EDL · min(1, progress) · KL(Dir(α̃) ‖ Dir(1)).

    α̃ = y + (1 − y)·α keeps only the evidence the target does not support. The KL term is
    computed in float64 (lgamma and digamma of large α cancel catastrophically in float32);
    the NLL, a log-sum-exp, in at least float32: over a 49k-token vocabulary float64 made
    it 7 times the cost of cross-entropy.
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    log_alpha = dirichlet_log_alpha(logits.to(dtype), activation)
    nll = edl_nll(log_alpha, targets.detach().to(dtype))
    kl_scale = kl_weight * min(1.0, max(0.0, step_frac))
    if kl_scale == 0:
        # lgamma and digamma over a vocabulary cost a strong step more than the model:
        # skip them where they count for nothing (the first step; kl_weight 0)
        return nll.float()
    targets = targets.detach().double()
    alpha_tilde = targets + (1 - targets) * torch.exp(log_alpha.double())
    return (nll.double() + kl_scale * kl_to_uniform_dirichlet(alpha_tilde)).float()


def dirichlet_mean(logits: torch.Tensor, activation: str) -> torch.Tensor:
    """Predictions of an EDL-trained model: α / α_0."""
    return torch.softmax(dirichlet_log_alpha(logits.float(), activation), dim=-1)


# ---- the strong-stage objective ------------------------------------------------------


@dataclass(frozen=True)
class LossConfig:
    kind: str                 # "ce" (Eqns 1-2) or "edl" (Eqns 3-5)
    aux: bool = False         # add the auxiliary confidence term (Burns et al.; Eqn 5)
    gamma_max: float = 0.5
    warmup_frac: float = 0.1
    balanced_threshold: bool = True  # harden at the weak labels' class balance (else argmax)
    activation: str = "exp"
    kl_weight: float = 1.0


def predict(logits: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """Class probabilities of a model trained with `cfg`: softmax, or α/α_0 after EDL."""
    if cfg.kind == "edl":
        return dirichlet_mean(logits, cfg.activation)
    return torch.softmax(logits.float(), dim=-1)


def _per_example(kind: str) -> Callable[[torch.Tensor, torch.Tensor, float, LossConfig], torch.Tensor]:
    if kind == "ce":
        return lambda z, y, t, cfg: soft_cross_entropy(z, y)
    return lambda z, y, t, cfg: edl_loss(z, y, t, cfg.activation, cfg.kl_weight)


def weak_ensemble_loss(logits: torch.Tensor, weak_probs: torch.Tensor, weights: torch.Tensor,
                       step_frac: float, cfg: LossConfig) -> torch.Tensor:
    """Σ_i λ_i ℓ(z, p^(i)), plus γ_t ℓ(z, ŷ_strong) against (1 − γ_t) of it with the aux term.

    With ℓ = CE this is Eqn 1 (N = 1) and Naive Multi-Weak, Eqn 2; with ℓ = EDL it is
    Bayesian Multi-Weak, Eqn 4, and Eqn 5 with the auxiliary term.
    """
    loss_fn = _per_example(cfg.kind)
    weights = weights.to(logits.device, torch.float32)
    per_weak = torch.stack([loss_fn(logits, weak_probs[:, i], step_frac, cfg)
                            for i in range(weak_probs.shape[1])], dim=-1)  # [B, N]
    loss = (per_weak * weights).sum(dim=-1)
    if cfg.aux:
        gamma = aux_weight(step_frac, cfg.gamma_max, cfg.warmup_frac)
        rate = None
        if cfg.balanced_threshold:
            rate = (weak_probs[:, :, 1].float() * weights).sum(dim=-1).mean() / weights.sum()
        hard = harden(predict(logits, cfg), rate)
        loss = (1 - gamma) * loss + gamma * loss_fn(logits, hard, step_frac, cfg)
    return loss.mean()
