"""One trainer-step API for VPD, SDPO, GRPO and the hybrid.

The trainer owns the model, optimizer, LR schedule, step counter, the running
delta of the E-step and any extra teacher weights (EMA / initial copy). A step
takes verified samples (`Sample`s, grouped by problem) and returns a flat dict
of metrics for the orchestration layer to log.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from collections import deque
from contextlib import contextmanager

import torch

from .config import Params
from .distributed import SINGLE, Dist, reshard, shard
from .fused import fuse
from .logprobs import entropy_from_logits, gather_logps, head_logits, lm_head, response_hidden, token_logprobs
from .losses import (
    bco_loss,
    distillation_loss_from_per_token,
    distillation_per_token,
    grpo_advantages,
    importance_weights,
    masked_mean,
    ppo_metrics,
    ppo_per_token,
    sequence_logprob,
    update_delta,
)
from .sequences import Packed, Sample, pack, pad_right
from .teacher import TeacherContext, build_teacher_contexts, check_contexts


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



class TrainingDiverged(RuntimeError):
    """A step produced non-finite gradients or weights; the run stops before writing anything of it."""

def set_checkpointing(model, on: bool) -> None:
    """Activation checkpointing of the decoder layers on or off (non-reentrant: works with frozen
    inputs and with FSDP); toggling only flips the layers' flag, so it can change per update."""
    if not on:
        if hasattr(model, "activation_checkpointing_disable"):
            model.activation_checkpointing_disable()
        else:
            model.gradient_checkpointing_disable()
        return
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # the name from transformers 5.2x on
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def checkpointing_on(model) -> bool:
    """Whether the decoder layers are recomputed in backward now (set_checkpointing's flag)."""
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


@contextmanager
def checkpointing(model, on: bool):
    """Activation checkpointing for the duration of one update (model.gradient_checkpointing: e_step)."""
    if not on:
        yield
        return
    set_checkpointing(model, True)
    try:
        yield
    finally:
        set_checkpointing(model, False)


