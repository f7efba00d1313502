"""Benchmark problems -> sandbox jobs (records are parsed by their benchmark: vpd_core.data.registry)."""

from __future__ import annotations

from vpd_core.data.registry import benchmark
from vpd_core.data.schema import DataError, Problem, RecordError

from .types import Job, JobError, Semantics

__all__ = ["job_from_problem", "job_from_record", "JobError"]


def job_from_problem(problem: Problem, code: str, *, split: str = "all", stop_at_first_failure: bool = False,
                     time_limit_s: float = 6.0, memory_mb: int | None = 512, semantics: Semantics = "robust") -> Job:
    """split: "all" (evaluation: public then private tests) or "train" (the SDPO training subset)."""
    tests = problem.train_tests if split == "train" and problem.train_tests is not None else problem.tests
    return Job(code=code, tests=tests, fn_name=problem.fn_name, time_limit_s=time_limit_s, memory_mb=memory_mb,
               stop_at_first_failure=stop_at_first_failure, semantics=semantics, setup=problem.setup)


def job_from_record(record: dict, code: str, source: str = "livecodebench", **kwargs) -> Job:
    """One released record of a sandbox-graded benchmark (a `code_generation_lite` record, a HumanEval
    problem...) and a program -> a job over all its tests."""
    entry = benchmark(source)
    if entry.grading != "sandbox":
        raise JobError(f"{source} is not graded in the sandbox")
    if not isinstance(record, dict):
        raise JobError(f"problem: expected a JSON object (one {source} record)")
    try:
        problem = entry.parse(record)
    except (RecordError, DataError) as e:
        raise JobError(str(e)) from None
    return job_from_problem(problem, code, **kwargs)
