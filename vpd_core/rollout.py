"""Rollout engines: sample G responses per prompt with sampler log-probs.

`RolloutEngine` is the interface the training loop and the orchestration layer
call; `HFRolloutEngine` implements it with `model.generate` on the training
model itself (CPU, small GPUs), `VLLMRolloutEngine` (vpd_core.rollout_vllm)
with a colocated vLLM engine. `make_engine` builds the configured one.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch
from transformers import GenerationConfig

from .distributed import SINGLE, Dist
from .models import stop_token_ids
from .sampling import SamplingParams, stop_length
from .sequences import Rollout


class RolloutEngine(Protocol):
    def generate(self, prompts: list[list[int]], n: int, sampling: SamplingParams,
                 progress: Callable[[int], None] | None = None) -> list[Rollout]:
        """n rollouts per prompt, grouped: result[i*n:(i+1)*n] belong to prompts[i]. `progress(k)` is
        called as k more rollouts finish (it must not change what is sampled)."""
        ...

    def sync_weights(self, model) -> None:
        """Make the engine sample from `model`'s current weights (after every update)."""
        ...

    def sleep(self) -> None:
        """Free what the engine holds on the accelerator while the trainer updates."""
        ...


def make_engine(params, model, tokenizer, model_path, dist: Dist = SINGLE) -> RolloutEngine:
    """The engine `params.rollout.backend` names, sampling from `model` (whose weights are at `model_path`);
    under torchrun, one engine per rank."""
    r = params.rollout
    if r.backend == "hf":
        return HFRolloutEngine(model, tokenizer, batch_size=r.batch_size)
    from .rollout_vllm import VLLMRolloutEngine  # vLLM is optional: imported only when asked for

    v = r.vllm
    return VLLMRolloutEngine(
        model_path,
        tokenizer,
        stop_token_ids(tokenizer, model),
        dtype=params.model.dtype,
        max_model_len=v.max_model_len or longest_sequence(params),
        gpu_memory_utilization=v.gpu_memory_utilization,
        enforce_eager=v.enforce_eager,
        sleep=v.sleep,
        seed=params.seed + dist.rank,
        data_parallel=dist.world,
    )


def longest_sequence(params) -> int:
    """The longest prompt + completion the policy's engine may be asked for: rollouts and evaluation,
    teacher contexts (diagnostics sample from them), and critiques when the policy writes them."""
    r = params.rollout
    n = r.max_prompt_tokens + max(r.max_new_tokens, params.eval.max_new_tokens)
    if params.diagnostics.every:
        n = max(n, params.teacher.max_prompt_tokens + r.max_new_tokens)
    c = params.feedback.critique
    if "critique" in params.feedback.sources and c.model_path is None:
        n = max(n, c.max_prompt_tokens + c.max_new_tokens)
    return n


def check_fits_model(params, model) -> None:
    """A sequence past the model's positions is garbage on RoPE models and an error in vLLM, found late:
    refuse at start, naming the params that make it."""
    limit = getattr(model.config, "max_position_embeddings", None)
    need = longest_sequence(params)
    if params.algorithm != "grpo":  # the trainer scores every rollout under the teacher context too
        need = max(need, params.teacher.max_prompt_tokens + params.rollout.max_new_tokens)
    if limit is not None and need > limit:
        raise ValueError(
            f"params ask for sequences of up to {need} tokens but the model at {params.model.path} has "
            f"max_position_embeddings={limit}: lower rollout.max_prompt_tokens / teacher.max_prompt_tokens / "
            f"feedback.critique.max_prompt_tokens or the max_new_tokens settings"
        )


class HFRolloutEngine:
    """Batched sampling with transformers' `generate` on the training model itself."""

    def __init__(self, model, tokenizer, batch_size: int = 16):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.stop_ids = stop_token_ids(tokenizer, model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]

    def sync_weights(self, model) -> None:
        self.model = model  # same module object: nothing to copy

    def sleep(self) -> None:
        pass  # the engine is the training model: nothing of its own to free

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], n: int, sampling: SamplingParams,
                 progress: Callable[[int], None] | None = None) -> list[Rollout]:
        flat = [p for p in prompts for _ in range(n)]
        greedy = sampling.temperature == 0
        config = GenerationConfig(
            do_sample=not greedy,
            temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p,
            top_k=0,  # transformers defaults to top-k 50; the method samples from the full distribution
            max_new_tokens=sampling.max_new_tokens,
            eos_token_id=self.stop_ids,
            pad_token_id=self.pad_id,
            return_dict_in_generate=True,
            output_scores=True,
            stop_strings=list(sampling.stop) or None,
        )
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        out: list[Rollout] = []
        try:
            for b, start in enumerate(range(0, len(flat), self.batch_size)):
                out.extend(self._generate_batch(flat[start : start + self.batch_size], config, sampling.seed + b, device,
                                                sampling.stop))
                if progress is not None:
                    progress(len(out) - start)
        finally:
            self.model.train(was_training)
        return out

    def _generate_batch(self, prompts: list[list[int]], config, seed: int, device, stop: tuple[str, ...] = ()) -> list[Rollout]:
        P = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), P), self.pad_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, P - len(p) :] = torch.tensor(p)
            attn[i, P - len(p) :] = 1
        # fork_rng: seeded sampling without disturbing the caller's global RNG stream
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            gen = self.model.generate(input_ids=ids.to(device), attention_mask=attn.to(device), generation_config=config,
                                      **({"tokenizer": self.tokenizer} if stop else {}))
        seqs = gen.sequences[:, P:].cpu()  # [B, N]
        # scores: tuple of N tensors [B, V], the processed (temperature/top-p) logits actually sampled from
        token_logps = torch.stack(
            [
                torch.log_softmax(s.float(), dim=-1).gather(-1, gen.sequences[:, P + t, None]).squeeze(-1)
                for t, s in enumerate(gen.scores)
            ],
            dim=1,
        ).cpu()  # [B, N]
        rollouts = []
        for i, p in enumerate(prompts):
            resp = seqs[i].tolist()
            length = len(resp)
            for t, tok in enumerate(resp):
                if tok in self.stop_ids:
                    length = t + 1  # keep the stop token: the student must learn to stop
                    break
            cut = stop_length(self.tokenizer, resp[:length], stop)
            finish = "stop" if cut is not None or (length and resp[length - 1] in self.stop_ids) else "length"
            length = cut if cut is not None else length
            resp = resp[:length]
            rollouts.append(
                Rollout(
                    prompt_ids=list(p),
                    response_ids=resp,
                    sampler_logps=token_logps[i, :length].tolist(),
                    finish_reason=finish,
                    text=self.tokenizer.decode(resp, skip_special_tokens=True),
                )
            )
        return rollouts
