"""MATH-500 JSONL (problem, answer, subject, level, unique_id), graded in-process on the boxed answer."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ..graders import extract_math_answer, math_equivalent
from ..prompts import fill, templates_or_default
from ..registry import Benchmark
from ..schema import DataError, Problem, ReadResult, RecordError, read_with, require

if TYPE_CHECKING:
    from ...config import DataParams, PromptTemplates


def math_messages(problem: str, t: PromptTemplates | None = None) -> list[dict]:
    t = templates_or_default(t)
    return [{"role": "system", "content": t.math_system},
            {"role": "user", "content": fill(t.math_user, problem=problem)}]


def parse_record(rec: dict, templates: PromptTemplates | None = None) -> Problem:
    problem = require(rec, "problem")
    answer = require(rec, "answer", (str, int, float))
    subject = rec.get("subject")
    level = rec.get("level")
    if level is not None and not isinstance(level, (int, str)):
        raise RecordError("level", f"expected int, got {type(level).__name__}")
    pid = rec.get("unique_id") or "math-" + hashlib.sha256(problem.encode()).hexdigest()[:16]
    return Problem(id=str(pid), source="math500", messages=math_messages(problem, templates), answer=str(answer),
                   domain=subject, difficulty=None if level is None else f"level {level}",
                   metadata={"subject": subject, "level": level})


def read_math500(path, *, on_error: str = "strict", templates: PromptTemplates | None = None) -> ReadResult:
    return read_with(lambda r: parse_record(r, templates), [path], on_error)


def grade(problem: Problem, response: str) -> tuple[float, str]:
    got = extract_math_answer(response)
    if got is None:
        return 0.0, "No final answer found. Put the final answer within \\boxed{}."
    return (1.0, "") if math_equivalent(got, problem.answer) else (0.0, f"Your final answer {got} is incorrect.")


def load(d: DataParams, templates: PromptTemplates, split: str, seed: int) -> list[Problem]:
    """A file (both splits read it), a directory with train.jsonl and test.jsonl (e.g. MATH's train
    problems beside MATH-500 as test), or the embedded set."""
    path = BENCHMARK.embedded_path(split) if d.path == "embedded" else Path(d.path)
    if path.is_dir():
        path = path / f"{split}.jsonl"
        if not path.is_file():
            raise DataError(f"{d.path}: a math500 data directory needs train.jsonl and test.jsonl (no {split}.jsonl)")
    return read_math500(path, on_error=d.on_error, templates=templates).problems


BENCHMARK = Benchmark(
    name="math500",
    description="MATH-500: competition math, the final \\boxed{} answer graded in-process (the stress test)",
    read=read_math500, parse=parse_record, grade_text=grade, load=load,
    summarize=lambda ps: {"by_subject": dict(Counter(p.domain for p in ps)),
                          "by_level": dict(Counter(p.difficulty for p in ps))},
    templates={"math_system": "Please reason step by step, and put your final answer within \\boxed{}.",
               "math_user": "{problem}"},
)
