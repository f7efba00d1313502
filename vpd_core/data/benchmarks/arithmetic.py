"""A built-in arithmetic task: the core's end-to-end smoke workload until real datasets land.

Problems are generated from a seed; the verifier reads the final answer
(`\\boxed{...}` or else the last number) and returns a binary reward plus
feedback text, the same contract the code sandbox and graders will follow.
"""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING

from ..registry import Benchmark
from ..schema import DataError, Problem

if TYPE_CHECKING:
    from ...config import DataParams, PromptTemplates

SYSTEM = "Answer with only the final number."  # SmolLM2-135M solves ~14% of these at T=1
_BOXED = re.compile(r"\\boxed\{\s*(-?\d+)\s*\}")
_NUMBER = re.compile(r"-?\d+")


def make_problems(n: int, max_operand: int, seed: int) -> list[Problem]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(1, max_operand), rng.randint(1, max_operand)
        op = rng.choice("+-*")
        answer = {"+": a + b, "-": a - b, "*": a * b}[op]
        question = f"What is {a} {op} {b}?"
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        out.append(Problem(f"arith-{i:04d}", "arithmetic", messages, answer=str(answer)))
    return out


def final_answer(text: str) -> int | None:
    boxed = _BOXED.findall(text)
    if boxed:
        return int(boxed[-1])
    numbers = _NUMBER.findall(text)
    return int(numbers[-1]) if numbers else None


def verify(problem: Problem, response: str, truncated: bool = False) -> tuple[float, str]:
    """(reward, feedback). Feedback says what was wrong without revealing the answer."""
    got = final_answer(response)
    if got is None:
        if truncated:
            return 0.0, "Your response was truncated before it gave a final answer."
        return 0.0, "No final answer found. Give the final answer as \\boxed{number}."
    if got == int(problem.answer):
        return 1.0, ""
    return 0.0, f"Your final answer {got} is wrong."


def load(d: DataParams, templates: PromptTemplates, split: str, seed: int) -> list[Problem]:
    """Generated from the seed: the first three quarters train, the rest test."""
    problems = make_problems(d.num_problems, d.max_operand, seed)
    cut = len(problems) * 3 // 4
    return problems[:cut] if split == "train" else problems[cut:]


def no_files(path, **kwargs):
    raise DataError("arithmetic problems are generated from the seed (data.num_problems, data.max_operand): no files")


BENCHMARK = Benchmark(
    name="arithmetic",
    description="arithmetic: generated one-operation sums, the built-in smoke task of `vpd train`",
    read=no_files, parse=no_files, grade_text=verify, load=load,
)