class Trainer:
    """With `dist` of several ranks, `model` (not yet sharded) is sharded with FSDP2 here, and
    each rank's `train_step` gets its own slice of the step's groups."""

    def __init__(self, model, tokenizer, params: Params, dist: Dist = SINGLE):
        self.model = model
        self.tokenizer = tokenizer
        self.p = params
        self.dist = dist
        self.pad_id = tokenizer.pad_token_id
        self.temperature = params.rollout.temperature  # every training log-prob is taken at it
        self.device = next(model.parameters()).device
        # Extra weights only where the method needs them: one copy of the model each.
        needs_initial = (params.algorithm == "vpd" and params.vpd.prior == "initial") or (
            params.algorithm == "sdpo" and params.sdpo.teacher in ("frozen", "trust-region")
        )
        self.initial = self._frozen_copy() if needs_initial else None
        self.ema = self._frozen_copy() if params.algorithm == "sdpo" and params.sdpo.teacher == "ema" else None
        if params.model.gradient_checkpointing is True:
            set_checkpointing(model, True)
        if params.model.fused_layers:  # the trained model only: the frozen copies keep nothing for backward
            fuse(model)
        if dist.world > 1:  # after copying and checkpointing, before the optimizer sees the parameters
            for m in (model, self.initial, self.ema):
                if m is not None:
                    shard(m)
        o = params.optim
        # fused: one kernel over all parameters (CPU and CUDA): 5x faster per step than the
        # per-parameter loop that is the default on CPU (benchmarks/adamw.py)
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay, fused=True
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(o.schedule, o.warmup_steps, params.train.steps)
        )
        self.step = 0  # completed training steps (M-steps for VPD/SDPO)
        self.in_progress = 1  # the step being taken (error messages)
        self.e_steps = 0
        self.delta: float | None = None  # running mean of the E-step implicit reward
        self.e_buffer: deque[list[Sample]] = deque(maxlen=params.vpd.e_every)

    def _frozen_copy(self):
        m = copy.deepcopy(self.model)
        m.requires_grad_(False)
        return m.eval()

    # ------------------------------------------------------------------ public step API

    def train_step(self, samples: list[Sample]) -> dict[str, float]:
        """One training step of the configured algorithm on a batch of verified samples:
        `train.mini_batches` optimizer updates (whole problem groups each), then an E-step
        every F steps (VPD).

        With several ranks and several updates, an update's groups may be spread over ranks:
        the step's samples are gathered, contexts and advantages computed on whole groups, and
        every rank trains on an equal share of each mini-batch's sequences (as verl does).
        """
        _check_groups(samples)
        self.in_progress = self.step + 1  # the step errors name (the E-step runs after self.step advanced)
        metrics = batch_metrics(samples, self.dist)
        algo = self.p.algorithm
        if self.dist.world > 1 and self.p.train.mini_batches > 1:
            work = global_batch(samples, self.dist)
            parts = [rank_share(idx, self.dist) for idx in self._mini_batches(work)]
        else:
            work, parts = samples, self._mini_batches(samples)
        contexts = None
        advantages = grpo_advantages(torch.tensor([s.reward for s in work], dtype=torch.float32),
                                     torch.tensor([s.group for s in work]))  # [N], over whole groups
        updates = []
        with self._autocast():
            if algo != "grpo":
                contexts = build_teacher_contexts(work, self.tokenizer, self.p.teacher, self.p.feedback)
                check_contexts(work, contexts, self.p.feedback)
                metrics |= context_metrics(contexts if work is samples else [contexts[i] for p in parts for i in p],
                                           self.dist)
            old = self._recomputed_old_logps(work, parts)
            for idx in parts:
                sub = [work[i] for i in idx]
                sub_ctx = None if contexts is None else [contexts[i] for i in idx]
                sub_old = None if old is None else [old[i] for i in idx]
                if algo in ("vpd", "sdpo"):
                    updates.append(self.m_step(sub, sub_ctx, sub_old))
                else:  # grpo, or hybrid with the teacher's per-token advantage
                    updates.append(self.grpo_step(sub, sub_ctx, sub_old, advantages[idx]))
        metrics |= merge_update_metrics(updates)
        with warnings.catch_warnings():  # the schedule also advances when every update was skipped
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()
        reshard(self.model, self.ema, self.initial)  # plain (unsharded) root tensors must not outlive the step
        self.step += 1
        if algo == "sdpo" and self.ema is not None:
            self._update_ema()  # once per rollout batch, after all its updates (as SDPO)
        if algo == "vpd":
            self.e_buffer.append(samples)
            if self.step % self.p.vpd.e_every == 0:
                batch = samples if self.p.vpd.e_buffer == "current" else [s for b in self.e_buffer for s in b]
                with self._autocast(), checkpointing(self.model, self.p.model.gradient_checkpointing == "e_step"):
                    metrics |= self.e_step(batch)
                reshard(self.model, self.initial)
        self._check_finite_weights()
        metrics["train/step"] = float(self.step)
        metrics["train/lr"] = self.scheduler.get_last_lr()[0]
        return metrics

    @torch.no_grad()
    def _check_finite_weights(self) -> None:
        """Stop before the step's metrics or checkpoint are written if an update made any weight
        non-finite (an infinite learning rate would otherwise checkpoint NaN tensors as `latest`)."""
        bad = next((name for name, w in self.model.named_parameters()
                    if not bool(torch.isfinite(w.to_local() if hasattr(w, "to_local") else w).all())), None)
        bad = next((b for b in self.dist.objects(bad) if b is not None), None)  # every rank stops together
        if bad is not None:
            raise TrainingDiverged(f"step {self.in_progress}: parameter {bad} is non-finite after the update; stopping "
                                   "before this step's metrics or checkpoint are written (lower optim.lr?)")

    def m_step(self, samples: list[Sample], contexts: list[TeacherContext],
               old_logps: list[list[float]] | None = None) -> dict[str, float]:
        """One update: distil sg(teacher | context) into the student on the student's own rollouts.

        old_logps: pi_old per sample when it is neither the sampler's nor the current policy
        (a later mini-batch with train.old_logps: recompute).

        The lm head runs chunk by chunk over response positions and each chunk's
        loss is back-propagated to the final hidden states at once, so [b, chunk, V]
        logits never outlive their chunk and nothing is recomputed; the decoder then
        gets one backward pass per micro-batch.
        """
        d, chunk, temp = self.p.distill, self.p.train.logit_chunk, self.temperature
        active = [c.active for c in contexts]
        mbs = list(self._micro_batches(len(samples)))
        weights, total = self._loss_weights(samples, active, mbs)
        norm = max(total, 1e-12) / self.dist.world  # FSDP averages gradients over ranks: undo it
        sums = _Sums()
        t_teacher = t_update = 0.0
        head = lm_head(self.model)
        self.optimizer.zero_grad(set_to_none=True)
        for idx in mbs:
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
            old = self._old_logps(None, [samples[i] for i in idx], student, old_logps, idx)  # None: pi_old = pi
            divs, ents, ws = [], [], []
            t_head = 0.0  # teacher lm-head time inside the chunk loop
            for a in range(0, student.response_len, chunk):
                sl = slice(a, a + chunk)
                t1 = time.perf_counter()
                with torch.no_grad():
                    t_logits = sum(w * head_logits(hd, th[:, sl], temp) for th, hd, w in teacher_parts)  # [b, c, V]
                t_head += time.perf_counter() - t1
                s_logits = head_logits(head, h_leaf[:, sl], temp)  # [b, c, V]
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

        def seq_logps(model, idx, use_context: bool, keep_graph: bool = False) -> torch.Tensor:  # [b]
            prompts = [(contexts[i].prompt_ids if use_context else samples[i].rollout.prompt_ids) for i in idx]
            packed = self._pack(prompts, [samples[i] for i in idx])
            lp = token_logprobs(model, packed, self.p.train.logit_chunk, self.temperature, recompute_head=keep_graph)
            return sequence_logprob(lp, packed.response_mask, v.reward_agg)

        with torch.no_grad():
            student_lp = torch.cat([seq_logps(prior, idx, False) for idx in mbs])
        self.optimizer.zero_grad(set_to_none=True)
        one_pass = self._one_teacher_pass(mbs, [len(c.prompt_ids) + len(s.rollout.response_ids)
                                                for c, s in zip(contexts, samples)])
        with torch.set_grad_enabled(one_pass):
            teacher_lp = torch.cat([seq_logps(self.model, idx, True, keep_graph=len(mbs) > 1) for idx in mbs])
        everyone = [dist.cat(t) for t in (teacher_lp.detach(), student_lp, rewards, in_loss)]  # [N] each, rank order
        all_teacher, all_student, all_rewards, all_in = everyone[0], everyone[1], everyone[2], everyone[3] > 0.5
        self.delta = update_delta(self.delta, v.beta * (all_teacher - all_student)[all_in], v.delta_momentum)
        leaf = all_teacher.clone().requires_grad_(True)
        loss, metrics = bco_loss(leaf[all_in], all_student[all_in], all_rewards[all_in], beta=v.beta, delta=self.delta)
        (grad,) = torch.autograd.grad(loss, leaf)
        offset = sum(dist.objects(len(samples))[: dist.rank])
        grad = grad[offset : offset + len(samples)] * dist.world  # FSDP averages gradients over ranks
        if one_pass:
            (grad * teacher_lp).sum().backward()
        else:
            for idx in mbs:
                lp = seq_logps(self.model, idx, True)
                (grad[idx[0] : idx[-1] + 1] * lp).sum().backward()
        metrics |= {f"estep/{k.split('/', 1)[1]}": val for k, val in self._optimizer_step(True, lr_scale=v.e_lr_scale).items()}
        self.e_steps += 1
        metrics["estep/samples"] = float(n_active)
        metrics["estep/teacher_passes"] = 1.0 if one_pass else 2.0
        metrics["estep/count"] = float(self.e_steps)
        metrics["time/estep"] = time.perf_counter() - t_start
        return metrics

    def _one_teacher_pass(self, mbs: list[list[int]], lengths: list[int]) -> bool:
        """Whether the E-step scores the teacher once, keeping every micro-batch's graph until the
        backward. The BCO loss couples all sequences through L_T (delta, the class means), so
        dL/dL_T needs the whole (global) batch before any backward. The graphs can wait when the
        decoder layers are recomputed in backward: each then holds its layers' inputs (the lm head
        is recomputed too), layers x padded tokens x hidden x bytes, allowed up to
        train.e_step_keep_gib (the paper's 8k-token responses would need tens of GB). Otherwise,
        and under FSDP (whose shards are gathered per forward), a no-grad pass comes first and
        each micro-batch runs again with gradients."""
        if self.dist.world > 1:
            return False
        if len(mbs) == 1:
            return True
        cfg = self.model.config
        hidden, layers = getattr(cfg, "hidden_size", None), getattr(cfg, "num_hidden_layers", None)
        if not (hidden and layers and checkpointing_on(self.model)):
            return False  # a config that does not say its shape is not guessed at
        kept = (sum(len(idx) * max(lengths[i] for i in idx) for idx in mbs)  # padded tokens
                * hidden * layers * next(self.model.parameters()).element_size())
        return kept <= self.p.train.e_step_keep_gib * 2**30

    def grpo_step(self, samples: list[Sample], contexts: list[TeacherContext] | None = None,
                  old_logps: list[list[float]] | None = None, advantages: torch.Tensor | None = None
                  ) -> dict[str, float]:
        """One PPO-clipped policy-gradient update; with contexts, the hybrid advantage
        lam * A_GRPO + (1 - lam) * sg(log q(y_t | c) - log pi(y_t | s)) per token.
        advantages [b]: A_GRPO when the samples are not whole groups (default: from their groups)."""
        g, chunk, temp = self.p.grpo, self.p.train.logit_chunk, self.temperature
        rewards = torch.tensor([s.reward for s in samples], dtype=torch.float32)
        adv_seq = grpo_advantages(rewards, torch.tensor([s.group for s in samples])) if advantages is None else advantages
        mbs = list(self._micro_batches(len(samples)))
        weights, total = self._loss_weights(samples, [True] * len(samples), mbs)
        norm = max(total, 1e-12) / self.dist.world  # as in the M-step
        sums = _Sums()
        t_teacher = t_update = 0.0
        self.optimizer.zero_grad(set_to_none=True)
        for idx in mbs:
            student = self._pack([samples[i].rollout.prompt_ids for i in idx], [samples[i] for i in idx])
            t0 = time.perf_counter()
            logps = token_logprobs(self.model, student, chunk, temp)
            old = self._old_logps(logps, [samples[i] for i in idx], student, old_logps, idx)
            adv = adv_seq[idx].to(self.device)
            mask = student.response_mask
            if contexts is not None:
                t1 = time.perf_counter()
                teacher = self._pack([contexts[i].prompt_ids for i in idx], [samples[i] for i in idx])
                with torch.no_grad():
                    teacher_lp = token_logprobs(self.model, teacher, chunk, temp)
                t_teacher += time.perf_counter() - t1
                active = torch.tensor([float(contexts[i].active) for i in idx], device=self.device)[:, None]
                lam = self.p.hybrid.lam
                adv = lam * adv[:, None] + (1 - lam) * (teacher_lp - logps.detach()) * active  # [b, T]
            per_token, ratio, clipped = ppo_per_token(logps, old, adv, eps_low=g.eps_low, eps_high=g.eps_high,
                                                      dual_clip=g.dual_clip)
            n_tokens = mask.sum(-1).clamp(min=1.0)  # [b]
            coef = mask * (torch.tensor([weights[i] for i in idx], device=self.device) / norm / n_tokens)[:, None]
            (per_token * coef).sum().backward()
            loss = masked_mean(per_token.detach(), mask, self.p.distill.loss_agg)
            sums.add(ppo_metrics(loss, ratio.detach(), clipped, adv.detach(), mask), mask)
            t_update += time.perf_counter() - t0
        t0 = time.perf_counter()
        metrics = self._optimizer_step(update=total > 0)
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

    def _mini_batches(self, samples: list[Sample]) -> list[list[int]]:
        """Indices of each update's samples: train.mini_batches equal shares of whole groups, in order."""
        m = self.p.train.mini_batches
        bounds = [i for i in range(len(samples)) if i == 0 or samples[i].group != samples[i - 1].group]
        if len(bounds) % m:
            raise ValueError(f"a batch of {len(bounds)} problem groups cannot be split into "
                             f"train.mini_batches={m} updates of whole groups")
        per = len(bounds) // m
        ends = [*bounds[per::per], len(samples)]
        return [list(range(a, b)) for a, b in zip([0, *ends[:-1]], ends)]

    def _loss_weights(self, samples: list[Sample], active: list[bool], mbs: list[list[int]]
                      ) -> tuple[list[float], float]:
        """Per-sample weights w_i and their global normaliser Z of the configured aggregation:
        loss = sum_i (w_i / Z) * mean_t(token losses of i) (see config.DistillParams.loss_agg)."""
        agg = self.p.distill.loss_agg
        n = [len(s.rollout.response_ids) if a else 0 for s, a in zip(samples, active)]
        if agg == "token-mean":
            weights = [float(k) for k in n]
            return weights, self.dist.sum([sum(weights)])[0]
        if agg == "seq-mean-token-mean":
            weights = [float(k > 0) for k in n]
            return weights, self.dist.sum([sum(weights)])[0]
        if agg == "trl":  # every sequence counts in the denominator, masked or not
            return [float(k > 0) for k in n], self.dist.sum([float(len(samples))])[0]
        # verl: a token mean inside each micro-batch, then the mean over micro-batches (and ranks)
        weights = [0.0] * len(samples)
        for idx in mbs:
            tokens = sum(n[i] for i in idx)
            for i in idx:
                weights[i] = n[i] / tokens if tokens else 0.0
        return weights, self.dist.sum([float(len(mbs))])[0]

    def _pack(self, prompts: list[list[int]], samples: list[Sample]) -> Packed:
        return pack(prompts, [s.rollout.response_ids for s in samples], self.pad_id, self.device)

    @torch.no_grad()
    def _recomputed_old_logps(self, samples: list[Sample], parts: list[list[int]]) -> list[list[float] | None] | None:
        """With train.old_logps: recompute and several updates per batch, pi_old is the policy before
        the first update: score every sample not in the first mini-batch now (the first needs none)."""
        if self.p.train.old_logps != "recompute" or len(parts) == 1:
            return None
        out: list[list[float] | None] = [None] * len(samples)
        later = [i for idx in parts[1:] for i in idx]
        for start in range(0, len(later), self.p.train.micro_batch_size):
            idx = later[start : start + self.p.train.micro_batch_size]
            packed = self._pack([samples[i].rollout.prompt_ids for i in idx], [samples[i] for i in idx])
            lp = token_logprobs(self.model, packed, self.p.train.logit_chunk, self.temperature).cpu()
            for row, i in enumerate(idx):
                out[i] = lp[row, : len(samples[i].rollout.response_ids)].tolist()
        return out

    def _old_logps(self, logps: torch.Tensor | None, samples: list[Sample], packed: Packed,
                   recomputed: list[list[float] | None] | None, idx: list[int]) -> torch.Tensor | None:
        """pi_old log-probs [b, T] of a micro-batch; None (M-step) or logps.detach() (PPO) when pi_old
        is the current policy: the first update of a batch with train.old_logps: recompute."""
        if self.p.train.old_logps == "sampler":
            return pad_right([s.rollout.sampler_logps for s in samples], packed.response_len).to(self.device)
        if recomputed is not None and recomputed[idx[0]] is not None:
            return pad_right([recomputed[i] for i in idx], packed.response_len).to(self.device)
        return None if logps is None else logps.detach()

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

    def _optimizer_step(self, update: bool, lr_scale: float = 1.0) -> dict[str, float]:
        """Clip and step AdamW (lr scaled for E-steps). The LR schedule advances once per rollout
        step (`train_step`), however many updates it makes."""
        if not update:  # nothing to learn from (every sample masked): no AdamW moment or decay update
            self.optimizer.zero_grad(set_to_none=True)
            return {"train/grad_norm": 0.0, "train/skipped_update": 1.0}
        clip = self.p.optim.grad_clip
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else float("inf"))
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP: a DTensor
        if not torch.isfinite(norm):  # the same all-reduced norm on every rank: all stop together
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(f"step {self.in_progress}: gradient norm is {float(norm)} (a non-finite loss or "
                                   "gradient); stopping before the update, with nothing of this step written")
        with _scaled_lr(self.optimizer, lr_scale):
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
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


