"""The colocated vLLM engine's sleep/wake protocol around an update.

Sleep mode exists on CUDA only, so this is the one place where a stand-in replaces
vLLM: `CallLog` records the calls the engine makes on `vllm.LLM` (it is not a model
of vLLM's behaviour). The real engine is tested in tests/test_vllm.py.
"""

import pytest
import torch

from vpd_core.sampling import SamplingParams
from vpd_core.rollout_vllm import VLLMRolloutEngine


class CallLog:
    """Stand-in for vllm.LLM: records sleep/wake/sync calls (sleep mode cannot run on CPU)."""

    def __init__(self):
        self.calls = []

    def sleep(self, level):
        self.calls.append(("sleep", level))

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tuple(tags) if tags else None))

    def collective_rpc(self, method, kwargs):
        self.calls.append((method, sorted(name for name, _ in kwargs["weights_iterator"])))

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))


def engine(can_sleep: bool) -> VLLMRolloutEngine:
    e = VLLMRolloutEngine.__new__(VLLMRolloutEngine)  # skip starting vLLM
    e.llm, e.can_sleep, e.asleep, e.weights_released = CallLog(), can_sleep, False, False
    return e


def test_sleep_releases_then_sync_wakes_weights_before_loading_and_the_kv_cache_after():
    e, model = engine(can_sleep=True), torch.nn.Linear(2, 2)
    e.sleep()
    e.sleep()  # idempotent
    with pytest.raises(RuntimeError, match="call sync_weights"):
        e.generate([[1, 2]], 1, SamplingParams())  # level 2 released the weights: never sample garbage
    e.sync_weights(model)
    assert e.llm.calls == [("sleep", 2), ("wake_up", ("weights",)), ("reload_weights", ["bias", "weight"]),
                           ("reset_prefix_cache",), ("wake_up", ("kv_cache",))]
    assert not e.asleep and not e.weights_released


def test_without_sleep_mode_sleep_is_a_no_op_and_sync_only_reloads():
    e = engine(can_sleep=False)
    e.sleep()
    e.sync_weights(torch.nn.Linear(2, 2))
    assert e.llm.calls == [("reload_weights", ["bias", "weight"]), ("reset_prefix_cache",)]
