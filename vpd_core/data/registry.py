"""Every benchmark the tool knows, one entry each: how to read it, load its splits, summarise it,
prompt it and grade it.

An entry is the module-level `BENCHMARK` of a module in `vpd_core/data/benchmarks/`; adding a
benchmark is one new module there (plus its tests). The loop, the graders, the CLI and the config
(`data.source`, the prompt templates, `sandbox.semantics`) ask this registry, never a list of names.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal

from .schema import DataError, Problem, ReadResult

if TYPE_CHECKING:
    from ..config import DataParams, PromptTemplates

EMBEDDED = Path(__file__).resolve().parents[2] / "data" / "embedded"
TEST_KINDS = ("stdin", "functional", "assertion")


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str  # one line, for `vpd data inspect` and the docs
    # (path, *, on_error, templates, **filters) -> ReadResult: a file (or directory) of the released format
    read: Callable[..., ReadResult]
    # one released record -> Problem (templates may be None: the defaults); `vpd sandbox check --problem`
    parse: Callable[..., Problem]
    # the prompt templates it renders, with their defaults: fields of config.PromptTemplates
    templates: dict[str, str] = field(default_factory=dict)
    # text: graded in-process by `grade_text(problem, response) -> (reward, feedback)`;
    # sandbox: the program in the response runs on the problem's tests (of `test_kinds`)
    grading: Literal["text", "sandbox"] = "text"
    grade_text: Callable[[Problem, str], tuple[float, str]] | None = None
    test_kinds: tuple[str, ...] = ()
    # data.* params -> keyword filters for `read` (contest dates, domains, ...)
    filters: Callable[[DataParams], dict] = lambda data: {}
    # (data params, templates, split, seed) -> the split's problems, when it is not simply `read`
    # over data/embedded/<name>/<split>.jsonl or data.path (generated sets, held-out shares)
    load: Callable[[DataParams, PromptTemplates, str, int], list[Problem]] | None = None
    # the shipped set of a split (default data/embedded/<name>/<split>.jsonl)
    embedded: Callable[[str], Path] | None = None
    summarize: Callable[[list[Problem]], dict] = lambda problems: {}  # `vpd data inspect` breakdowns
    evaluation_only: bool = False  # training on it needs data.train_on_evaluation_set: true
    lcb_semantics: bool = False  # sandbox.semantics "lcb" applies (and `auto` picks it for evaluation)

    def __post_init__(self):
        if self.grading == "text" and self.grade_text is None:
            raise ValueError(f"benchmark {self.name}: text grading needs grade_text")
        if self.grading == "sandbox" and (not self.test_kinds or set(self.test_kinds) - set(TEST_KINDS)):
            raise ValueError(f"benchmark {self.name}: sandbox grading needs test_kinds from {TEST_KINDS}")

    def embedded_path(self, split: str) -> Path:
        if split not in ("train", "test"):
            raise DataError(f"split must be 'train' or 'test', got '{split}'")
        return self.embedded(split) if self.embedded else EMBEDDED / self.name / f"{split}.jsonl"

    def problems(self, data: DataParams, templates: PromptTemplates, split: str, seed: int) -> list[Problem]:
        """The split's problems with the data.* filters (before any training pool is drawn)."""
        if split == "train" and self.evaluation_only and not data.train_on_evaluation_set:
            raise DataError(f"{self.name} is an evaluation set: training on it needs data.train_on_evaluation_set: true")
        if self.load is not None:
            return self.load(data, templates, split, seed)
        path = self.embedded_path(split) if data.path == "embedded" else Path(data.path)
        return self.read(path, on_error=data.on_error, templates=templates, **self.filters(data)).problems


@cache
def registry() -> dict[str, Benchmark]:
    from . import benchmarks as package

    found: dict[str, Benchmark] = {}
    owners: dict[str, str] = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
        entry = getattr(importlib.import_module(f"{package.__name__}.{module}"), "BENCHMARK", None)
        if entry is None:
            continue
        if entry.name in found:
            raise ValueError(f"benchmark '{entry.name}' is defined twice ({module})")
        for key in entry.templates:
            if key in owners:
                raise ValueError(f"prompt template '{key}' belongs to {owners[key]} and {entry.name}")
            owners[key] = entry.name
        found[entry.name] = entry
    return found


def names() -> tuple[str, ...]:
    return tuple(registry())


def benchmark(name: str) -> Benchmark:
    try:
        return registry()[name]
    except KeyError:
        raise DataError(f"unknown benchmark '{name}' (one of {', '.join(names())})") from None


def read_source(source: str, path: str | Path, *, on_error: str = "strict", **kwargs) -> ReadResult:
    return benchmark(source).read(path, on_error=on_error, **kwargs)


def embedded_path(source: str, split: str) -> Path:
    return benchmark(source).embedded_path(split)


def inspect_summary(source: str, result: ReadResult) -> dict:
    """What `vpd data inspect` prints: counts, skipped records, the benchmark's breakdowns."""
    ps = result.problems
    out = {"source": source, "records": len(ps), "skipped": len(result.skipped), "skipped_records": result.skipped}
    return {**out, **benchmark(source).summarize(ps)}
