"""The process's random streams (torch CPU and CUDA, Python, NumPy): capture, restore, protect."""

from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np
import torch


def rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }


def set_rng_state(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])


@contextmanager
def preserved_rng():
    """Whatever runs inside leaves the random streams as they were."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)
