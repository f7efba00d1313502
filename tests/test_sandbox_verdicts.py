"""Verdicts with LiveCodeBench semantics, on every backend (a real dockerd and real bubblewrap)."""

import json
import subprocess
import sys
import time

import pytest

from sandboxes import Job
from sandboxes.extract import extract_code
from sandboxes.feedback import feedback_text
from records import lcb_record, tampered_blob
from sandboxes.jobs import JobError, job_from_record


def stdin_job(code, cases, **kw):
    return Job(code=code, tests=[{"input": i, "output": o} for i, o in cases], **kw)


def fn_job(code, fn, cases, **kw):
    return Job(code=code, fn_name=fn, tests=[{"input": i, "output": o, "testtype": "functional"} for i, o in cases], **kw)


def statuses(result):
    return [t.status for t in result.tests]


ADD = "a, b = map(int, input().split())\nprint(a + b)\n"


def test_stdin_right_and_wrong(sandbox):
    r = sandbox.run(stdin_job(ADD, [("1 2\n", "3\n"), ("5 5\n", "11\n"), ("-1 1", "0")]))
    assert statuses(r) == ["pass", "wrong_answer", "pass"]
    assert not r.passed and r.reward == 0 and r.pass_fraction == pytest.approx(2 / 3)
    assert r.tests[1].output == "10\n" and "10 != 11" in r.tests[1].message
    assert sandbox.run(stdin_job(ADD, [("1 2\n", "3\n")])).passed


@pytest.mark.parametrize(
    "printed, expected, status",
    [("3", "3.0", "pass"), ("0.10 0.2", "0.1 0.20", "pass"), ("1e2", "100", "pass"), ("3.0001", "3", "wrong_answer"),
     ("  7  \n\n", "7", "pass"), ("1\n2", "1 2", "wrong_answer"), ("abc", "abd", "wrong_answer"), ("1 2", "1 2 0", "wrong_answer")],
)
def test_float_and_whitespace_rules(sandbox, printed, expected, status):
    r = sandbox.run(stdin_job(f"print({printed!r}, end='')", [("", expected)]))
    assert statuses(r) == [status]


def test_functional_class_solution_and_plain_function(sandbox):
    cls = "class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n        for i, x in enumerate(nums):\n            if target - x in seen:\n                return (seen[target - x], i)\n            seen[x] = i\n"
    r = sandbox.run(fn_job(cls, "twoSum", [("[2, 7, 11, 15]\n9", "[0, 1]"), ("[3, 3]\n6", "[0, 1]"), ("[1, 2]\n3", "[1, 0]")]))
    assert statuses(r) == ["pass", "pass", "wrong_answer"]  # tuples compare as lists
    plain = "def maxSum(a, b):\n    return max(a) + b\n"
    assert sandbox.run(fn_job(plain, "maxSum", [("[1, 5]\n2", "7")])).passed


def test_programs_may_import_numpy_and_sortedcontainers(sandbox):
    # what LiveCodeBench's evaluation environment provides beyond the standard library
    code = ("import numpy as np\nfrom sortedcontainers import SortedList\n"
            "xs = list(map(int, input().split()))\ns = SortedList(xs)\nprint(int(np.sum(xs)), s[0], s[-1])\n")
    r = sandbox.run(stdin_job(code, [("3 1 2\n", "6 1 3\n")]))
    assert r.passed, r.tests[0].exception


def test_missing_function_and_syntax_error_are_compile_errors(sandbox):
    r = sandbox.run(fn_job("def other(x):\n    return x\n", "solve", [("1", "1"), ("2", "2")]))
    assert statuses(r) == ["compile_error", "compile_error"] and "solve" in r.tests[0].exception
    r = sandbox.run(stdin_job("print(1\n", [("", "1"), ("", "1")]))
    assert statuses(r) == ["compile_error", "compile_error"] and "SyntaxError" in r.tests[0].exception
    r = sandbox.run(stdin_job("print(1\n", [("", "1"), ("", "1")], stop_at_first_failure=True))
    assert statuses(r) == ["compile_error"]


