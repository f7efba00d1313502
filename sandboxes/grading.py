"""Grading model responses to code problems: extract the code, run the batch, build the feedback."""

from __future__ import annotations

from dataclasses import dataclass

from vpd_core.data.schema import Problem

from .base import Sandbox
from .extract import extract_code
from .feedback import feedback_text
from .jobs import job_from_problem
from .types import ExecResult, Semantics


@dataclass
class Graded:
    reward: float
    feedback: str
    result: ExecResult


def grade_code(sandbox: Sandbox, items: list[tuple[Problem, str, bool]], *, split: str = "all",
               stop_at_first_failure: bool = False, time_limit_s: float = 6.0,
               memory_mb: int | None = 512, semantics: Semantics = "robust") -> list[Graded]:
    """items: (problem, response text, truncated). Responses without a code block are not run.

    split="train" grades on the problem's training tests (SDPO protocol: feedback may quote
    them); "all" is the evaluation protocol (public then private tests).
    """
    extracted = [extract_code(text, truncated) for _, text, truncated in items]
    runnable = [i for i, e in enumerate(extracted) if e.outcome == "ok"]
    jobs = [job_from_problem(items[i][0], extracted[i].code, split=split, stop_at_first_failure=stop_at_first_failure,
                             time_limit_s=time_limit_s, memory_mb=memory_mb, semantics=semantics) for i in runnable]
    results: list[ExecResult | None] = [None] * len(items)
    for i, r in zip(runnable, sandbox.run_batch(jobs)):
        results[i] = r
    out = []
    for (_, _, truncated), e, r in zip(items, extracted, results):
        if r is None:
            r = ExecResult(tests=[], extracted=False, truncated=e.outcome == "truncated", backend=sandbox.backend)
        out.append(Graded(float(r.reward), feedback_text(r), r))
    return out


def code_grader(sandbox: Sandbox, split: str = "train", time_limit_s: float = 6.0, memory_mb: int | None = 512,
                semantics: Semantics = "robust"):
    """A `vpd_core.loop.Grader` for code problems: (problem, rollout) pairs -> (reward, feedback)."""

    def grade(items):
        graded = grade_code(sandbox, [(p, r.text, r.finish_reason == "length") for p, r in items], split=split,
                            time_limit_s=time_limit_s, memory_mb=memory_mb, semantics=semantics)
        return [(g.reward, g.feedback) for g in graded]

    return grade
