"""The interface every backend implements, and the batched API on top of it."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .types import ExecResult, Job, SandboxError, TestResult

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"


def default_concurrency(processes: int = 1) -> int:
    """Programs at a time: twice the cores (shared by `processes` training processes). A program that
    sleeps or blocks needs no core, and time a program spends waiting for one is not charged to it
    (the supervisor's run-delay credit), so more programs than cores cost no verdicts and overlap
    the waits (docs/benchmarks.md: 1.8x the throughput of `cores` on a corpus with time-outs)."""
    return max(1, 2 * (os.cpu_count() or 1) // processes)


class Sandbox(ABC):
    backend = ""

    def __init__(self, concurrency: int | None = None):
        self.concurrency = concurrency or default_concurrency()

    @abstractmethod
    def run(self, job: Job) -> ExecResult:
        """Run one program on its tests. Raises SandboxError on infrastructure failure."""

    def run_batch(self, jobs: list[Job]) -> list[ExecResult]:
        """Many programs, results in input order, `concurrency` at a time."""
        if not jobs:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs))) as pool:
            return list(pool.map(self.run, jobs))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# The supervisor's cap on one attempt's start-up (sandboxes/runtime/supervisor.py)
SUPERVISOR_STARTUP_GRACE_S = 3.0


def host_timeout(job: Job) -> float:
    """How long the host waits for the supervisor before calling it an infrastructure failure.

    Derived from the tests: in the worst case every test times out and its attempt is restarted,
    each costing the per-test limit, a start-up (capped by the supervisor's grace) and the kill.
    """
    return len(job.tests) * (job.time_limit_s + SUPERVISOR_STARTUP_GRACE_S + 1.0) + 20.0


def parse_result(text: str, backend: str) -> ExecResult:
    for line in reversed(text.splitlines()):
        if line.startswith("RESULT "):
            data = json.loads(line[len("RESULT ") :])
            if "infra_error" in data:
                raise SandboxError(f"{backend}: supervisor failed: {data['infra_error']}")
            return ExecResult(tests=[TestResult.from_wire(t) for t in data["tests"]], backend=backend)
    raise SandboxError(f"{backend}: no result from the supervisor (output: {text[-300:]!r})")
