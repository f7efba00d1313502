"""What both rollout engines share: the sampling settings and the stop-string cut."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 128
    seed: int = 0
    stop: tuple[str, ...] = ()  # stop strings: the response ends with the token that completes one


def stop_length(tokenizer, response_ids: list[int], stop: tuple[str, ...]) -> int | None:
    """Number of tokens up to and including the one that completes the first stop string, or None.
    Both engines cut here, so sampler and trainer see the same tokens whatever the engine's own rule."""
    if not stop:
        return None
    text = tokenizer.decode(response_ids, skip_special_tokens=True)
    if not any(s in text for s in stop):
        return None
    for t in range(1, len(response_ids) + 1):  # responses are short where stop strings are used
        if any(s in tokenizer.decode(response_ids[:t], skip_special_tokens=True) for s in stop):
            return t
    return None