def test_runtime_error_has_exception_and_traceback(sandbox):
    code = "def f(x):\n    return 10 // x\n\nprint(f(int(input())))\n"
    r = sandbox.run(stdin_job(code, [("5", "2"), ("0", "0")]))
    assert statuses(r) == ["pass", "runtime_error"]
    t = r.tests[1]
    assert t.exception == "ZeroDivisionError: integer division or modulo by zero"
    assert t.traceback[-1] == 'File "solution.py", line 2, in f\n    return 10 // x'
    assert len(t.traceback) == 2


def test_deep_recursion_and_big_integers(sandbox):
    deep = "import sys\ndef depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\nprint(depth(int(input())))\n"
    assert sandbox.run(stdin_job(deep, [("30000", "30000")])).passed
    big = "n = int(input())\nprint(2 ** n)\n"
    expected = subprocess.run([sys.executable, "-c", "import sys; sys.set_int_max_str_digits(0); print(2 ** 20000)"],
                              capture_output=True, text=True).stdout  # 6021 digits: past Python's default 4300 cap
    assert sandbox.run(stdin_job(big, [("20000", expected)])).passed


def test_lcb_io_idioms(sandbox):
    idioms = [
        "import sys\ndata = sys.stdin.read().split()\nprint(sum(map(int, data)))",
        "print(sum(map(int, open(0).read().split())))",
        "import sys\nprint(sum(map(int, sys.stdin.buffer.read().split())))",
        "def main():\n    print(sum(map(int, input().split())))\n\nif __name__ == '__main__':\n    main()",
        "import sys\nprint(sum(map(int, input().split())))\nsys.exit(0)\nprint('never')",
        "import sys\nsys.stdout.write(str(sum(map(int, input().split()))) + '\\n')",
    ]
    for code in idioms:
        assert sandbox.run(stdin_job(code, [("1 2 3\n", "6\n")])).passed, code


def test_preamble_names_are_available(sandbox):
    code = "print(gcd(12, 18), bisect_left([1, 2, 3], 2), list(accumulate([1, 2])), Counter('aab')['a'])"
    assert sandbox.run(stdin_job(code, [("", "6 1 [1, 3] 2")])).passed


def test_timeout_then_remaining_tests_still_run(sandbox):
    code = "x = input()\nwhile x == 'loop':\n    pass\nprint(x)\n"
    r = sandbox.run(stdin_job(code, [("a", "a"), ("loop", "loop"), ("b", "b")], time_limit_s=1.0))
    assert statuses(r) == ["pass", "timeout", "pass"]
    r = sandbox.run(stdin_job(code, [("a", "a"), ("loop", "loop"), ("b", "b")], time_limit_s=1.0, stop_at_first_failure=True))
    assert statuses(r) == ["pass", "timeout"]


def test_after_two_timeouts_the_remaining_tests_are_not_run(sandbox):
    """A program that loops on every test costs two time limits, not one per test."""
    code = "while True:\n    pass\n"
    t0 = time.monotonic()
    r = sandbox.run(stdin_job(code, [(str(i), str(i)) for i in range(5)], time_limit_s=1.0))
    assert statuses(r) == ["timeout", "timeout", "not_run", "not_run", "not_run"]
    assert time.monotonic() - t0 < 5 * 1.0  # five time-outs would take five seconds and more
    assert not r.passed and "Time Limit Exceeded" in feedback_text(r)


def test_stop_at_first_failure(sandbox):
    r = sandbox.run(stdin_job(ADD, [("1 1", "2"), ("1 1", "3"), ("1 1", "2")], stop_at_first_failure=True))
    assert statuses(r) == ["pass", "wrong_answer"]


def test_batch_keeps_order(sandbox):
    jobs = [stdin_job(ADD, [(f"{i} 1", str(i + (1 if i % 3 else 2)))]) for i in range(12)]
    results = sandbox.run_batch(jobs)
    assert [r.passed for r in results] == [bool(i % 3) for i in range(12)]


# ----------------------------------------------------------------------------- host side: extraction, records


def test_extract_last_fenced_block():
    text = "Try:\n```python\nprint(1)\n```\nBetter:\n```python\nprint(2)\nprint(3)\n```\nDone."
    e = extract_code(text)
    assert e.outcome == "ok" and e.code == "print(2)\nprint(3)"
    assert extract_code("no code here").outcome == "no_code_block"
    assert extract_code("```python\nprint(1)", truncated=True).outcome == "truncated"
    assert extract_code("```python\nprint(1)").outcome == "no_code_block"


