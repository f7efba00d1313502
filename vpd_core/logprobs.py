"""Per-token log-probs and top-K log-probs at response positions, chunked over the sequence.

We run the decoder once, keep only the hidden states that predict response
tokens ([B, T, H]), and apply the lm head chunk by chunk, so a [*, V] tensor
exists for at most `chunk` positions at a time (recomputed in backward via
activation checkpointing when there is more than one chunk).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.checkpoint import checkpoint

from .sequences import Packed


def response_hidden(model, packed: Packed) -> torch.Tensor:
    """Final hidden states at the positions that predict response tokens. -> [B, T, H]"""
    # An FSDP-sharded model runs its decoder through the root's hooks (vpd_core.distributed.shard).
    decoder = getattr(model, "decoder_forward", None) or model.get_decoder()
    # no mask, default positions: rows are padded at the end only (vpd_core.sequences), so causal
    # attention is exact for every real token
    out = decoder(input_ids=packed.input_ids, use_cache=False)
    return packed.at_response(out.last_hidden_state)  # [B, L, H] -> [B, T, H]


def lm_head(model) -> torch.nn.Module:
    return model.get_output_embeddings()


def head_logits(head: torch.nn.Module, h: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """float32 logits, divided by the sampling temperature. [..., H] -> [..., V]

    The head runs outside bf16 autocast (in the weights' own precision): bf16 logits
    would be off by a few hundredths of a nat at typical magnitudes, which the
    importance weights and PPO ratios would read as policy change. Dividing by the
    temperature the rollouts were sampled at makes the trainer's log-probs those of the
    distribution sampled from (as verl and TRL do).
    """
    with torch.autocast(h.device.type, enabled=False):
        logits = head(h.to(head.weight.dtype)).float()
    return logits if temperature == 1.0 else logits / temperature


def map_chunks(fn: Callable[..., tuple[torch.Tensor, ...]], *seq_tensors: torch.Tensor, chunk: int,
               recompute: bool = False):
    """Apply fn to slices [:, a:b] of each [B, T, ...] tensor and concatenate outputs along T.

    With more than one chunk (or `recompute`) and gradients on, each call is checkpointed so
    its [B, chunk, V] logits are not kept for backward.
    """
    T = seq_tensors[0].shape[1]
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in seq_tensors)
    if T <= chunk and not (recompute and needs_grad):
        return fn(*seq_tensors)
    parts = []
    for a in range(0, T, chunk):
        sl = [t[:, a : a + chunk] for t in seq_tensors]
        parts.append(checkpoint(fn, *sl, use_reentrant=False) if needs_grad else fn(*sl))
    return tuple(torch.cat(p, dim=1) for p in zip(*parts))


def gather_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[targets] without a full log-softmax. [B, T, V], [B, T] -> [B, T]"""
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy per position. [B, T, V] -> [B, T]"""
    logz = torch.logsumexp(logits, dim=-1, keepdim=True)
    p = torch.exp(logits - logz)
    return (logz.squeeze(-1) - (p * logits).sum(-1))


def token_logprobs(model, packed: Packed, chunk: int = 256, temperature: float = 1.0,
                   recompute_head: bool = False) -> torch.Tensor:
    """log pi(y_t | prefix) (at the sampling temperature) for every response token. -> [B, T] (0 where masked out)

    recompute_head: keep no logits for backward even in a single chunk (for graphs that wait)."""
    head = lm_head(model)
    h = response_hidden(model, packed)

    def fn(h_c, y_c):
        return (gather_logps(head_logits(head, h_c, temperature), y_c),)

    (logps,) = map_chunks(fn, h, packed.response_ids, chunk=chunk, recompute=recompute_head)
    return logps * packed.response_mask


def topk_logprobs(model, packed: Packed, k: int, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's top-K token ids and log-probs at every response position. -> [B, T, K] x2"""
    head = lm_head(model)
    h = response_hidden(model, packed)

    def fn(h_c):
        logits = head_logits(head, h_c)
        top, ids = torch.topk(logits, k=min(k, logits.shape[-1]), dim=-1)
        return top - torch.logsumexp(logits, dim=-1, keepdim=True), ids

    logps, ids = map_chunks(fn, h, chunk=chunk)
    return ids, logps
