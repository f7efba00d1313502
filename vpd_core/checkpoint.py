"""Atomic checkpoints: model (a loadable HF directory), optimizer, schedule, step, delta, RNG.

A checkpoint is built in a temporary directory next to its final place and
renamed into place, so a crash leaves either the old state or the new one,
never half of a checkpoint. `latest` is a one-line file replaced atomically.
Every checkpoint carries `manifest.json` (size and SHA-256 of each file): a resume
verifies it, and a checkpoint that fails to verify or load is reported and the run
falls back to the newest one that is intact. What a kill mid-write leaves behind
is cleaned up at the next start (`recover`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file

from .distributed import full_optimizer_state, full_state_dict, load_full_state_dict, load_optimizer_state
from .fileio import write_text_atomic
from .rng import rng_state, set_rng_state

STEP_PREFIX = "step-"
MANIFEST = "manifest.json"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names its path and the file."""


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
        write_text_atomic(tmp / MANIFEST, json.dumps(manifest(tmp), indent=1, sort_keys=True) + "\n")
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


def export_final(run_dir: str | Path) -> Path:
    """The latest checkpoint's weights and tokenizer, without optimizer state, as
    <run_dir>/final/model: what DVC caches per experiment (~0.5 GB for SmolLM2 in fp32, against
    3.2 GB for two resumable checkpoints) and what `vpd evaluate --checkpoint <run_dir>/final` reads.
    Files are hard links where the filesystem allows (no second copy on disk)."""
    run_dir = Path(run_dir)
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no checkpoint to export")
    verify_checkpoint(ckpt)
    final = run_dir / "final"
    tmp = run_dir / f".tmp-final-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)

    def link_or_copy(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(ckpt / "model", tmp / "model", copy_function=link_or_copy)
    write_text_atomic(tmp / "source", f"{ckpt.name}\n")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def resume_candidates(root: str | Path) -> list[Path]:
    """Complete-looking checkpoints to resume from, best first: the one `latest` names, then the
    others from the highest step down."""
    done = [p for p in reversed(list_checkpoints(root)) if (p / "trainer_state.pt").is_file()]
    first = latest_checkpoint(root)
    return ([first] if first is not None else []) + [p for p in done if p != first]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def manifest(directory: Path) -> dict[str, dict]:
    """{relative path: {"bytes", "sha256"}} for every file of a checkpoint directory."""
    files = sorted(f for f in directory.rglob("*") if f.is_file() and f.name != MANIFEST)
    return {str(f.relative_to(directory)): {"bytes": f.stat().st_size, "sha256": _sha256(f)} for f in files}


def verify_checkpoint(path: Path) -> None:
    """Every file the manifest lists is there, whole and unchanged. Checkpoints written before
    manifests existed are accepted as they are."""
    listed = path / MANIFEST
    if not listed.is_file():
        return
    try:
        expected = json.loads(listed.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{listed}: unreadable manifest ({e})") from None
    for rel, want in expected.items():
        f = path / rel
        if not f.is_file():
            raise CheckpointError(f"{f}: missing (listed in {listed})")
        if f.stat().st_size != want["bytes"]:
            raise CheckpointError(f"{f}: {f.stat().st_size} bytes, the manifest says {want['bytes']} (truncated?)")
        if _sha256(f) != want["sha256"]:
            raise CheckpointError(f"{f}: SHA-256 differs from the manifest (corrupted)")


def recover(root: str | Path, log: Callable[[str], None] = print) -> None:
    """Undo what a kill during save_checkpoint left: temporary checkpoint directories and `latest`
    files are removed; a checkpoint moved aside for a re-save whose replacement never arrived is
    put back."""
    root = Path(root)
    if not root.is_dir():
        return
    for p in sorted(root.iterdir()):
        if p.name.startswith(".old-"):  # .old-<name>-<pid>
            name = p.name[len(".old-"):].rsplit("-", 1)[0]
            if not (root / name).exists():
                p.rename(root / name)
                log(f"checkpoint {root / name} restored from {p.name} (a save was interrupted)")
                continue
        if p.name.startswith((".tmp-", ".old-", ".latest.tmp-")):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
            log(f"removed {p} (left by an interrupted checkpoint write)")


def load_latest_intact(trainer, root: str | Path, log: Callable[[str], None] = print) -> Path | None:
    """Resume from the best checkpoint that verifies and loads; report each one that does not.
    None when there is no checkpoint; CheckpointError when there are some and none is usable
    (training from scratch over a run's metrics would mix two runs)."""
    failures = []
    for path in resume_candidates(root):
        try:
            verify_checkpoint(path)
            load_checkpoint(trainer, path)
            return path
        except Exception as e:  # noqa: BLE001 - torch/safetensors raise many types on a damaged file
            failures.append(f"{path}: {e}")
            log(f"checkpoint {path} cannot be used ({type(e).__name__}: {e}); trying the previous one")
    if failures:
        raise CheckpointError("no usable checkpoint: " + "; ".join(failures))
    return None


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
