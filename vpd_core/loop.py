"""The training loop on one machine: rollouts -> verification -> trainer step -> checkpoint.

A plain function so it runs from the command line, a notebook or a test; the
orchestration layer calls the same pieces one step at a time.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Callable

import torch

from . import arithmetic
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .config import Params
from .fileio import read_jsonl, write_jsonl_atomic
from .models import load_model, load_tokenizer, resolve_model_path
from .rollout import HFRolloutEngine, SamplingParams
from .sequences import Sample, chat_prompt_ids
from .trainer import Trainer


def step_seed(seed: int, step: int) -> int:
    """A distinct, reproducible seed per step (independent of how many steps ran in this process)."""
    return (seed * 1_000_003 + step * 7919) % (2**31)


def select_problems(problems: list, k: int, seed: int, step: int) -> list:
    return random.Random(step_seed(seed, step)).sample(problems, k=min(k, len(problems)))


def run_training(params: Params, log: Callable[[str], None] = print) -> Path:
    """Train for params.train.steps steps, resuming from the run directory's latest checkpoint."""
    run_dir = Path(params.run_dir)
    ckpt_dir = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.jsonl"
    torch.manual_seed(params.seed)

    model_path = resolve_model_path(params.model.path, params.model.cache_dir)
    tok = load_tokenizer(model_path)
    model = load_model(model_path, params.model.dtype)
    model.train()
    trainer = Trainer(model, tok, params)
    latest = latest_checkpoint(ckpt_dir)
    if latest is not None:
        load_checkpoint(trainer, latest)
        log(f"resumed from {latest} (step {trainer.step})")
    rows = [r for r in read_jsonl(metrics_path) if r["train/step"] <= trainer.step]

    problems = arithmetic.make_problems(params.data.num_problems, params.data.max_operand, params.seed)
    engine = HFRolloutEngine(model, tok, batch_size=params.rollout.batch_size)
    r = params.rollout
    if trainer.step >= params.train.steps:
        log(f"{run_dir}: already at step {trainer.step} of {params.train.steps}; nothing to do")
    while trainer.step < params.train.steps:
        t0 = time.perf_counter()
        batch = select_problems(problems, r.problems_per_step, params.seed, trainer.step)
        prompts = [chat_prompt_ids(tok, list(p.messages)) for p in batch]
        sampling = SamplingParams(r.temperature, r.top_p, r.max_new_tokens, step_seed(params.seed, trainer.step))
        rollouts = engine.generate(prompts, r.group_size, sampling)
        t1 = time.perf_counter()
        samples = []
        for i, ro in enumerate(rollouts):
            problem = batch[i // r.group_size]
            reward, feedback = arithmetic.verify(problem, ro.text, truncated=ro.finish_reason == "length")
            samples.append(Sample(messages=list(problem.messages), rollout=ro, group=i // r.group_size,
                                  reward=reward, feedback=feedback, problem_id=problem.id))
        t2 = time.perf_counter()
        metrics = trainer.train_step(samples)
        metrics["time/rollout"] = t1 - t0
        metrics["time/execution"] = t2 - t1
        metrics["time/step"] = time.perf_counter() - t0
        rows.append(metrics)
        write_jsonl_atomic(metrics_path, rows)
        if trainer.step % params.train.checkpoint_every == 0 or trainer.step == params.train.steps:
            save_checkpoint(trainer, ckpt_dir, keep=params.train.keep_checkpoints)
        log(format_metrics(metrics))
    return run_dir


def format_metrics(m: dict[str, float]) -> str:
    parts = [f"step {int(m['train/step'])}", f"reward {m['reward/mean']:.3f}", f"pass {m['reward/pass_rate']:.2f}"]
    if "distill/divergence" in m:
        parts.append(f"div {m['distill/divergence']:.4f}")
    if "grpo/loss" in m:
        parts.append(f"grpo {m['grpo/loss']:.4f}")
    if "estep/loss" in m:
        parts.append(f"E-step loss {m['estep/loss']:.4f} acc {m['estep/accuracy']:.2f} delta {m['estep/delta']:.4f}")
    parts.append(f"{m['time/step']:.1f}s")
    return " | ".join(parts)
