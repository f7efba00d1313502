"""One problem schema for every source, and the strict/skip rule for malformed records."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from ..errors import VPDError
from ..fileio import read_text_input



class DataError(VPDError):
    """A malformed record: the message names FILE:LINE and the field."""


@dataclass
class Problem:
    id: str
    source: str  # its benchmark (vpd_core.data.registry)
    messages: list[dict]  # the student prompt: system + user
    answer: str | None = None  # gold letter (MCQ) or final answer (math); None for code
    tests: list[dict] = field(default_factory=list)  # code: every test, public then private (evaluation)
    train_tests: list[dict] | None = None  # code: the subset training may see (SDPO protocol); None = all
    fn_name: str | None = None  # code: call-based grading (the entry point, for assertion tests)
    setup: str = ""  # code: trusted code run before the program, in its namespace (HumanEval: the prompt)
    choices: list[str] = field(default_factory=list)  # MCQ option texts, in label order
    labels: list[str] = field(default_factory=list)  # MCQ labels ("A", "B", ...)
    difficulty: str | None = None
    domain: str | None = None
    platform: str | None = None
    metadata: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Problem:
        return cls(**d)


@dataclass
class ReadResult:
    problems: list[Problem]
    skipped: list[str] = field(default_factory=list)  # "FILE:LINE: field: message" for each dropped record


class RecordError(Exception):
    """Raised by record parsers; the reader adds FILE:LINE."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")


def iter_records(path: str | Path) -> Iterator[tuple[int, dict | Exception]]:
    """(line number, record) from a JSONL file or a JSON list; parse errors are yielded, not raised."""
    path = Path(path)
    text = read_text_input(path, "data file", DataError)
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON list (one record per element; line = element index + 1)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
        except RecursionError:
            raise DataError(f"{path}:1: not valid JSON: nested too deep") from None
        for i, rec in enumerate(data, 1):
            yield i, rec
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            yield n, RecordError("<json>", f"not valid JSON: {e.msg}")
        except RecursionError:
            yield n, RecordError("<json>", "not valid JSON: nested too deep")


def read_with(parse, paths: list[str | Path], on_error: str = "strict") -> ReadResult:
    """Apply parse(record) to every record; strict: the first bad one raises, skip: it is listed."""
    if on_error not in ("strict", "skip"):
        raise DataError(f"on_error must be 'strict' or 'skip', got '{on_error}'")
    problems, skipped = [], []
    first_seen: dict[str, str] = {}  # problem id -> FILE:LINE where it first appeared
    for path in paths:
        for line, rec in iter_records(path):
            try:
                if isinstance(rec, Exception):
                    raise rec
                if not isinstance(rec, dict):
                    raise RecordError("<record>", f"expected a JSON object, got {type(rec).__name__}")
                problem = parse(rec)
                if problem.id in first_seen:
                    raise RecordError("id", f"duplicate problem id '{problem.id}' (first at {first_seen[problem.id]})")
                first_seen[problem.id] = f"{path}:{line}"
                problems.append(problem)
            except RecordError as e:
                where = f"{path}:{line}: {e}"
                if on_error == "strict":
                    raise DataError(where) from None
                skipped.append(where)
    return ReadResult(problems, skipped)


def require(rec: dict, name: str, kind: type | tuple = str):
    if name not in rec:
        raise RecordError(name, "missing field")
    value = rec[name]
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise RecordError(name, f"expected {expected}, got {type(value).__name__}")
    return value
