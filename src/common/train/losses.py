"""Preference losses as pure functions of sequence log-probabilities, one value per pair.

Inputs are log pi_theta and log pi_ref summed over completion tokens, for the chosen (w) and the
rejected (l) answer; r = log pi_theta - log pi_ref. Every function returns a (batch,) tensor of
finite per-pair losses; reduce() turns them into the training loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from common.train.loss_names import LOSSES  # the names; the config checks DPO_LOSS against them


def log_ratios(policy_w, policy_l, ref_w, ref_l) -> tuple[torch.Tensor, torch.Tensor]:
    return policy_w - ref_w, policy_l - ref_l


def sigmoid_loss(r_w: torch.Tensor, r_l: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO, Eq. 7 of Rafailov et al. 2023 (https://huggingface.co/papers/2305.18290):
    -log sigma(beta (r_w - r_l))."""
    return -F.logsigmoid(beta * (r_w - r_l))


def ipo_loss(r_w, r_l, beta: float, len_w=None, len_l=None) -> torch.Tensor:
    """IPO, Eq. 17 of Azar et al. 2023 (https://huggingface.co/papers/2310.12036): (h - 1/(2 beta))^2,
    with h the per-token-averaged margin when lengths are given, as TRL computes it."""
    if len_w is not None:
        r_w, r_l = r_w / len_w.clamp(min=1), r_l / len_l.clamp(min=1)
    return (r_w - r_l - 1 / (2 * beta)) ** 2


def robust_loss(r_w, r_l, beta: float, label_smoothing: float) -> torch.Tensor:
    """Robust DPO (Chowdhury et al. 2024, https://huggingface.co/papers/2403.00409), in TRL's form:
    an unbiased estimate of the DPO loss when a fraction eps of the labels is flipped."""
    eps = label_smoothing
    margin = beta * (r_w - r_l)
    return (-(1 - eps) * F.logsigmoid(margin) + eps * F.logsigmoid(-margin)) / (1 - 2 * eps)


def cal_dpo_loss(r_w, r_l, beta: float) -> torch.Tensor:
    """Cal-DPO (Xiao et al. 2024, https://huggingface.co/papers/2412.14516):
    -log sigma(r_w - r_l) + 1/2 [(r_w - 1/(2 beta))^2 + (r_l + 1/(2 beta))^2]. The squares pin the
    implicit rewards to +-1/(2 beta), so the chosen answer's likelihood cannot sink with the
    rejected one's (likelihood displacement)."""
    target = 1 / (2 * beta)
    return -F.logsigmoid(r_w - r_l) + 0.5 * ((r_w - target) ** 2 + (r_l + target) ** 2)


def centered_loss(r_w, r_l, beta: float) -> torch.Tensor:
    """Batch-centered DPO, Looper's own variant (no paper): DPO on the margin minus the batch-mean
    margin mu, a constant of the step, so only a pair's margin relative to its batch is pushed.
    Not Cal-DPO."""
    margin = r_w - r_l
    return -F.logsigmoid(beta * (margin - margin.mean().detach()))


def nll_loss(policy_w: torch.Tensor, len_w: torch.Tensor) -> torch.Tensor:
    """Per-token negative log-likelihood of the chosen answer: the NLL term of Iterative RPO
    (Pang et al. 2024, https://huggingface.co/papers/2404.19733)."""
    return -policy_w / len_w.clamp(min=1)


def dr_dpo_reduce(per_pair_dpo: torch.Tensor, beta_prime: float = 1.0, weights=None) -> torch.Tensor:
    """Dr-DPO (Wu et al. 2024, https://huggingface.co/papers/2407.07880), its pairwise loss:
    -beta' log mean_batch exp(-l_DPO / beta'), by logsumexp so it stays finite. Pairs with
    weight 0 (filtered out) do not count."""
    logits = -per_pair_dpo / beta_prime
    if weights is None:
        weights = torch.ones_like(per_pair_dpo)
    keep = weights > 0
    n = keep.sum().clamp(min=1)
    masked = torch.where(keep, logits, torch.full_like(logits, -math.inf))
    if not keep.any():
        return per_pair_dpo.sum() * 0
    return -beta_prime * (torch.logsumexp(masked, dim=0) - torch.log(n.to(logits.dtype)))


def per_pair_loss(
    name: str,
    policy_w: torch.Tensor,
    policy_l: torch.Tensor,
    ref_w: torch.Tensor,
    ref_l: torch.Tensor,
    beta: float,
    len_w: torch.Tensor | None = None,
    len_l: torch.Tensor | None = None,
    label_smoothing: float = 0.1,
) -> torch.Tensor:
    """One named loss, per pair. For dr_dpo this is l_DPO, which reduce() aggregates."""
    r_w, r_l = log_ratios(policy_w, policy_l, ref_w, ref_l)
    if name in ("sigmoid", "dr_dpo"):
        return sigmoid_loss(r_w, r_l, beta)
    if name == "ipo":
        return ipo_loss(r_w, r_l, beta, len_w, len_l)
    if name == "robust":
        return robust_loss(r_w, r_l, beta, label_smoothing)
    if name == "cal_dpo":
        return cal_dpo_loss(r_w, r_l, beta)
    if name == "centered":
        return centered_loss(r_w, r_l, beta)
    if name == "sft":
        return nll_loss(policy_w, len_w)
    raise ValueError(f"unknown DPO loss {name!r}; choose from {', '.join(LOSSES)}")


def reduce(name: str, per_pair: torch.Tensor, weights: torch.Tensor, beta_prime: float = 1.0):
    """The batch loss: a weighted mean, or Dr-DPO's log-mean-exp."""
    if name == "dr_dpo":
        return dr_dpo_reduce(per_pair, beta_prime, weights)
    return (per_pair * weights).sum() / weights.sum().clamp(min=1)