def record(**kw):
    return lcb_record([("1 2\n", "3\n")], [("2 2\n", "4\n")], **kw)


def test_record_to_job_public_then_private():
    job = job_from_record(record(), ADD)
    assert [t.input for t in job.tests] == ["1 2\n", "2 2\n"] and job.fn_name is None


def test_tampered_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    blob = tampered_blob(marker)
    with pytest.raises(JobError, match="private_test_cases: refusing to load global"):
        job_from_record(record(private_test_cases=blob), ADD)
    assert not marker.exists()


@pytest.mark.parametrize(
    "change, message",
    [({"public_test_cases": "[{\"input\": \"1\"}]"}, "public_test_cases[0]: a test needs 'input' and 'output'"),
     ({"private_test_cases": "%%%notbase64"}, "private_test_cases: not JSON and not base64"),
     ({"metadata": "{bad"}, "metadata: not valid JSON"),
     ({"public_test_cases": json.dumps([{"input": "1", "output": "1", "testtype": "functional"}]), "private_test_cases": ""},
      "metadata.func_name: functional tests need a function name"),
     ({"public_test_cases": json.dumps([{"input": "1", "output": "1", "testtype": "weird"}])}, "testtype: unknown test type 'weird'")],
)
def test_bad_records_name_the_field(change, message):
    with pytest.raises(JobError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        job_from_record(record(**change), ADD)


def test_stderr_is_never_a_failure_by_itself(sandbox):
    """2 MB on stderr, then the right answer: a pass (LiveCodeBench ignores stderr); stdout past
    its limit is still an output-limit failure."""
    noisy = "import sys\nsys.stderr.write('x' * (2 << 20))\nprint(int(input()) + 1)"
    r = sandbox.run(stdin_job(noisy, [("1", "2"), ("5", "6")]))
    assert r.passed and all(len(t.stderr) <= 4096 for t in r.tests), r.tests[0]
    flood = sandbox.run(stdin_job("print('x' * (2 << 20))", [("", "x")]))
    assert flood.tests[0].status == "output_limit"


def test_memory_mb_is_the_programs_limit_and_null_lifts_it(sandbox):
    """sandbox.memory_mb reaches the program (the verdict names the limit); null leaves only the
    sandbox's own (the container's 1 GB on Docker)."""
    big = "data = b'x' * (300 << 20)\nprint(len(data) >> 20)"
    capped = sandbox.run(stdin_job(big, [("", "300")], memory_mb=128))
    assert capped.tests[0].status == "memory_limit" and "128 MB" in capped.tests[0].message, capped.tests[0]
    assert sandbox.run(stdin_job(big, [("", "300")], memory_mb=None)).passed


def test_the_grader_passes_params_memory_to_every_job(sandbox):
    from sandboxes.grading import code_grader
    from vpd_core.data.schema import Problem
    from vpd_core.sequences import Rollout

    problem = Problem(id="p", source="livecodebench", messages=[], tests=[{"input": "", "output": "300", "testtype": "stdin"}])
    response = "```python\ndata = b'x' * (300 << 20)\nprint(len(data) >> 20)\n```"
    rollout = Rollout([1], [2], [0.0], "stop", response)
    assert code_grader(sandbox, "all", 6.0, memory_mb=128)([(problem, rollout)])[0][0] == 0.0
    assert code_grader(sandbox, "all", 6.0, memory_mb=None)([(problem, rollout)])[0][0] == 1.0


def test_a_programs_memory_budget_is_the_same_on_both_backends(_sandboxes):
    """Docker's programs are forks of a zygote that preloaded numpy; its address space is added to
    their RLIMIT_AS, so the largest allocation under memory_mb equals a fresh interpreter's (bwrap)."""
    probe = ("lo, hi = 0, 1024\nwhile lo < hi:\n    mid = (lo + hi + 1) // 2\n    try:\n        b = bytearray(mid << 20)\n"
             "        del b\n        lo = mid\n    except MemoryError:\n        hi = mid - 1\nprint(lo)")
    budget = {b: int(_sandboxes(b).run(stdin_job(probe, [("", "0")], memory_mb=256)).tests[0].output) for b in ("docker", "bwrap")}
    assert 200 < budget["bwrap"] < 256
    assert abs(budget["docker"] - budget["bwrap"]) <= 16, budget
