"""MATH-500 JSONL (problem, answer, subject, level, unique_id)."""

from __future__ import annotations

import hashlib

from .prompts import PromptTemplates, math_messages
from .schema import Problem, ReadResult, RecordError, read_with, require


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
