"""Prompts, rollouts and training samples, and packing them into tensors.

Packing layout (both student and teacher sequences):

    [prompt tokens | response tokens | pad ... pad]     each row right-padded to L

Padding only at the end means plain causal attention is exact for every real
token (a pad attends to real tokens, nothing attends to a pad), so the decoder
runs without an attention mask: SDPA's causal kernel with grouped-query heads,
instead of a [B, 1, L, L] mask that the CPU kernel converts per layer and keeps
for backward, and K/V copied per query head (docs/benchmarks.md, issue 15.1).
Row i's response starts at column `response_start[i]` (its prompt length); the
hidden state at column start+t-1 predicts response token t.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

Message = dict[str, str]


@dataclass
class Rollout:
    """One sampled response to one prompt."""

    prompt_ids: list[int]
    response_ids: list[int]
    sampler_logps: list[float]  # log-prob of each response token under the sampling distribution
    finish_reason: Literal["stop", "length"]
    text: str = ""  # decoded response, special tokens removed


@dataclass
class Sample:
    """A rollout after verification: what the trainer consumes.

    Samples of one problem share `group` and are contiguous in a batch; group numbers
    restart every step, so (step, group, problem_id) identifies a problem's samples.
    """

    messages: list[Message]  # the student prompt (system + user)
    rollout: Rollout
    group: int
    reward: float
    feedback: str = ""  # environment feedback text ('' on success)
    critique: str = ""  # self-critique text, when that feedback source is used
    problem_id: str = ""
    step: int = 0  # the training step that sampled it (siblings never cross steps)
    meta: dict = field(default_factory=dict)


def chat_prompt_ids(tokenizer, messages: list[Message]) -> list[int]:
    """Token ids of the chat-templated prompt, ending with the assistant generation header."""
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    if isinstance(out, dict) or hasattr(out, "keys"):  # some tokenizers return a BatchEncoding
        out = out["input_ids"]
    return list(out)


@dataclass
class Packed:
    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L], 1 on real tokens (not passed to the decoder: see above)
    response_start: torch.Tensor  # [B] long, column of each row's first response token
    response_ids: torch.Tensor  # [B, T] (pad where response_mask is 0)
    response_mask: torch.Tensor  # [B, T] float

    @property
    def response_len(self) -> int:
        return self.response_ids.shape[1]

    def predicting_columns(self) -> torch.Tensor:
        """Column whose output predicts response token t, per row. -> [B, T] long
        (past a row's response: clamped into the row; those positions are masked out)"""
        t = torch.arange(self.response_len, device=self.response_start.device)
        return (self.response_start[:, None] - 1 + t).clamp(max=self.input_ids.shape[1] - 1)

    def at_response(self, x: torch.Tensor) -> torch.Tensor:
        """The per-column outputs that predict the response tokens. [B, L, ...] -> [B, T, ...]"""
        idx = self.predicting_columns()
        return x.gather(1, idx.view(*idx.shape, *[1] * (x.dim() - 2)).expand(*idx.shape, *x.shape[2:]))


def pack(prompts: list[list[int]], responses: list[list[int]], pad_id: int, device=None) -> Packed:
    """prompt + response per row, right-padded to a common L; responses right-padded to T (see module docstring)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("empty prompt: the first response token needs a preceding position")
    B = len(prompts)
    L = max(len(p) + len(r) for p, r in zip(prompts, responses))
    T = max(1, max(len(r) for r in responses))
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    attn = torch.zeros((B, L), dtype=torch.long)
    resp = torch.full((B, T), pad_id, dtype=torch.long)
    resp_mask = torch.zeros((B, T), dtype=torch.float32)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids[i, : len(p) + len(r)] = torch.tensor(list(p) + list(r), dtype=torch.long)
        attn[i, : len(p) + len(r)] = 1
        if r:
            resp[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            resp_mask[i, : len(r)] = 1.0
    start = torch.tensor([len(p) for p in prompts], dtype=torch.long)
    packed = Packed(ids, attn, start, resp, resp_mask)
    if device is not None:
        packed = Packed(*(t.to(device) if torch.is_tensor(t) else t for t in packed.__dict__.values()))
    return packed


def pad_right(rows: list[list[float]], T: int, value: float = 0.0) -> torch.Tensor:
    """[B] ragged float rows -> [B, T]."""
    out = torch.full((len(rows), T), value, dtype=torch.float32)
    for i, r in enumerate(rows):
        if r:
            out[i, : len(r)] = torch.tensor(r[:T], dtype=torch.float32)
    return out
