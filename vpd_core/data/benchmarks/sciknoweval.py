"""SciKnowEval JSON / JSONL (v1: one file for all domains; v2: per-domain files; same record shape).

The paper's protocol: level L3, types mcq-4-choices and mcq-2-choices, the four
domains, a 90/10 train/test split per domain with seed 42, one run per domain.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ..graders import mcq_correct, mcq_prediction
from ..prompts import fill, templates_or_default
from ..registry import Benchmark
from ..schema import DataError, Problem, ReadResult, RecordError, read_with, require

if TYPE_CHECKING:
    from ...config import DataParams, PromptTemplates

DOMAINS = ("Biology", "Chemistry", "Physics", "Material")
MCQ_TYPES = ("mcq-4-choices", "mcq-2-choices")
PAPER = {"levels": ["L3"], "types": list(MCQ_TYPES), "domains": list(DOMAINS), "test_fraction": 0.1, "seed": 42}


def record_id(rec: dict) -> str:
    """SciKnowEval has no stable id: hash the fields that define a question (as inspect-evals does)."""
    details = rec.get("details") or {}
    key = json.dumps([rec.get("question"), rec.get("domain"), details.get("task"), details.get("subtask"),
                      rec.get("choices"), rec.get("answerKey"), rec.get("answer")], sort_keys=True)
    return "ske-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def mcq_messages(system: str, question: str, labels: list[str], texts: list[str], t: PromptTemplates | None = None) -> list[dict]:
    """The record's own system prompt; the options rendered into the user turn."""
    t = templates_or_default(t)
    options = "\n".join(fill(t.mcq_option, label=lab, text=txt) for lab, txt in zip(labels, texts))
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": fill(t.mcq_user, question=question, options=options)}]


def parse_record(rec: dict, templates: PromptTemplates | None = None) -> Problem:
    question = require(rec, "question")
    domain = require(rec, "domain")
    kind = require(rec, "type", (str, list))
    if isinstance(kind, list):  # occasionally a list; the official scorer takes the first
        if not kind:
            raise RecordError("type", "empty list")
        kind = kind[0]
    details = require(rec, "details", dict)
    level = details.get("level")
    if not isinstance(level, str):
        raise RecordError("details.level", "missing or not a string")
    prompt = rec.get("prompt") or {}
    system = prompt.get("default", "") if isinstance(prompt, dict) else str(prompt)
    labels, texts = [], []
    if kind.startswith("mcq"):
        choices = require(rec, "choices", dict)
        texts, labels = choices.get("text"), choices.get("label")
        if not isinstance(texts, list) or not isinstance(labels, list) or len(texts) != len(labels) or not texts:
            raise RecordError("choices", "needs equal-length non-empty 'text' and 'label' lists")
        if not all(isinstance(x, str) for x in texts + labels):
            raise RecordError("choices", "'text' and 'label' must hold strings")
        gold = rec.get("answerKey")
        if gold not in labels:
            raise RecordError("answerKey", f"'{gold}' is not one of the labels {labels}")
        messages = mcq_messages(system, question, labels, texts, templates)
    else:
        gold = rec.get("answerKey") or rec.get("answer")
        if not isinstance(gold, str) or not gold:
            raise RecordError("answer", "missing gold answer")
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    return Problem(id=record_id(rec), source="sciknoweval", messages=messages, answer=gold, choices=list(texts),
                   labels=list(labels), domain=domain,
                   metadata={"level": level, "type": kind, "task": details.get("task"), "subtask": details.get("subtask")})


def _paths(path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl"))
        if files:
            return files
        raise DataError(f"{path}: no .json or .jsonl files")
    raise DataError(f"{path}: no such file or directory")


def read_sciknoweval(path, *, domains=None, levels=None, types=None, on_error: str = "strict",
                     templates: PromptTemplates | None = None) -> ReadResult:
    result = read_with(lambda r: parse_record(r, templates), _paths(path), on_error)
    result.problems = [
        p for p in result.problems
        if (domains is None or p.domain in domains) and (levels is None or p.metadata["level"] in levels)
        and (types is None or p.metadata["type"] in types)
    ]
    return result


def split_by_domain(problems: list[Problem], test_fraction: float = 0.1, seed: int = 42) -> dict[str, dict[str, list[Problem]]]:
    """{domain: {"train": [...], "test": [...]}}: a seeded shuffle per domain, the last fraction is test."""
    out: dict[str, dict[str, list[Problem]]] = {}
    for domain in sorted({p.domain for p in problems}):
        items = sorted((p for p in problems if p.domain == domain), key=lambda p: p.id)
        random.Random(f"{seed}:{domain}").shuffle(items)
        n_test = max(1, round(test_fraction * len(items))) if len(items) > 1 else 0
        out[domain] = {"train": items[: len(items) - n_test], "test": items[len(items) - n_test :]}
    return out


def read_paper_protocol(path, *, on_error: str = "strict") -> dict[str, dict[str, list[Problem]]]:
    r = read_sciknoweval(path, domains=PAPER["domains"], levels=PAPER["levels"], types=PAPER["types"], on_error=on_error)
    return split_by_domain(r.problems, PAPER["test_fraction"], PAPER["seed"])


def grade(problem: Problem, response: str) -> tuple[float, str]:
    """(reward, feedback); the feedback never reveals the answer."""
    if not problem.labels:
        raise ValueError(f"{problem.id}: open-ended SciKnowEval questions have no grader here (data.types: mcq only)")
    if mcq_correct(response, problem.answer, problem.labels, problem.choices):
        return 1.0, ""
    pred = mcq_prediction(response, problem.labels)
    return 0.0, f"Your answer ({pred}) is incorrect." if pred else "Your response did not contain an answer."


def load(d: DataParams, templates: PromptTemplates, split: str, seed: int) -> list[Problem]:
    """The embedded set has its splits; real files are one set: a seeded share of each domain is held out."""
    filters = {"domains": d.domains, "levels": d.levels, "types": d.types}  # record filters, then the split
    if d.path == "embedded":
        return read_sciknoweval(BENCHMARK.embedded_path(split), on_error=d.on_error, templates=templates, **filters).problems
    problems = read_sciknoweval(d.path, on_error=d.on_error, templates=templates, **filters).problems
    parts = split_by_domain(problems, d.holdout_fraction, d.holdout_seed)
    return [p for domain in sorted(parts) for p in parts[domain][split]]


def summarize(ps: list[Problem]) -> dict:
    return {"by_domain": dict(Counter(p.domain for p in ps)), "by_level": dict(Counter(p.metadata["level"] for p in ps)),
            "by_type": dict(Counter(p.metadata["type"] for p in ps))}


BENCHMARK = Benchmark(
    name="sciknoweval",
    description="SciKnowEval: science multiple-choice questions (L3, four domains in the paper), graded in-process",
    read=read_sciknoweval, parse=parse_record, grade_text=grade, load=load, summarize=summarize,
    templates={"mcq_user": "{question}\n\n{options}", "mcq_option": "{label}. {text}"},
)
