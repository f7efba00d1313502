"""LeetCode-like feedback text from per-test results (method.md §7).

Priority: a compile error, else the first runtime failure (runtime error, memory or
output limit), else the first timeout, else the two shortest wrong answers.
Inputs show at most 8 lines x 250 chars, outputs 250 chars, the whole text 2000.
"""

from __future__ import annotations

from .types import ExecResult, TestResult

MAX_INPUT_LINES = 8
MAX_LINE = 250
MAX_OUTPUT = 250
MAX_TOTAL = 2000

NO_CODE_BLOCK = (
    "Your response did not contain a code block. Put the complete solution in one ```python code block."
)
TRUNCATED = (
    "Your response was truncated before the code block was complete. Write a shorter response "
    "and close the ```python code block."
)
RUNTIME_TITLES = {"runtime_error": "Runtime Error", "memory_limit": "Memory Limit Exceeded",
                  "output_limit": "Output Limit Exceeded"}


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def show_input(text: str) -> str:
    lines = text.rstrip("\n").split("\n")
    shown = [cut(line, MAX_LINE) for line in lines[:MAX_INPUT_LINES]]
    if len(lines) > MAX_INPUT_LINES:
        shown.append(f"... ({len(lines) - MAX_INPUT_LINES} more lines)")
    return "\n".join(shown)


def show_output(text: str) -> str:
    return cut(text.rstrip("\n"), MAX_OUTPUT)


def _runtime(t: TestResult, title: str) -> str:
    parts = [title]
    if t.exception:
        parts.append(t.exception)
    parts.extend(t.traceback[-3:])
    parts += ["Last Executed Input:", show_input(t.input)]
    return "\n".join(parts)


def wrong_answer(k: int, t: TestResult) -> str:
    if not t.output and not t.expected:  # an assertion test whose condition is not a comparison
        return f"Test Case {k}: Wrong Answer\nFailed assertion:\n{show_input(t.input)}"
    return (f"Test Case {k}: Wrong Answer\nInput:\n{show_input(t.input)}\nOutput:\n{show_output(t.output)}"
            f"\nExpected:\n{show_output(t.expected)}")


def feedback_text(result: ExecResult) -> str:
    """'' when every test passed."""
    if not result.extracted:
        return TRUNCATED if result.truncated else NO_CODE_BLOCK
    tests = result.tests
    if all(t.status == "pass" for t in tests):
        return ""
    compile_error = next((t for t in tests if t.status == "compile_error"), None)
    if compile_error is not None:
        parts = ["Compile Error"] + ([compile_error.exception] if compile_error.exception else [])
        text = "\n".join(parts + compile_error.traceback[-3:])
    elif (rt := next((t for t in tests if t.status in RUNTIME_TITLES), None)) is not None:
        text = _runtime(rt, RUNTIME_TITLES[rt.status])
    elif (to := next((t for t in tests if t.status == "timeout"), None)) is not None:
        text = "\n".join(["Time Limit Exceeded", "Last Executed Input:", show_input(to.input)])
    else:
        wrong = [(k, t) for k, t in enumerate(tests, 1) if t.status == "wrong_answer"]
        wrong = sorted(wrong, key=lambda kt: (kt[1].size or len(kt[1].input) + len(kt[1].expected), kt[0]))[:2]
        text = "\n\n".join(wrong_answer(k, t) for k, t in sorted(wrong))
    return cut(text, MAX_TOTAL)
