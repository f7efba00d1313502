"""Prompts, rollouts and training samples, and packing them into tensors.

Packing layout (both student and teacher sequences):

    [pad ... pad | prompt tokens | response tokens | pad ... pad]
     <-- left-padded to P -----> <-- right-padded to T ------->

so every row's response starts at column P and the logits that predict the
response are the columns P-1 .. P+T-2, the same for all rows.
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
    input_ids: torch.Tensor  # [B, P+T]
    attention_mask: torch.Tensor  # [B, P+T]
    position_ids: torch.Tensor  # [B, P+T], counted from each row's first real token
    response_ids: torch.Tensor  # [B, T] (pad where response_mask is 0)
    response_mask: torch.Tensor  # [B, T] float
    prompt_len: int  # P

    @property
    def response_len(self) -> int:
        return self.response_ids.shape[1]


def pack(prompts: list[list[int]], responses: list[list[int]], pad_id: int, device=None) -> Packed:
    """Left-pad prompts to a common P, right-pad responses to a common T (see module docstring)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("empty prompt: the first response token needs a preceding position")
    B = len(prompts)
    P = max(len(p) for p in prompts)
    T = max(1, max(len(r) for r in responses))
    ids = torch.full((B, P + T), pad_id, dtype=torch.long)
    attn = torch.zeros((B, P + T), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids[i, P - len(p) : P] = torch.tensor(p, dtype=torch.long)
        attn[i, P - len(p) : P] = 1
        if r:
            ids[i, P : P + len(r)] = torch.tensor(r, dtype=torch.long)
            attn[i, P : P + len(r)] = 1
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)
    resp_mask = attn[:, P:].float()
    packed = Packed(ids, attn, position_ids, ids[:, P:].clone(), resp_mask, P)
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
