"""Atomic checkpoints: model (a loadable HF directory), optimizer, schedule, step, delta, RNG.

A checkpoint is built in a temporary directory next to its final place and
renamed into place, so a crash leaves either the old state or the new one,
never half of a checkpoint. `latest` is a one-line file replaced atomically.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file

from .distributed import full_optimizer_state, full_state_dict, load_full_state_dict, load_optimizer_state
from .fileio import write_text_atomic
from .rng import rng_state, set_rng_state

STEP_PREFIX = "step-"


def checkpoint_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:06d}"


def save_checkpoint(trainer, root: str | Path, keep: int | None = None) -> Path:
    """Every rank calls this (sharded state is gathered); rank 0 writes. Full tensors keyed by
    name, so a checkpoint written by N processes resumes on any number."""
    dist = trainer.dist
    root = Path(root)
    final = root / checkpoint_name(trainer.step)
    model_state = full_state_dict(trainer.model)
    optimizer_state = full_optimizer_state(trainer.model, trainer.optimizer)
    ema_state = full_state_dict(trainer.ema) if trainer.ema is not None else None
    # each rank's own replay buffer (its slice of the groups) and RNG streams
    ranks = dist.objects({"e_buffer": list(trainer.e_buffer), "rng": rng_state()})
    if dist.is_main:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".tmp-{final.name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        trainer.model.save_pretrained(tmp / "model", state_dict=model_state)
        trainer.tokenizer.save_pretrained(tmp / "model")
        state = {
            "step": trainer.step,
            "e_steps": trainer.e_steps,
            "delta": trainer.delta,
            "optimizer": optimizer_state,
            "scheduler": trainer.scheduler.state_dict(),
            "ema": ema_state,
            "ranks": ranks,
            "params": trainer.p.model_dump(mode="json"),
        }
        torch.save(state, tmp / "trainer_state.pt")
        if final.exists():  # re-saving the same step (e.g. a resumed run): swap atomically-ish
            old = root / f".old-{final.name}-{os.getpid()}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
        write_text_atomic(root / "latest", final.name + "\n")
        if keep is not None:
            prune_checkpoints(root, keep)
    dist.barrier()  # no rank runs ahead of a checkpoint it may need to resume from
    return final


def list_checkpoints(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX))


def latest_checkpoint(root: str | Path) -> Path | None:
    """The checkpoint named by `latest` (or the highest complete step directory)."""
    root = Path(root)
    pointer = root / "latest"
    if pointer.is_file():
        p = root / pointer.read_text().strip()
        if (p / "trainer_state.pt").is_file():
            return p
    done = [p for p in list_checkpoints(root) if (p / "trainer_state.pt").is_file()]
    return done[-1] if done else None


def prune_checkpoints(root: Path, keep: int) -> None:
    for p in list_checkpoints(root)[:-keep]:
        shutil.rmtree(p)


def _load_model_weights(model, model_dir: Path) -> None:
    state = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        state.update(load_file(f))
    expected = set(model.state_dict())
    tied = getattr(model.config, "tie_word_embeddings", False)
    missing = [k for k in expected - set(state) if not (tied and k.endswith("lm_head.weight"))]
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise RuntimeError(f"{model_dir}: checkpoint does not match the model (missing {sorted(missing)}, unexpected {unexpected})")
    load_full_state_dict(model, state)


def load_checkpoint(trainer, path: str | Path) -> None:
    """Restore a trainer built from the base model to the state saved at `path` (every rank calls it)."""
    path = Path(path)
    dist = trainer.dist
    _load_model_weights(trainer.model, path / "model")
    state = torch.load(path / "trainer_state.pt", weights_only=False)
    load_optimizer_state(trainer.model, trainer.optimizer, state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.step = state["step"]
    trainer.e_steps = state["e_steps"]
    trainer.delta = state["delta"]
    if trainer.ema is not None and state["ema"] is not None:
        load_full_state_dict(trainer.ema, state["ema"])
    trainer.e_buffer.clear()
    ranks = state["ranks"]
    if len(ranks) == dist.world:
        trainer.e_buffer.extend(ranks[dist.rank]["e_buffer"])
        set_rng_state(ranks[dist.rank]["rng"])
    else:
        # Resumed on a different number of processes: the per-rank replay buffers and RNG streams
        # do not map onto the new ranks. The next E-step sees only steps taken after the resume.
        warnings.warn(f"{path}: saved by {len(ranks)} process(es), resumed on {dist.world}; "
                      "E-step replay buffer and RNG state start fresh", stacklevel=2)
