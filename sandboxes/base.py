"""The interface every backend implements, and the batched API on top of it."""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .types import ExecResult, Job, SandboxError, TestResult

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
REPLACE_AFTER_STATUSES = {"timeout", "memory_limit", "output_limit"}
log = logging.getLogger(__name__)


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


class WarmPool(Sandbox):
    """A pool of long-lived sandboxes ("workers": a container, a bubblewrap), each running
    `supervisor.py --serve` and serving many programs one after another: the supervisor kills what a
    program left behind and wipes its scratch space after it. A worker that saw a time-out, an
    out-of-memory kill, an output flood or anything odd is replaced (in the background), as is one
    that served `recycle_after` programs. Infrastructure failures (the worker died, no answer) are
    retried on a fresh worker and, if they persist, raised as SandboxError — never scored.

    A backend implements `_new()` -> a worker with `execute(job, timeout) -> ExecResult`, `destroy()`
    and a `jobs` count; `_usable` and `_failed` are hooks for what a worker depends on (an engine)."""

    def __init__(self, concurrency: int | None = None, retries: int = 2, recycle_after: int = 500):
        super().__init__(concurrency)
        self.retries = retries
        self.recycle_after = recycle_after
        self.idle: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.closed = False
        self.background: list[threading.Thread] = []

    def _fill(self) -> None:
        with ThreadPoolExecutor(max_workers=min(8, self.concurrency)) as pool:  # start them together
            for worker in pool.map(lambda _: self._new(), range(self.concurrency)):
                self.idle.put(worker)

    @abstractmethod
    def _new(self):
        """A started worker, or SandboxError."""

    def _usable(self, worker) -> bool:
        return True

    def _failed(self, worker) -> None:
        """An attempt on `worker` failed (before it is destroyed)."""

    def run(self, job: Job) -> ExecResult:
        if self.closed:
            raise SandboxError(f"{self.backend}: sandbox is closed")
        try:
            worker = self.idle.get(timeout=600)
        except queue.Empty:
            raise SandboxError(f"{self.backend}: no sandbox became free in 600 s") from None
        if not self._usable(worker):  # what it depends on failed since it went idle: start one elsewhere
            self._discard(worker)
            worker = None
        try:
            last: Exception | None = None
            for attempt in range(self.retries + 1):
                if worker is None:
                    worker = self._new()
                try:
                    result = worker.execute(job, host_timeout(job))
                except (OSError, ConnectionError, SandboxError, ValueError) as e:
                    last = e
                    log.warning("%s: attempt %d failed (%s); replacing the sandbox", self.backend, attempt + 1, e)
                    self._failed(worker)
                    self._discard(worker)
                    worker = None
                    continue
                if any(t.status in REPLACE_AFTER_STATUSES for t in result.tests) or worker.jobs >= self.recycle_after:
                    self._discard(worker)
                    worker = None
                return result
            raise SandboxError(f"{self.backend}: infrastructure failure after {self.retries + 1} attempts: {last}")
        finally:
            self._return(worker)

    def _return(self, worker) -> None:
        if worker is not None:
            self.idle.put(worker)
        elif not self.closed:  # a replacement starts in the background: the caller's result is ready now
            self._in_background(self._replace)

    def _replace(self) -> None:
        try:
            worker = self._new()
        except SandboxError as e:
            log.error("%s; the pool shrinks by one", e)
            return
        if self.closed:
            worker.destroy()
        else:
            self.idle.put(worker)

    def _discard(self, worker) -> None:
        self._in_background(worker.destroy)  # don't wait for a removal

    def _in_background(self, work) -> None:
        """Start `work` in a thread that close() waits for."""
        t = threading.Thread(target=work, daemon=True)
        t.start()
        with self.lock:
            self.background = [r for r in self.background if r.is_alive()] + [t]

    def close(self) -> None:
        self.closed = True
        for t in list(self.background):  # removals, and replacements that may still put a worker back
            t.join(timeout=30)
        while True:
            try:
                self.idle.get_nowait().destroy()
            except queue.Empty:
                break


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
