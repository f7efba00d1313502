"""Data-parallel training across processes: FSDP2 sharding plus the few collectives the losses need.

Launched by torchrun (`train_command`; anything that sets RANK / WORLD_SIZE /
LOCAL_RANK / MASTER_ADDR the same way works); `init()` turns that into a `Dist`. Every rank
samples, grades and trains on its own slice of each step's problems (whole
groups, so group-relative advantages and sibling solutions stay local). The
losses are normalised over the global batch, which makes an N-rank step equal to
the one-process step on the union of the slices (tests/test_distributed.py).

Single-process runs use `SINGLE`, whose collectives are identities.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from dataclasses import dataclass

import torch
import torch.distributed as torchdist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torchdist.all_reduce(t)
        return t.tolist()

    def cat(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's 1-D tensor, in rank order (lengths may differ). [n_r] -> [sum n_r]"""
        if self.world == 1:
            return t
        n = torch.tensor([t.numel()], device=self.device)
        sizes = [torch.zeros_like(n) for _ in range(self.world)]
        torchdist.all_gather(sizes, n)
        longest = int(max(s.item() for s in sizes))
        padded = torch.zeros(longest, dtype=t.dtype, device=self.device)
        padded[: t.numel()] = t.to(self.device)
        parts = [torch.zeros_like(padded) for _ in range(self.world)]
        torchdist.all_gather(parts, padded)
        return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)]).to(t.device)

    def objects(self, obj) -> list:
        """Every rank's (small, picklable) object, in rank order."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        torchdist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            torchdist.barrier()


SINGLE = Dist()


def init() -> Dist:
    """The process group of a torchrun launch, or SINGLE when launched alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return SINGLE
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not torchdist.is_initialized():
        torchdist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    return Dist(rank=rank, world=world, device=device)


def shard(model) -> None:
    """FSDP2 (fully_shard) per decoder layer, then the root (embeddings, final norm, lm head).

    The trainer runs the decoder and the lm head separately (chunked head,
    vpd_core.logprobs), so the decoder is exposed as a root forward method: the
    root's hooks gather embeddings/norm/head before it and reduce-scatter their
    gradients after backward, exactly as for a plain forward.
    """
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    for layer in model.get_decoder().layers:
        fully_shard(layer)
    fully_shard(model)
    model.decoder_forward = types.MethodType(lambda self, **kw: self.get_decoder()(**kw), model)
    register_fsdp_forward_method(model, "decoder_forward")


# Checkpoint state in one format for any world size (full tensors keyed by parameter
# name), so a run saved on N processes resumes on M.
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_state_dict(model) -> dict[str, torch.Tensor]:
    """The whole model's tensors on CPU, on rank 0 ({} elsewhere); every rank must call it."""
    return get_model_state_dict(model, options=_FULL)


def load_full_state_dict(model, state: dict[str, torch.Tensor]) -> None:
    """Every rank passes the full tensors and keeps its shard."""
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=False))


def full_optimizer_state(model, optimizer) -> dict:
    return get_optimizer_state_dict(model, optimizer, options=_FULL)


def load_optimizer_state(model, optimizer, state: dict) -> None:
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


LAUNCHED = "VPD_LAUNCHED"  # marks launched children: one that finds no WORLD_SIZE must fail, not relaunch


def train_command(params_path: str, overrides: list[str], d) -> list[str]:
    """torchrun argv for the plain training loop of a params file (+ overrides): `d.nproc` local
    processes, on one machine (--standalone) or as node `d.node_rank` of `d.nnodes` joined by a
    c10d rendezvous at `d.rdzv_endpoint` (every node runs this same command with its own rank)."""
    args = ["--params", params_path]
    for o in overrides:
        args += ["--set", o]
    if d.nnodes == 1:
        topology = ["--standalone", f"--nproc_per_node={d.nproc}"]
    else:
        topology = [f"--nnodes={d.nnodes}", f"--node_rank={d.node_rank}", f"--nproc_per_node={d.nproc}",
                    "--rdzv_backend=c10d", f"--rdzv_endpoint={d.rdzv_endpoint}", "--rdzv_id=vpd"]
    return [sys.executable, "-m", "torch.distributed.run", *topology, "-m", "vpd_core.train_main", *args]


def launch_training(params_path: str, overrides: list[str], d, **popen_kwargs) -> subprocess.Popen:
    """Start `train_command` with the children marked as launched."""
    env = {**os.environ, LAUNCHED: "1"}
    return subprocess.Popen(train_command(params_path, overrides, d), env=env, **popen_kwargs)


def finish(dist: Dist) -> None:
    if dist.world > 1 and torchdist.is_initialized():
        try:
            torchdist.destroy_process_group()
        except ValueError:  # seen after vLLM's external-launcher engine joined the group; the process exits next
            pass


def reshard(*models) -> None:
    """Free the gathered root parameters of sharded models (see `shard`); no-op for plain models.

    The root stays gathered after a forward (FSDP2's default for the root) so the chunked lm
    head can run after the decoder; a model used without a backward (a frozen teacher) keeps
    them gathered until this is called.
    """
    for m in models:
        if m is not None and hasattr(m, "reshard"):
            m.reshard()
