"""Teacher contexts (method.md §2): the prompt plus a sibling solution and/or feedback.

The teacher is the same network as the student, conditioned on a richer user
turn. The student's response tokens are later appended unchanged after the
teacher prompt; this module only builds the prompt and the distillation mask.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .config import FeedbackParams, TeacherParams
from .errors import VPDError
from .sequences import Message, Sample, chat_prompt_ids

_THINK = re.compile(r"<think>.*?</think>", flags=re.DOTALL)
_HOLE = re.compile(r"\{(\w+)\}")


class ContextError(VPDError):
    """A teacher context cannot be built as configured."""


@dataclass
class TeacherContext:
    prompt_ids: list[int]
    active: bool  # the distillation mask m_i: False when there is neither a solution nor feedback
    sibling: int | None = None  # index (in the batch) of the sibling whose solution is shown
    used_feedback: bool = False
    used_success_message: bool = False
    truncated: bool = False


def fill(template: str, **values: str) -> str:
    """Substitute {name} placeholders literally in one pass (problem text may contain braces);
    holes not named in `values` stay as they are."""
    return _HOLE.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def strip_thinking(text: str) -> str:
    return _THINK.sub("", text).strip()


def is_success(sample: Sample) -> bool:
    return sample.reward >= 0.5


def sibling_key(sample: Sample) -> tuple:
    """Samples are siblings when they answer the same problem in the same step: group numbers
    restart every step, so a buffer of several steps (vpd.e_buffer: last_F) repeats them."""
    return sample.step, sample.group, sample.problem_id


def select_siblings(samples: list[Sample]) -> list[int | None]:
    """For each sample, the first *other* successful sample of its problem and step (SDPO's rule), or None."""
    first_success: dict[tuple, list[int]] = {}
    for j, o in enumerate(samples):
        if is_success(o):
            first_success.setdefault(sibling_key(o), []).append(j)
    out: list[int | None] = []
    for i, s in enumerate(samples):
        out.append(next((j for j in first_success.get(sibling_key(s), []) if j != i), None))
    return out


def check_contexts(samples: list[Sample], contexts: list[TeacherContext], feedback: FeedbackParams) -> None:
    """Fail loudly when the configured feedback sources were never produced, instead of masking
    every sample and training on nothing."""
    if "critique" not in feedback.sources:
        return
    missing = [s for s in samples if not is_success(s) and not s.meta.get("critiqued")]
    if missing:
        s = missing[0]
        raise ContextError(
            f"feedback.sources includes 'critique' but {len(missing)} failed sample(s) were never critiqued "
            f"(first: problem {s.problem_id or '?'}, group {s.group}); without critiques "
            f"{sum(not c.active for c in contexts)} of {len(contexts)} samples have no teacher context. "
            "Critiques are written after grading by vpd_core.critique.write_critiques (loop.Run.update does it)")


def context_blocks(
    sample: Sample,
    sibling: Sample | None,
    teacher: TeacherParams,
    feedback: FeedbackParams,
    *,
    e_step: bool = False,
) -> tuple[str, str, dict]:
    """The solution block and the feedback block of one sample ('' when absent), and what was used."""
    clean = strip_thinking if teacher.strip_thinking else (lambda t: t.strip())
    solution = ""
    if sibling is not None and "sibling" in feedback.sources:
        solution = fill(teacher.solution_block, solution=clean(sibling.rollout.text))
    notes = []
    if "env" in feedback.sources and sample.feedback.strip():
        notes.append(sample.feedback.strip())
    if "critique" in feedback.sources and sample.critique.strip():
        notes.append(sample.critique.strip())
    used = {"feedback": False, "success": False}
    fb = ""
    if notes and not (solution and feedback.env_only_without_sibling):
        fb = fill(teacher.feedback_block, feedback="\n\n".join(notes))
        if teacher.quote_attempt:
            fb = fill(teacher.attempt_block, attempt=clean(sample.rollout.text)) + fb
        used["feedback"] = True
    elif e_step and is_success(sample) and not solution:
        # E-step positives need a context of their own (method.md §4).
        fb = fill(teacher.success_block, feedback=teacher.success_message)
        used["success"] = True
    return solution, fb, used


def teacher_messages(messages: list[Message], solution: str, feedback: str, teacher: TeacherParams) -> list[Message]:
    if not messages or messages[-1].get("role") != "user":
        raise ContextError("the student prompt must end with a user message")
    user = fill(teacher.template, prompt=messages[-1]["content"], solution=solution, feedback=feedback)
    return [*messages[:-1], {"role": "user", "content": user}]


def _shorten(tokenizer, text: str, drop_tokens: int, marker: str) -> str:
    """Drop about `drop_tokens` tokens from the end of text and mark the cut."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    keep = max(0, len(ids) - drop_tokens)
    return tokenizer.decode(ids[:keep]) + marker if keep > 0 else ""


def fit_teacher_prompt(
    tokenizer, messages: list[Message], solution: str, feedback: str, teacher: TeacherParams
) -> tuple[list[int], bool]:
    """Chat-templated teacher prompt within teacher.max_prompt_tokens.

    Cuts the feedback block first, then the sibling solution, then the problem
    statement, always from inside the text, so the closing instruction and the
    generation header survive.
    """
    cap = teacher.max_prompt_tokens
    parts = {"feedback": feedback, "solution": solution, "prompt": messages[-1]["content"]}
    base = messages[:-1]

    def render() -> list[int]:
        user = fill(teacher.template, prompt=parts["prompt"], solution=parts["solution"], feedback=parts["feedback"])
        return chat_prompt_ids(tokenizer, [*base, {"role": "user", "content": user}])

    ids, truncated = cut_to_fit(tokenizer, parts, ("feedback", "solution", "prompt"), render, cap, teacher.truncation_marker)
    if ids is None:
        raise ContextError(f"teacher.max_prompt_tokens={cap} is too small: the template and chat header alone "
                           f"take {len(render())} tokens")
    return ids, truncated


def cut_to_fit(tokenizer, parts: dict[str, str], order: tuple[str, ...], render, cap: int, marker: str
               ) -> tuple[list[int] | None, bool]:
    """Shorten parts[name] in `order`, each from its end with a marker, until render() (the prompt
    ids built from `parts`) fits `cap`. -> (ids, whether anything was cut); ids None if it never fits."""
    ids = render()
    truncated = False
    marker_len = len(tokenizer.encode(marker, add_special_tokens=False))
    for name in order:
        for _ in range(8):  # token counts are not additive across a cut; re-check a few times
            over = len(ids) - cap
            if over <= 0 or not parts[name]:
                break
            parts[name] = _shorten(tokenizer, parts[name], over + marker_len + 2, marker)
            truncated = True
            ids = render()
        if len(ids) <= cap:
            return ids, truncated
    return None, truncated


def build_teacher_contexts(
    samples: list[Sample],
    tokenizer,
    teacher: TeacherParams,
    feedback: FeedbackParams,
    *,
    e_step: bool = False,
) -> list[TeacherContext]:
    """Teacher prompt ids and distillation mask for every sample of a batch."""
    siblings = select_siblings(samples)
    out = []
    for sample, sib in zip(samples, siblings):
        solution, fb, used = context_blocks(
            sample, samples[sib] if sib is not None else None, teacher, feedback, e_step=e_step
        )
        if not solution and not fb:
            # No context: the teacher equals the student; keep the plain prompt and mask the sample out.
            out.append(TeacherContext(prompt_ids=list(sample.rollout.prompt_ids), active=False))
            continue
        ids, truncated = fit_teacher_prompt(tokenizer, sample.messages, solution, fb, teacher)
        out.append(
            TeacherContext(
                prompt_ids=ids,
                active=True,
                sibling=sib if solution else None,
                used_feedback=used["feedback"],
                used_success_message=used["success"],
                truncated=truncated,
            )
        )
    return out
