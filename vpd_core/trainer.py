"""One trainer-step API for VPD, SDPO, GRPO and the hybrid.

The trainer owns the model, optimizer, LR schedule, step counter, the running
delta of the E-step and any extra teacher weights (EMA / initial copy). A step
takes verified samples (`Sample`s, grouped by problem) and returns a flat dict
of metrics for the orchestration layer to log.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections import deque
from contextlib import contextmanager

import torch

from .config import Params
from .distributed import SINGLE, Dist, reshard, shard
from .logprobs import entropy_from_logits, gather_logps, head_logits, lm_head, response_hidden, token_logprobs
from .losses import (
    bco_loss,
    distillation_loss_from_per_token,
    distillation_per_token,
    grpo_advantages,
    grpo_loss,
    importance_weights,
    sequence_logprob,
    update_delta,
)
from .sequences import Packed, Sample, pack, pad_right
from .teacher import TeacherContext, build_teacher_contexts


def lr_lambda(schedule: str, warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine

    return f


class Trainer:
    """With `dist` of several ranks, `model` (not yet sharded) is sharded with FSDP2 here, and
    each rank's `train_step` gets its own slice of the step's groups."""

    def __init__(self, model, tokenizer, params: Params, dist: Dist = SINGLE):
        self.model = model
        self.tokenizer = tokenizer
        self.p = params
        self.dist = dist
        self.pad_id = tokenizer.pad_token_id
        self.device = next(model.parameters()).device
        # Extra weights only where the method needs them: one copy of the model each.
        needs_initial = (params.algorithm == "vpd" and params.vpd.prior == "initial") or (
            params.algorithm == "sdpo" and params.sdpo.teacher in ("frozen", "trust-region")
        )
        self.initial = self._frozen_copy() if needs_initial else None
        self.ema = self._frozen_copy() if params.algorithm == "sdpo" and params.sdpo.teacher == "ema" else None
        if params.model.gradient_checkpointing:
            # non-reentrant: works with frozen inputs and with FSDP
            kwargs = {"use_reentrant": False}
            if hasattr(model, "activation_checkpointing_enable"):  # the name from transformers 5.2x on
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        if dist.world > 1:  # after copying and checkpointing, before the optimizer sees the parameters
            for m in (model, self.initial, self.ema):
                if m is not None:
                    shard(m)
        o = params.optim
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(o.schedule, o.warmup_steps, params.train.steps)
        )
        self.step = 0  # completed training steps (M-steps for VPD/SDPO)
        self.e_steps = 0
        self.delta: float | None = None  # running mean of the E-step implicit reward
        self.e_buffer: deque[list[Sample]] = deque(maxlen=params.vpd.e_every)

    def _frozen_copy(self):
        m = copy.deepcopy(self.model)
        m.requires_grad_(False)
        return m.eval()

    # ------------------------------------------------------------------ public step API

    def train_step(self, samples: list[Sample]) -> dict[str, float]:
        """One training step of the configured algorithm on a batch of verified samples."""
        _check_groups(samples)
        metrics = batch_metrics(samples, self.dist)
        algo = self.p.algorithm
        with self._autocast():
            if algo in ("vpd", "sdpo"):
                contexts = build_teacher_contexts(samples, self.tokenizer, self.p.teacher, self.p.feedback)
                metrics |= context_metrics(contexts, self.dist)
                metrics |= self.m_step(samples, contexts)
            elif algo == "grpo":
                metrics |= self.grpo_step(samples)
            elif algo == "hybrid":
                contexts = build_teacher_contexts(samples, self.tokenizer, self.p.teacher, self.p.feedback)
                metrics |= context_metrics(contexts, self.dist)
                metrics |= self.grpo_step(samples, contexts=contexts)
        reshard(self.model, self.ema, self.initial)  # plain (unsharded) root tensors must not outlive the step
        self.step += 1
        if algo == "sdpo" and self.ema is not None:
            self._update_ema()
        if algo == "vpd":
            self.e_buffer.append(samples)
            if self.step % self.p.vpd.e_every == 0:
                batch = samples if self.p.vpd.e_buffer == "current" else [s for b in self.e_buffer for s in b]
                with self._autocast():
                    metrics |= self.e_step(batch)
                reshard(self.model, self.initial)
        metrics["train/step"] = float(self.step)
        metrics["train/lr"] = self.scheduler.get_last_lr()[0]
        return metrics

    def m_step(self, samples: list[Sample], contexts: list[TeacherContext]) -> dict[str, float]:
        """Distil sg(teacher | context) into the student on the student's own rollouts.

        The lm head runs chunk by chunk over response positions and each chunk's
        loss is back-propagated to the final hidden states at once, so [b, chunk, V]
        logits never outlive their chunk and nothing is recomputed; the decoder then
        gets one backward pass per micro-batch.
        """
        d, chunk = self.p.distill, self.p.train.logit_chunk
        active = [c.active for c in contexts]
        weights = [_agg_weight(len(s.rollout.response_ids), a, d.loss_agg) for s, a in zip(samples, active)]
        total = self.dist.sum([sum(weights)])[0]  # the loss aggregates over the global batch
        norm = max(total, 1e-12) / self.dist.world  # FSDP averages gradients over ranks: undo it
        sums = _Sums()
        t_teacher = t_update = 0.0
        head = lm_head(self.model)
        self.optimizer.zero_grad(set_to_none=True)
        for idx in self._micro_batches(len(samples)):
            student = self._pack([samples[i].rollout.prompt_ids for i in idx], [samples[i] for i in idx])
            teacher = self._pack([contexts[i].prompt_ids for i in idx], [samples[i] for i in idx])
            t0 = time.perf_counter()
            teacher_parts = self._teacher_hidden(teacher)  # [(hidden [b, T, H], head, weight)]
            t_teacher += time.perf_counter() - t0
            t0 = time.perf_counter()
            h = response_hidden(self.model, student)  # [b, T, H], graph through the decoder
            h_leaf = h.detach().requires_grad_(True)
            mask = student.response_mask * torch.tensor([float(active[i]) for i in idx], device=self.device)[:, None]
            # d(loss)/d(weighted divergence of token t): the loss aggregation over the whole batch
            n_tokens = student.response_mask.sum(-1).clamp(min=1.0)  # [b]
            coef = mask * (torch.tensor([weights[i] for i in idx], device=self.device) / norm / n_tokens)[:, None]
            old = None if self.p.train.old_logps == "recompute" else self._old_logps(None, [samples[i] for i in idx], student)
            divs, ents, ws = [], [], []
            t_head = 0.0  # teacher lm-head time inside the chunk loop
            for a in range(0, student.response_len, chunk):
                sl = slice(a, a + chunk)
                t1 = time.perf_counter()
                with torch.no_grad():
                    t_logits = sum(w * head_logits(hd, th[:, sl]) for th, hd, w in teacher_parts)  # [b, c, V]
                t_head += time.perf_counter() - t1
                s_logits = head_logits(head, h_leaf[:, sl])  # [b, c, V]
                div = distillation_per_token(s_logits, t_logits, topk=d.topk, alpha=d.alpha, add_tail=d.add_tail)
                logp = gather_logps(s_logits, student.response_ids[:, sl])
                w = torch.ones_like(logp) if d.is_clip is None or old is None else importance_weights(logp, old[:, sl], d.is_clip)
                if total > 0:
                    (div * w * coef[:, sl]).sum().backward()  # frees this chunk's logits
                with torch.no_grad():
                    ents.append(entropy_from_logits(s_logits))
                divs.append(div.detach())
                ws.append(w)
            if total > 0 and h_leaf.grad is not None:
                h.backward(h_leaf.grad)
            div, ent, w = torch.cat(divs, 1), torch.cat(ents, 1), torch.cat(ws, 1)
            _, m = distillation_loss_from_per_token(div, mask, is_weights=w if d.is_clip is not None else None, loss_agg=d.loss_agg)
            sums.add(m, mask, ent=ent, full_mask=student.response_mask)
            t_teacher += t_head
            t_update += time.perf_counter() - t0 - t_head
        t0 = time.perf_counter()
        metrics = self._optimizer_step(update=total > 0)
        t_update += time.perf_counter() - t0
        metrics |= sums.result("distill", self.dist)
        metrics["time/teacher_scoring"] = t_teacher
        metrics["time/update"] = t_update
        return metrics

    def e_step(self, samples: list[Sample]) -> dict[str, float]:
        """VPD E-step: BCO on teacher-vs-prior implicit rewards, each sample in its own context."""
        v, dist = self.p.vpd, self.dist
        t_start = time.perf_counter()
        contexts = build_teacher_contexts(samples, self.tokenizer, self.p.teacher, self.p.feedback, e_step=True)
        active = [c.active for c in contexts]
        n_active = int(dist.sum([sum(active)])[0])
        if n_active == 0:
            return {"estep/skipped": 1.0}
        # Inactive samples leave the loss. One process drops them; with several, FSDP needs the
        # same forward passes on every rank, so they stay in and are masked out of the loss.
        keep = [i for i, a in enumerate(active) if a or dist.world > 1]
        samples = [samples[i] for i in keep]
        contexts = [contexts[i] for i in keep]
        in_loss = torch.tensor([float(active[i]) for i in keep], device=self.device)
        rewards = torch.tensor([s.reward for s in samples], device=self.device)
        prior = self.initial if v.prior == "initial" else self.model
        mbs = list(self._micro_batches(len(samples)))

        def seq_logps(model, idx, use_context: bool) -> torch.Tensor:  # [b]
            prompts = [(contexts[i].prompt_ids if use_context else samples[i].rollout.prompt_ids) for i in idx]
            packed = self._pack(prompts, [samples[i] for i in idx])
            return sequence_logprob(token_logprobs(model, packed, self.p.train.logit_chunk), packed.response_mask, v.reward_agg)

        with torch.no_grad():
            student_lp = torch.cat([seq_logps(prior, idx, False) for idx in mbs])
        self.optimizer.zero_grad(set_to_none=True)
        if len(mbs) == 1 and dist.world == 1:
            teacher_lp = seq_logps(self.model, mbs[0], True)
            self.delta = update_delta(self.delta, v.beta * (teacher_lp.detach() - student_lp), v.delta_momentum)
            loss, metrics = bco_loss(teacher_lp, student_lp, rewards, beta=v.beta, delta=self.delta)
            loss.backward()
        else:
            # Exact micro-batching (and data parallelism): the loss couples all sequences only
            # through L_T, so take dL/dL_T on the whole (global) batch first, then backprop
            # sum(g * L_T) one micro-batch at a time.
            with torch.no_grad():
                teacher_lp = torch.cat([seq_logps(self.model, idx, True) for idx in mbs])
            everyone = [dist.cat(t) for t in (teacher_lp, student_lp, rewards, in_loss)]  # [N] each, rank order
            all_teacher, all_student, all_rewards, all_in = everyone[0], everyone[1], everyone[2], everyone[3] > 0.5
            self.delta = update_delta(self.delta, v.beta * (all_teacher - all_student)[all_in], v.delta_momentum)
            leaf = all_teacher.clone().requires_grad_(True)
            loss, metrics = bco_loss(leaf[all_in], all_student[all_in], all_rewards[all_in], beta=v.beta, delta=self.delta)
            (grad,) = torch.autograd.grad(loss, leaf)
            offset = sum(dist.objects(len(samples))[: dist.rank])
            grad = grad[offset : offset + len(samples)] * dist.world  # FSDP averages gradients over ranks
            for idx in mbs:
                lp = seq_logps(self.model, idx, True)
                (grad[idx[0] : idx[-1] + 1] * lp).sum().backward()
        metrics |= {f"estep/{k.split('/', 1)[1]}": val for k, val in self._optimizer_step(True, lr_scale=v.e_lr_scale, advance_schedule=False).items()}
        self.e_steps += 1
        metrics["estep/samples"] = float(n_active)
        metrics["estep/count"] = float(self.e_steps)
        metrics["time/estep"] = time.perf_counter() - t_start
        return metrics

    def grpo_step(self, samples: list[Sample], contexts: list[TeacherContext] | None = None) -> dict[str, float]:
        """PPO-clipped policy gradient; with contexts, the hybrid advantage
        lam * A_GRPO + (1 - lam) * sg(log q(y_t | c) - log pi(y_t | s)) per token."""
        g, chunk = self.p.grpo, self.p.train.logit_chunk
        rewards = torch.tensor([s.reward for s in samples], dtype=torch.float32)
        adv_seq = grpo_advantages(rewards, torch.tensor([s.group for s in samples]))
        weights = [_agg_weight(len(s.rollout.response_ids), True, self.p.distill.loss_agg) for s in samples]
        total = self.dist.sum([sum(weights)])[0]
        norm = max(total, 1e-12) / self.dist.world  # as in the M-step
        sums = _Sums()
        t_teacher = t_update = 0.0
        self.optimizer.zero_grad(set_to_none=True)
        for idx in self._micro_batches(len(samples)):
            student = self._pack([samples[i].rollout.prompt_ids for i in idx], [samples[i] for i in idx])
            t0 = time.perf_counter()
            logps = token_logprobs(self.model, student, chunk)
            old = self._old_logps(logps, [samples[i] for i in idx], student)
            adv = adv_seq[idx].to(self.device)
            mask = student.response_mask
            if contexts is not None:
                t1 = time.perf_counter()
                teacher = self._pack([contexts[i].prompt_ids for i in idx], [samples[i] for i in idx])
                with torch.no_grad():
                    teacher_lp = token_logprobs(self.model, teacher, chunk)
                t_teacher += time.perf_counter() - t1
                active = torch.tensor([float(contexts[i].active) for i in idx], device=self.device)[:, None]
                lam = self.p.hybrid.lam
                adv = lam * adv[:, None] + (1 - lam) * (teacher_lp - logps.detach()) * active  # [b, T]
            loss, m = grpo_loss(
                logps, old, adv, mask, eps_low=g.eps_low, eps_high=g.eps_high, loss_agg=self.p.distill.loss_agg
            )
            (loss * (sum(weights[i] for i in idx) / norm)).backward()
            sums.add(m, mask)
            t_update += time.perf_counter() - t0
        t0 = time.perf_counter()
        metrics = self._optimizer_step(update=True)
        metrics |= sums.result("grpo", self.dist)
        metrics["time/teacher_scoring"] = t_teacher
        metrics["time/update"] = t_update + time.perf_counter() - t0
        return metrics

    # ------------------------------------------------------------------ internals

    def _autocast(self):
        """bf16 matmuls in the decoder (fp32 master weights, optimizer state and lm head).

        No cast cache: under FSDP2 a no-grad forward (teacher scoring) followed by a forward
        with gradients in one autocast region reused stale bf16 weight casts and corrupted
        the gradients (78% off in tests/test_distributed.py); each forward casts afresh.
        """
        enabled = self.p.train.mixed_precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled, cache_enabled=False)

    def _micro_batches(self, n: int):
        mb = self.p.train.micro_batch_size
        for start in range(0, n, mb):
            yield list(range(start, min(n, start + mb)))

    def _pack(self, prompts: list[list[int]], samples: list[Sample]) -> Packed:
        return pack(prompts, [s.rollout.response_ids for s in samples], self.pad_id, self.device)

    def _old_logps(self, logps: torch.Tensor | None, samples: list[Sample], packed: Packed) -> torch.Tensor:
        if self.p.train.old_logps == "recompute":
            # One update per batch: the policy before the update is the current one.
            return logps.detach()
        return pad_right([s.rollout.sampler_logps for s in samples], packed.response_len).to(self.device)

    @torch.no_grad()
    def _teacher_hidden(self, teacher: Packed) -> list[tuple[torch.Tensor, torch.nn.Module, float]]:
        """(hidden [b, T, H], lm head, weight) terms whose weighted logits sum to the teacher's logits."""
        if self.p.algorithm == "sdpo":
            kind = self.p.sdpo.teacher
            if kind == "ema":
                return [(response_hidden(self.ema, teacher), lm_head(self.ema), 1.0)]
            if kind == "frozen":
                return [(response_hidden(self.initial, teacher), lm_head(self.initial), 1.0)]
            r = self.p.sdpo.trust_region_mix  # logits lerp(initial, current, r)
            return [
                (response_hidden(self.initial, teacher), lm_head(self.initial), 1.0 - r),
                (response_hidden(self.model, teacher), lm_head(self.model), r),
            ]
        return [(response_hidden(self.model, teacher), lm_head(self.model), 1.0)]  # VPD: the live network

    def _optimizer_step(self, update: bool, lr_scale: float = 1.0, advance_schedule: bool = True) -> dict[str, float]:
        """Clip, step AdamW (lr scaled for E-steps), and advance the schedule on training steps only."""
        if not update:  # nothing to learn from (every sample masked): no AdamW moment or decay update
            self.optimizer.zero_grad(set_to_none=True)
            if advance_schedule:
                with warnings.catch_warnings():  # stepping the schedule without an optimizer step is intended
                    warnings.simplefilter("ignore", UserWarning)
                    self.scheduler.step()
            return {"train/grad_norm": 0.0, "train/skipped_update": 1.0}
        clip = self.p.optim.grad_clip
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else float("inf"))
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP: a DTensor
        with _scaled_lr(self.optimizer, lr_scale):
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if advance_schedule:
            self.scheduler.step()
        return {"train/grad_norm": float(norm), "train/skipped_update": 0.0}

    @torch.no_grad()
    def _update_ema(self) -> None:
        rate = self.p.sdpo.ema_rate
        for e, p in zip(self.ema.parameters(), self.model.parameters()):
            e.lerp_(p, rate)