def global_batch(samples: list[Sample], dist: Dist) -> list[Sample]:
    """Every rank's samples in rank order, with group numbers made unique across ranks."""
    out, offset = [], 0
    for part in dist.objects(samples):
        groups = {g: offset + k for k, g in enumerate(dict.fromkeys(s.group for s in part))}
        out.extend(dataclasses.replace(s, group=groups[s.group]) for s in part)
        offset += len(groups)
    return out


def rank_share(idx: list[int], dist: Dist) -> list[int]:
    """This rank's contiguous, equal share of one mini-batch's sample indices."""
    if len(idx) % dist.world:
        raise ValueError(f"a mini-batch of {len(idx)} sequences cannot be shared equally by {dist.world} processes")
    n = len(idx) // dist.world
    return idx[dist.rank * n : (dist.rank + 1) * n]


def merge_update_metrics(updates: list[dict[str, float]]) -> dict[str, float]:
    """One row for a step of several updates: times and token counts add up, the rest is averaged."""
    out: dict[str, float] = {}
    for key in updates[0]:
        values = [u[key] for u in updates if key in u]
        additive = key.startswith("time/") or key.endswith("/tokens")
        out[key] = sum(values) if additive else sum(values) / len(values)
    out["train/updates"] = float(sum(1.0 - u.get("train/skipped_update", 0.0) for u in updates))
    return out


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
        "reward/problems_solved": sum(max(r) >= 0.5 for r in groups.values()) / len(groups),
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
