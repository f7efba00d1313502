"""Self-critique feedback (method.md §5, `feedback.sources: [critique]`).

After grading, a model writes a critique of every failed attempt, given the problem,
the attempt and the verifier's verdict; the critique becomes the teacher's feedback
block. The writer is the policy being trained (its own rollout engine, so HF or vLLM,
synced to the current weights) or a judge model at `feedback.critique.model_path`.
"""

from __future__ import annotations

import time

from .config import CritiqueParams
from .rollout import RolloutEngine, SamplingParams
from .sequences import Message, Sample, chat_prompt_ids
from .teacher import ContextError, cut_to_fit, fill, is_success, strip_thinking

NO_VERDICT = "(the verifier gave no details)"


def critique_prompt(sample: Sample, cp: CritiqueParams, tokenizer) -> list[int]:
    """The critic's prompt (token ids) for one failed sample, within cp.max_prompt_tokens (the
    attempt is cut first, then the verdict, then the problem statement)."""
    parts = {
        "problem": sample.messages[-1]["content"],
        "attempt": strip_thinking(sample.rollout.text) or "(empty response)",
        "feedback": sample.feedback.strip() or NO_VERDICT,
    }

    def render() -> list[int]:
        return chat_prompt_ids(tokenizer, messages())

    def messages() -> list[Message]:
        return ([{"role": "system", "content": cp.system}] if cp.system else []) + [
            {"role": "user", "content": fill(cp.template, **parts)}]

    ids, _ = cut_to_fit(tokenizer, parts, ("attempt", "feedback", "problem"), render, cp.max_prompt_tokens,
                        "\n...(truncated)\n")
    if ids is None:
        raise ContextError(f"feedback.critique.max_prompt_tokens={cp.max_prompt_tokens} is too small: the critique "
                           f"template and chat header alone take {len(render())} tokens")
    return ids


def write_critiques(engine: RolloutEngine, tokenizer, samples: list[Sample], cp: CritiqueParams,
                    seed: int) -> dict[str, float]:
    """Fill `critique` of every failed sample (in place), in batches through the rollout engine."""
    t0 = time.perf_counter()
    failed = [s for s in samples if not is_success(s)]
    if not failed:
        return {"critique/count": 0.0, "time/critique": time.perf_counter() - t0}
    prompts = [critique_prompt(s, cp, tokenizer) for s in failed]
    sampling = SamplingParams(cp.temperature, cp.top_p, cp.max_new_tokens, seed)
    outs = engine.generate(prompts, 1, sampling)
    lengths = []
    for s, out in zip(failed, outs):
        s.critique = strip_thinking(out.text)
        s.meta["critiqued"] = True  # written (possibly empty), as opposed to never produced
        lengths.append(len(out.response_ids))
    return {
        "critique/count": float(len(failed)),
        "critique/empty_frac": sum(not s.critique for s in failed) / len(failed),
        "critique/length_mean": sum(lengths) / len(lengths),
        "time/critique": time.perf_counter() - t0,
    }
