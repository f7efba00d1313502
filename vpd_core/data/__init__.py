"""Benchmarks in one schema: readers for real files, embedded sets, prompts, graders, evaluation."""

from .schema import DataError, Problem, ReadResult

__all__ = ["DataError", "Problem", "ReadResult"]
