"""Feedback text for every branch of method.md §7, including the truncation limits."""

from sandboxes.feedback import MAX_TOTAL, NO_CODE_BLOCK, TRUNCATED, feedback_text
from sandboxes.types import ExecResult, TestResult


def res(*tests, **kw):
    return ExecResult(tests=list(tests), **kw)


def t(status, inp="1 2", exp="3", out="", **kw):
    return TestResult(status=status, input=inp, expected=exp, output=out, size=len(inp) + len(exp), **kw)


def test_all_pass_is_empty():
    assert feedback_text(res(t("pass"), t("pass"))) == ""


def test_no_code_block_and_truncated_response():
    assert feedback_text(ExecResult(tests=[], extracted=False)) == NO_CODE_BLOCK
    assert feedback_text(ExecResult(tests=[], extracted=False, truncated=True)) == TRUNCATED


def test_runtime_error_first_one_only_with_three_frames():
    tb = [f'File "solution.py", line {i}, in f{i}\n    x = {i}' for i in range(1, 6)]
    text = feedback_text(res(t("pass"), t("wrong_answer", out="9"), t("runtime_error", inp="5 0", exception="ZeroDivisionError: division by zero", traceback=tb),
                             t("runtime_error", inp="7 0", exception="KeyError: 3"), t("timeout")))
    assert text == "\n".join(["Runtime Error", "ZeroDivisionError: division by zero", *tb[-3:], "Last Executed Input:", "5 0"])


def test_memory_and_output_limits_are_runtime_failures():
    assert feedback_text(res(t("memory_limit", inp="9"))).startswith("Memory Limit Exceeded\nLast Executed Input:\n9")
    assert feedback_text(res(t("output_limit", inp="8"))).startswith("Output Limit Exceeded\nLast Executed Input:\n8")


def test_compile_error():
    text = feedback_text(res(t("compile_error", exception="SyntaxError: '(' was never closed (solution.py, line 1)")))
    assert text == "Compile Error\nSyntaxError: '(' was never closed (solution.py, line 1)"


def test_timeout_when_no_runtime_error():
    text = feedback_text(res(t("wrong_answer", out="4"), t("timeout", inp="100000")))
    assert text == "Time Limit Exceeded\nLast Executed Input:\n100000"


def test_two_shortest_wrong_answers_in_test_order():
    tests = [t("wrong_answer", inp="1 2 3 4 5", exp="15", out="14"), t("pass"), t("wrong_answer", inp="1", exp="1", out="0"),
             t("wrong_answer", inp="2 2", exp="4", out="5")]
    text = feedback_text(res(*tests))
    assert text == ("Test Case 3: Wrong Answer\nInput:\n1\nOutput:\n0\nExpected:\n1\n\n"
                    "Test Case 4: Wrong Answer\nInput:\n2 2\nOutput:\n5\nExpected:\n4")


def test_truncation_limits():
    many_lines = "\n".join(f"line{i}" for i in range(12))
    text = feedback_text(res(t("wrong_answer", inp=many_lines, exp="y" * 600, out="z" * 600)))
    lines = text.split("\n")
    assert lines[2:11] == [f"line{i}" for i in range(8)] + ["... (4 more lines)"]
    assert "z" * 250 + "..." in lines and "y" * 250 + "..." in lines
    text = feedback_text(res(t("wrong_answer", inp="x" * 400, exp="1", out="2")))
    assert text.split("\n")[2] == "x" * 250 + "..."
    huge_tb = ['File "solution.py", line 1, in f\n    ' + "q" * 1500] * 3
    text = feedback_text(res(t("runtime_error", exception="E: " + "e" * 1500, traceback=huge_tb)))
    assert len(text) == MAX_TOTAL + 3 and text.endswith("...")
