"""Teacher diagnostics: is the teacher (the network with its feedback context) a better policy
than the student, and does the E-step widen that gap?

Every `diagnostics.every` steps, on a fixed probe set of training problems: the student samples
`diagnostics.samples` attempts per problem from the plain prompt (-> student/pass_rate); each
attempt's teacher context is built exactly as for training (sibling solution or feedback, from
the same graded attempts), and the same network samples once from every context that exists
(-> teacher/pass_rate). teacher/gap = teacher - student pass rate.
"""

from __future__ import annotations

import random
import time

from .config import Params
from .data.schema import Problem
from .sampling import SamplingParams
from .sequences import Rollout, Sample, chat_prompt_ids
from .teacher import build_teacher_contexts


def probe_problems(problems: list[Problem], n: int, seed: int) -> list[Problem]:
    """The fixed probe set: the same n training problems at every diagnostic of a run."""
    return random.Random(f"diagnostics:{seed}").sample(problems, k=min(n, len(problems)))


def teacher_diagnostics(engine, tokenizer, problems: list[Problem], params: Params, grade, step: int) -> dict[str, float]:
    """Student and teacher pass rates on the probe problems (see module docstring)."""
    t0 = time.perf_counter()
    d, r = params.diagnostics, params.rollout
    n = d.samples
    sampling = SamplingParams(r.temperature, r.top_p, r.max_new_tokens, 424_242 + step, tuple(r.stop))
    prompts = [chat_prompt_ids(tokenizer, p.messages) for p in problems]
    attempts = engine.generate(prompts, n, sampling)
    graded = grade([(problems[i // n], ro) for i, ro in enumerate(attempts)])
    samples = [Sample(problems[i // n].messages, ro, group=i // n, reward=reward, feedback=feedback,
                      problem_id=problems[i // n].id, step=step)
               for i, (ro, (reward, feedback)) in enumerate(zip(attempts, graded))]
    contexts = build_teacher_contexts(samples, tokenizer, params.teacher, params.feedback)
    active = [i for i, c in enumerate(contexts) if c.active]
    teacher_rewards: list[float] = []
    if active:
        outs: list[Rollout] = engine.generate([contexts[i].prompt_ids for i in active], 1,
                                              SamplingParams(r.temperature, r.top_p, r.max_new_tokens,
                                                             535_353 + step, tuple(r.stop)))
        teacher_graded = grade([(problems[i // n], ro) for i, ro in zip(active, outs)])
        teacher_rewards = [reward for reward, _ in teacher_graded]
    student = sum(s.reward for s in samples) / len(samples)
    failed_active = [k for k, i in enumerate(active) if samples[i].reward < 0.5]
    out = {
        "student/pass_rate": student,
        "diagnostics/contexts": len(active) / len(samples),
        "time/diagnostics": time.perf_counter() - t0,
    }
    if teacher_rewards:
        teacher = sum(teacher_rewards) / len(teacher_rewards)
        out |= {"teacher/pass_rate": teacher, "teacher/gap": teacher - student}
        if failed_active:  # the teacher of a failed attempt: what the M-step distils where it matters most
            out["teacher/pass_rate_after_failure"] = sum(teacher_rewards[k] for k in failed_active) / len(failed_active)
    return out