# ---------------------------------------------------------------------- metrics helpers


def _check_groups(samples: list[Sample]) -> None:
    if not samples:
        raise ValueError("empty batch")
    seen, last = set(), None
    for s in samples:
        if s.group != last:
            if s.group in seen:
                raise ValueError(f"samples of group {s.group} are not contiguous")
            seen.add(s.group)
            last = s.group


def _agg_weight(n_tokens: int, active: bool, agg: str) -> float:
    if not active or n_tokens == 0:
        return 0.0
    return float(n_tokens) if agg == "token-mean" else 1.0


@contextmanager
def _scaled_lr(optimizer, scale: float):
    saved = [g["lr"] for g in optimizer.param_groups]
    for g in optimizer.param_groups:
        g["lr"] = g["lr"] * scale
    try:
        yield
    finally:
        for g, lr in zip(optimizer.param_groups, saved):
            g["lr"] = lr


class _Sums:
    """Token-weighted accumulation of per-micro-batch metrics."""

    def __init__(self):
        self.tokens = 0.0
        self.values: dict[str, float] = {}
        self.ent_sum = 0.0
        self.ent_tokens = 0.0

    def add(self, m: dict[str, float], mask: torch.Tensor, ent=None, full_mask=None) -> None:
        n = float(mask.sum())
        self.tokens += n
        for k, v in m.items():
            if k.endswith("/tokens"):
                continue
            self.values[k] = self.values.get(k, 0.0) + v * n
        if ent is not None:
            self.ent_sum += float((ent * full_mask).sum())
            self.ent_tokens += float(full_mask.sum())

    def result(self, prefix: str, dist: Dist = SINGLE) -> dict[str, float]:
        """Token-weighted means over the global batch (every rank must call this)."""
        keys = sorted(self.values)
        tokens, ent_sum, ent_tokens, *values = dist.sum([self.tokens, self.ent_sum, self.ent_tokens,
                                                         *(self.values[k] for k in keys)])
        out = {k: v / max(tokens, 1.0) for k, v in zip(keys, values)}
        out[f"{prefix}/tokens"] = tokens
        if ent_tokens:
            out["student/entropy"] = ent_sum / ent_tokens
        return out


