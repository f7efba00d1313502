"""Colocated vLLM rollout engine: the serious-RL-stack way to sample.

One in-process `vllm.LLM` lives next to the trainer (same process, same
device). After every optimizer step the trainer's tensors are streamed into the
running engine with vLLM's in-place `reload_weights` (which also redoes any
kernel repacking, e.g. on CPU), and the prefix cache is dropped; the engine is
never restarted. Where the platform supports sleep mode (CUDA), the engine
sleeps during the update (level 2: KV cache and weights released, since the
weights are overwritten by the next sync anyway) and wakes for the sync and the
next generation.

vLLM is imported lazily: the HF backend and everything else work without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .rng import preserved_rng
from .sampling import SamplingParams, stop_length
from .sequences import Rollout

# The engine core must run in this process: the weight sync hands it an iterator
# over the trainer's tensors by reference instead of serialising the model.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def request_seed(seed: int, index: int) -> int:
    """Distinct per-request seeds: vLLM draws identical samples for requests that share a seed."""
    return (seed * 1_000_003 + index * 7_919 + 1) % (2**31 - 1)


def full_named_tensors(model):
    """(name, full tensor) for the model's state, gathering FSDP2 shards one tensor at a time.

    Every rank of a sharded model must iterate this (each full_tensor() is a collective).
    """
    for name, t in model.state_dict().items():
        if hasattr(t, "full_tensor"):  # DTensor (FSDP2 shard)
            t = t.full_tensor()
        yield name, t.detach()


class VLLMRolloutEngine:
    def __init__(
        self,
        model_path: str | Path,
        tokenizer,
        stop_ids: list[int],
        *,
        dtype: str = "float32",
        max_model_len: int,
        gpu_memory_utilization: float = 0.4,
        enforce_eager: bool = False,
        sleep: bool = True,
        seed: int = 0,
        data_parallel: int = 1,
    ):
        from vllm import LLM
        from vllm.platforms import current_platform

        self.tokenizer = tokenizer
        self.stop_ids = list(stop_ids)
        self.can_sleep = sleep and current_platform.is_sleep_mode_available()
        # Under torchrun each rank runs its own engine on its own device and samples its own
        # share of the prompts; vLLM joins the existing process group as data-parallel ranks.
        launcher = {"distributed_executor_backend": "external_launcher", "data_parallel_size": data_parallel}
        # On CPU a seeded request whose prompt is prefilled in chunks crashes the engine (vLLM rewinds
        # the request's generator, which a CPU torch.Generator cannot do: "CPU Generator does not use
        # offset"); whole-prompt prefills avoid it. Seen with 1640 seeded HumanEval requests.
        cpu = {"enable_chunked_prefill": False} if current_platform.is_cpu() else {}
        with preserved_rng():  # an in-process engine seeds the global RNGs; the trainer's streams stay ours
            self.llm = LLM(
                model=str(model_path),
                dtype=dtype,
                max_model_len=max_model_len,
                gpu_memory_utilization=gpu_memory_utilization,
                enforce_eager=enforce_eager,
                enable_sleep_mode=self.can_sleep,
                seed=seed,
                # The engine loads the tokenizer as well (its start-up checks want one), but prompts go
                # in as token ids and responses come back undecoded (detokenize=False): we decode.
                # log-probs of the distribution actually sampled from (after temperature/top-p),
                # the same quantity the HF backend returns
                logprobs_mode="processed_logprobs",
                **cpu,
                **(launcher if data_parallel > 1 else {}),
            )
        self.asleep = False
        self.weights_released = False

    def generate(self, prompts: list[list[int]], n: int, sampling: SamplingParams,
                 progress: Callable[[int], None] | None = None) -> list[Rollout]:
        self._wake()
        from vllm import SamplingParams as VLLMSampling
        from vllm.inputs import TokensPrompt

        flat = [p for p in prompts for _ in range(n)]
        greedy = sampling.temperature == 0
        params = [
            VLLMSampling(
                temperature=0.0 if greedy else sampling.temperature,
                top_p=1.0 if greedy else sampling.top_p,
                top_k=0,  # full distribution, as in the HF backend
                max_tokens=sampling.max_new_tokens,
                stop_token_ids=self.stop_ids,
                seed=request_seed(sampling.seed, i),
                logprobs=0,  # the sampled token's log-prob only
                detokenize=bool(sampling.stop),
                stop=list(sampling.stop) or None,
                include_stop_str_in_output=True,
            )
            for i in range(len(flat))
        ]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in flat], params, use_tqdm=False)
        rollouts = []
        for prompt, out in zip(flat, outputs):
            o = out.outputs[0]
            resp = list(o.token_ids)
            logps = [step[tok].logprob for step, tok in zip(o.logprobs, resp)]
            cut = stop_length(self.tokenizer, resp, sampling.stop)  # the same cut as the HF engine
            finish = "stop" if cut is not None or (resp and resp[-1] in self.stop_ids) else "length"
            if cut is not None:
                resp, logps = resp[:cut], logps[:cut]
            rollouts.append(
                Rollout(
                    prompt_ids=list(prompt),
                    response_ids=resp,
                    sampler_logps=logps,
                    finish_reason=finish,
                    text=self.tokenizer.decode(resp, skip_special_tokens=True),
                )
            )
        if progress is not None:  # vLLM schedules the whole list at once: one report at the end
            progress(len(rollouts))
        return rollouts

    def sync_weights(self, model) -> None:
        """Load `model`'s current tensors into the running engine (in place, no restart)."""
        if self.asleep:
            self.llm.wake_up(tags=["weights"])  # weights first: the KV cache is not needed to load them
        self.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": full_named_tensors(model), "is_checkpoint_format": True}
        )
        self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights
        self.weights_released = False
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False

    def sleep(self) -> None:
        """Release the engine's accelerator memory for the update (a no-op where unsupported)."""
        if self.can_sleep and not self.asleep:
            self.llm.sleep(level=2)
            self.asleep = self.weights_released = True

    def _wake(self) -> None:
        if self.weights_released:
            raise RuntimeError("the vLLM engine released its weights in sleep(); call sync_weights(model) before generate()")
