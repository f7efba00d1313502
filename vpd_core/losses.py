"""Losses of VPD and its baselines, as pure functions (public API).

Shapes: B sequences, T response positions, V vocabulary, K top-K support.
Every function returns `(loss, metrics)` where metrics are detached floats.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_TAIL_CLAMP = -1e-7  # keeps log(1 - mass) finite when the top-K holds ~all the mass


# ----------------------------------------------------------------------------- helpers


def masked_mean(x: torch.Tensor, mask: torch.Tensor, agg: str = "token-mean") -> torch.Tensor:
    """Mean of x [B, T] over mask [B, T], by one of the aggregation conventions:

    token-mean           sum over masked-in tokens / their number (also verl's, within one micro-batch)
    seq-mean-token-mean  per-sequence token means, averaged over sequences that have tokens
    trl                  per-sequence token means, averaged over all B sequences (TRL's SDPO: a fully
                         masked sequence counts as a zero in the average)
    """
    mask = mask.to(x.dtype)
    if agg in ("token-mean", "verl"):
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    per_seq = (x * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)  # [B]
    if agg == "seq-mean-token-mean":
        has_tokens = (mask.sum(-1) > 0).to(x.dtype)
        return (per_seq * has_tokens).sum() / has_tokens.sum().clamp(min=1.0)
    if agg == "trl":
        return per_seq.sum() / max(x.shape[0], 1)
    raise ValueError(f"unknown loss aggregation '{agg}'")


def sequence_logprob(token_logps: torch.Tensor, mask: torch.Tensor, agg: str = "sum") -> torch.Tensor:
    """Per-sequence log-prob [B] from per-token log-probs [B, T]: sum, or mean over the response."""
    mask = mask.to(token_logps.dtype)
    total = (token_logps * mask).sum(-1)
    if agg == "sum":
        return total
    if agg == "mean":
        return total / mask.sum(-1).clamp(min=1.0)
    raise ValueError(f"unknown reward aggregation '{agg}'")


def importance_weights(logps: torch.Tensor, old_logps: torch.Tensor, clip: float | None) -> torch.Tensor:
    """w_t = min(exp(clamp(logpi - logpi_old, -20, 20)), clip), detached. [B, T]"""
    ratio = torch.exp(torch.clamp((logps - old_logps).detach(), -20.0, 20.0))
    return ratio if clip is None else ratio.clamp(max=clip)


def add_tail_bucket(logps: torch.Tensor) -> torch.Tensor:
    """[..., K] log-probs of a subset -> [..., K+1] with log(1 - sum p) appended."""
    captured = torch.logsumexp(logps, dim=-1, keepdim=True).clamp(max=_TAIL_CLAMP)
    return torch.cat([logps, torch.log(-torch.expm1(captured))], dim=-1)


def divergence(student_logps: torch.Tensor, teacher_logps: torch.Tensor, alpha: float) -> torch.Tensor:
    """D_alpha over the last axis of two log-distributions [..., S] -> [...].

    alpha=1: KL(student || teacher); alpha=0: KL(teacher || student);
    otherwise (1-alpha) KL(student || M) + alpha KL(teacher || M), M = (1-alpha) student + alpha teacher.
    """
    def kl(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:  # KL(p || q)
        return (p_log.exp() * (p_log - q_log)).sum(-1)

    if alpha == 1.0:
        return kl(student_logps, teacher_logps)
    if alpha == 0.0:
        return kl(teacher_logps, student_logps)
    mix = torch.logsumexp(
        torch.stack([student_logps + math.log(1 - alpha), teacher_logps + math.log(alpha)]), dim=0
    )
    return (1 - alpha) * kl(student_logps, mix) + alpha * kl(teacher_logps, mix)


def topk_support_logps(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, topk: int, add_tail: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project both distributions onto the student's top-K ids (+ tail bucket, or renormalised).

    logits [B, T, V] -> log-probs [B, T, K+1] (tail) or [B, T, K] (renormalised).
    Only logsumexp over V is taken; no [B, T, V] log-softmax is materialised.
    """
    topk = min(topk, student_logits.shape[-1])
    s_top, ids = torch.topk(student_logits, k=topk, dim=-1)  # [B, T, K]
    s_logps = s_top - torch.logsumexp(student_logits, dim=-1, keepdim=True)
    t_logps = teacher_logits.gather(-1, ids) - torch.logsumexp(teacher_logits, dim=-1, keepdim=True)
    if add_tail:
        return add_tail_bucket(s_logps), add_tail_bucket(t_logps)
    return (
        s_logps - torch.logsumexp(s_logps, dim=-1, keepdim=True),
        t_logps - torch.logsumexp(t_logps, dim=-1, keepdim=True),
    )


def distillation_per_token(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    topk: int,
    alpha: float,
    add_tail: bool = True,
) -> torch.Tensor:
    """Per-token D_alpha(student || sg teacher) on the student's top-K support. [B, T, V] x2 -> [B, T]"""
    s_logps, t_logps = topk_support_logps(student_logits, teacher_logits.detach(), topk, add_tail)
    return divergence(s_logps, t_logps, alpha)


# ----------------------------------------------------------------------------- public losses


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor,
    *,
    topk: int,
    alpha: float,
    add_tail: bool = True,
    is_weights: torch.Tensor | None = None,
    loss_agg: str = "token-mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """M-step loss: student logits [B, T, V] distil the (stop-gradient) teacher logits [B, T, V].

    mask [B, T] marks response tokens of samples with a teacher context; is_weights [B, T]
    are detached per-token importance weights (see `importance_weights`).
    """
    per_token = distillation_per_token(student_logits, teacher_logits, topk=topk, alpha=alpha, add_tail=add_tail)
    return distillation_loss_from_per_token(per_token, mask, is_weights=is_weights, loss_agg=loss_agg)


def distillation_loss_from_per_token(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    *,
    is_weights: torch.Tensor | None = None,
    loss_agg: str = "token-mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weight and aggregate per-token divergences [B, T]; used by chunked trainers."""
    weighted = per_token if is_weights is None else per_token * is_weights.detach()
    loss = masked_mean(weighted, mask, loss_agg)
    with torch.no_grad():
        metrics = {
            "distill/loss": loss.item(),
            "distill/divergence": masked_mean(per_token, mask).item(),
            "distill/tokens": float(mask.sum().item()),
        }
        if is_weights is not None:
            metrics["distill/is_weight_mean"] = masked_mean(is_weights, mask).item()
    return loss, metrics


def bco_loss(
    teacher_logps: torch.Tensor,
    student_logps: torch.Tensor,
    rewards: torch.Tensor,
    *,
    beta: float,
    delta: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """E-step (unpaired preference, BCO) loss on per-sequence log-probs [B].

    r~ = beta (L_T - L_S), L_S detached (the student is the prior);
    L = -mean_{r=1} log sig(r~ - delta) - mean_{r=0} log sig(-(r~ - delta)).
    delta is the running mean of r~, maintained by the caller (`update_delta`).
    """
    implicit = beta * (teacher_logps - student_logps.detach())  # [B]
    margin = implicit - delta
    pos = rewards > 0.5
    neg = ~pos
    zero = implicit.sum() * 0.0  # keeps the graph when one class is absent
    loss_pos = -F.logsigmoid(margin[pos]).mean() if pos.any() else zero
    loss_neg = -F.logsigmoid(-margin[neg]).mean() if neg.any() else zero
    loss = loss_pos + loss_neg
    with torch.no_grad():
        correct = torch.where(pos, margin > 0, margin <= 0).float()
        metrics = {
            "estep/loss": loss.item(),
            "estep/reward_pos": implicit[pos].mean().item() if pos.any() else float("nan"),
            "estep/reward_neg": implicit[neg].mean().item() if neg.any() else float("nan"),
            "estep/reward_mean": implicit.mean().item(),
            "estep/delta": float(delta),
            "estep/accuracy": correct.mean().item(),
            "estep/positives": float(pos.sum().item()),
            "estep/negatives": float(neg.sum().item()),
        }
    return loss, metrics


def update_delta(delta: float | None, implicit_rewards: torch.Tensor, momentum: float) -> float:
    """Running mean of the implicit rewards r~ (EMA), initialised on the first batch."""
    batch_mean = float(implicit_rewards.detach().mean().item())
    if delta is None:
        return batch_mean
    return momentum * delta + (1 - momentum) * batch_mean


def grpo_advantages(rewards: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """A_i = r_i - mean of r over i's group (no std normalisation). rewards [B], group ids [B] -> [B]"""
    _, inverse = torch.unique(groups, return_inverse=True)
    n = inverse.max().item() + 1
    sums = torch.zeros(n, dtype=rewards.dtype).index_add_(0, inverse, rewards)
    counts = torch.zeros(n, dtype=rewards.dtype).index_add_(0, inverse, torch.ones_like(rewards))
    return rewards - (sums / counts)[inverse]


def ppo_per_token(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    *,
    eps_low: float,
    eps_high: float,
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO clipped surrogate per token (verl's vanilla policy loss). -> loss, ratio, clipped [B, T]

    logps, old_logps [B, T]; advantages [B] or [B, T]. The log-ratio is clamped to [-20, 20]
    before exp, as verl does. dual_clip c: for A < 0 the loss is capped at -c * A.
    """
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages  # [B, 1] | [B, T]
    ratio = torch.exp(torch.clamp(logps - old_logps.detach(), -20.0, 20.0))
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1 - eps_low, 1 + eps_high)
    loss = torch.maximum(unclipped, clipped)
    was_clipped = (clipped > unclipped).float()
    if dual_clip is not None:
        lower = torch.minimum(-adv * dual_clip, loss)
        was_clipped = torch.where((adv < 0) & (lower < loss), torch.ones_like(was_clipped), was_clipped)
        loss = torch.where(adv < 0, lower, loss)
    return loss, ratio, was_clipped.expand_as(loss)


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float,
    eps_high: float,
    dual_clip: float | None = None,
    loss_agg: str = "token-mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO clipped surrogate. logps, old_logps, mask [B, T]; advantages [B] (or per-token [B, T])."""
    per_token, ratio, was_clipped = ppo_per_token(logps, old_logps, advantages, eps_low=eps_low,
                                                  eps_high=eps_high, dual_clip=dual_clip)
    loss = masked_mean(per_token, mask, loss_agg)
    return loss, ppo_metrics(loss, ratio, was_clipped, advantages, mask)


def ppo_metrics(loss, ratio, was_clipped, advantages, mask) -> dict[str, float]:
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    with torch.no_grad():
        return {
            "grpo/loss": float(loss),
            "grpo/clip_frac": masked_mean(was_clipped, mask).item(),
            "grpo/ratio_mean": masked_mean(ratio, mask).item(),
            "grpo/advantage_abs_mean": masked_mean(adv.abs().expand_as(ratio), mask).item(),
        }