def batch_metrics(samples: list[Sample], dist: Dist = SINGLE) -> dict[str, float]:
    """Reward and length statistics of the global batch (groups are keyed by rank)."""
    mine = [(s.group, s.reward, len(s.rollout.response_ids), s.rollout.finish_reason == "length") for s in samples]
    rows = [(rank, *row) for rank, part in enumerate(dist.objects(mine)) for row in part]
    rewards = torch.tensor([r[2] for r in rows], dtype=torch.float32)
    lengths = torch.tensor([r[3] for r in rows], dtype=torch.float32)
    groups: dict[tuple[int, int], list[float]] = {}
    for rank, group, reward, _, _ in rows:
        groups.setdefault((rank, group), []).append(reward)
    return {
        "reward/mean": rewards.mean().item(),
        "reward/pass_rate": sum(max(r) >= 0.5 for r in groups.values()) / len(groups),
        "reward/solve_all_rate": sum(min(r) >= 0.5 for r in groups.values()) / len(groups),
        "response/length_mean": lengths.mean().item(),
        "response/length_max": lengths.max().item(),
        "response/truncated_frac": sum(r[4] for r in rows) / len(rows),
        "batch/samples": float(len(rows)),
    }


def context_metrics(contexts: list[TeacherContext], dist: Dist = SINGLE) -> dict[str, float]:
    n, sibling, feedback, masked, truncated = dist.sum([
        len(contexts),
        sum(c.sibling is not None for c in contexts),
        sum(c.used_feedback for c in contexts),
        sum(not c.active for c in contexts),
        sum(c.truncated for c in contexts),
    ])
    return {"context/with_sibling": sibling / n, "context/with_feedback": feedback / n,
            "context/masked": masked / n, "context/truncated": truncated / n}
