"""Atomic checkpoints: model (a loadable HF directory), optimizer, schedule, step, delta, RNG.

A checkpoint is built in a temporary directory next to its final place and
renamed into place, so a crash leaves either the old state or the new one,
never half of a checkpoint. `latest` is a one-line file replaced atomically.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from .fileio import write_text_atomic

STEP_PREFIX = "step-"


def checkpoint_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:06d}"


def save_checkpoint(trainer, root: str | Path, keep: int | None = None) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(trainer.step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    trainer.model.save_pretrained(tmp / "model")
    trainer.tokenizer.save_pretrained(tmp / "model")
    state = {
        "step": trainer.step,
        "e_steps": trainer.e_steps,
        "delta": trainer.delta,
        "e_buffer": list(trainer.e_buffer),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "python": random.getstate(),
            "numpy": np.random.get_state(),
        },
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
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = getattr(model.config, "tie_word_embeddings", False)
    missing = [k for k in missing if not (tied and k.endswith("lm_head.weight"))]
    if missing or unexpected:
        raise RuntimeError(f"{model_dir}: checkpoint does not match the model (missing {missing}, unexpected {unexpected})")


def load_checkpoint(trainer, path: str | Path) -> None:
    """Restore a trainer built from the base model to the state saved at `path`."""
    path = Path(path)
    _load_model_weights(trainer.model, path / "model")
    state = torch.load(path / "trainer_state.pt", weights_only=False)
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.step = state["step"]
    trainer.e_steps = state["e_steps"]
    trainer.delta = state["delta"]
    trainer.e_buffer.clear()
    trainer.e_buffer.extend(state["e_buffer"])
    if trainer.ema is not None and state["ema"] is not None:
        trainer.ema.load_state_dict(state["ema"])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
