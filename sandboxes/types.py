"""What goes into a sandbox and what comes out."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Literal

from vpd_core.errors import VPDError

# not_run: skipped after MAX_TIMEOUTS time-outs (the supervisor's), so a looping program costs two limits, not n
Status = Literal["pass", "wrong_answer", "runtime_error", "compile_error", "timeout", "memory_limit", "output_limit",
                 "not_run"]
STATUSES = ("pass", "wrong_answer", "runtime_error", "compile_error", "timeout", "memory_limit", "output_limit",
            "not_run")


Semantics = Literal["robust", "lcb"]
SEMANTICS = ("robust", "lcb")


class SandboxError(RuntimeError):
    """Infrastructure failure (daemon gone, container died, sandbox tool missing).

    Never a verdict: callers retry or fail the task, they do not score the program.
    """


class JobError(VPDError):
    """A job is malformed (bad test type, missing function name...)."""


@dataclass
class TestCase:
    __test__ = False  # not a pytest class
    input: str
    output: str
    # assertion: `input` is test code defining check(candidate); a pass is no exception (HumanEval)
    testtype: Literal["stdin", "functional", "assertion"] = "stdin"


@dataclass
class Job:
    code: str
    tests: list[TestCase]
    fn_name: str | None = None  # set: call-based grading (LeetCode) or the assertion tests' candidate; None: stdin/stdout
    time_limit_s: float = 6.0  # per test, wall clock (LiveCodeBench's default)
    memory_mb: int | None = 512  # the program's address space; None: only the sandbox's own limit
    stop_at_first_failure: bool = False  # True: the official evaluation's early exit
    # robust: the program as written, stdin every usual way, results compared as JSON (training);
    # lcb: LiveCodeBench's grader with its quirks (README "Sandbox semantics"); always stops at the first failure
    semantics: Semantics = "robust"
    setup: str = ""  # trusted code run before the program in its namespace (assertion tests: HumanEval's prompt)

    def __post_init__(self):
        self.tests = [t if isinstance(t, TestCase) else TestCase(**t) for t in self.tests]
        kinds = {t.testtype for t in self.tests}
        if kinds - {"stdin", "functional", "assertion"}:
            raise JobError(f"unknown test type(s) {sorted(kinds - {'stdin', 'functional', 'assertion'})}")
        if kinds & {"functional", "assertion"} and not self.fn_name:
            raise JobError("functional and assertion tests need fn_name (the function they call)")
        if "assertion" in kinds and len(kinds) > 1:
            raise JobError("assertion tests cannot be mixed with stdin or functional tests in one job")
        if self.semantics not in SEMANTICS:
            raise JobError(f"semantics: expected one of {', '.join(SEMANTICS)}, got {self.semantics!r}")
        if "assertion" in kinds and self.semantics == "lcb":
            raise JobError("semantics lcb is LiveCodeBench's grader; assertion tests run with robust")
        if self.setup and "assertion" not in kinds:
            raise JobError("setup code is for assertion tests only")

    def to_wire(self) -> dict:
        return asdict(self)


@dataclass
class TestResult:
    __test__ = False
    status: Status
    input: str = ""
    expected: str = ""
    output: str = ""
    message: str = ""
    exception: str = ""
    traceback: list[str] = field(default_factory=list)
    stderr: str = ""
    elapsed: float | None = None
    size: int = 0  # len(input) + len(expected output) of the full test (excerpts are cut)

    @classmethod
    def from_wire(cls, d: dict) -> TestResult:
        """From the supervisor's JSON, sanitised at the boundary: whatever a program printed becomes
        valid text (lone surrogates would crash a tokenizer), times are finite numbers or None."""
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d and d[k] is not None}
        if known.get("status") not in STATUSES:
            known["status"] = "runtime_error"
        for k in ("input", "expected", "output", "message", "exception", "stderr"):
            known[k] = clean_text(known.get(k, ""))
        known["traceback"] = [clean_text(t) for t in known.get("traceback", [])] if isinstance(known.get("traceback"), list) else []
        e = known.get("elapsed")
        known["elapsed"] = float(e) if isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e) else None
        known["size"] = known.get("size") if isinstance(known.get("size"), int) else 0
        return cls(**known)


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value) -> str:
    """Text that encodes as UTF-8: lone surrogates become U+FFFD; non-text becomes ''."""
    return _SURROGATE.sub("\ufffd", value) if isinstance(value, str) else ""


@dataclass
class ExecResult:
    tests: list[TestResult]
    extracted: bool = True  # False: no code block in the response (nothing was run)
    truncated: bool = False  # the response hit the length limit
    backend: str = ""

    @property
    def passed(self) -> bool:
        return self.extracted and bool(self.tests) and all(t.status == "pass" for t in self.tests)

    @property
    def reward(self) -> int:
        return int(self.passed)

    @property
    def pass_fraction(self) -> float:
        return sum(t.status == "pass" for t in self.tests) / len(self.tests) if self.tests else 0.0

    def to_dict(self) -> dict:
        return {"passed": self.passed, "reward": self.reward, "tests": [asdict(t) for t in self.tests]}
