"""Nothing a program does stops grading (issue 17, points 1-2), on every backend: each of these
programs gets a verdict with feedback instead of a SandboxError, the verdict and the feedback are
valid text and JSON, and the next program runs normally."""

import json
import math
import os
import time

import pytest

from conftest import SANDBOX_BACKENDS
from sandboxes import Job
from sandboxes.feedback import feedback_text

FRAME = "import os, json\nos.write(1, {payload} + b'\\n')\nprint('nope')"
DEEP = 3000

UNCRASHABLE = {
    # name: (job kwargs, accepted statuses of the first test)
    "snan_token": (dict(code="print('sNaN')", tests=[{"input": "", "output": "1"}]), {"wrong_answer"}),
    "snan_both_sides": (dict(code="print('sNaN 1')", tests=[{"input": "", "output": "sNaN 2"}]), {"wrong_answer"}),
    "nan_is_not_equal": (dict(code="print('NaN')", tests=[{"input": "", "output": "nan"}]), {"wrong_answer"}),
    "deeply_nested_return": (dict(code=f"def f(x):\n    v = []\n    for _ in range({DEEP}):\n        v = [v]\n    return v",
                                  fn_name="f", tests=[{"input": "1", "output": "[1]", "testtype": "functional"}]),
                             {"wrong_answer", "runtime_error"}),
    "forged_deep_json_frame": (dict(code=FRAME.format(payload="b'[' * 100000 + b']' * 100000"),
                                    tests=[{"input": "", "output": "x"}]), {"wrong_answer"}),
    "forged_string_elapsed": (dict(code=FRAME.format(
        payload="json.dumps({'i': 0, 'output': 'x', 'error': None, 'elapsed': 'fast'}).encode()"),
        tests=[{"input": "", "output": "x"}]), {"wrong_answer", "pass"}),
    "forged_error_without_message": (dict(code=FRAME.format(
        payload="json.dumps({'i': 0, 'output': None, 'error': {'type': 'X'}, 'elapsed': 0}).encode()"),
        tests=[{"input": "", "output": "x"}]), {"wrong_answer"}),
    "forged_list_output": (dict(code=FRAME.format(
        payload="json.dumps({'i': 0, 'output': ['x'], 'error': None, 'elapsed': 0}).encode()"),
        tests=[{"input": "", "output": "x"}]), {"wrong_answer"}),
    "forged_ready_frames": (dict(code="import os\nfor _ in range(50):\n    os.write(1, b'{\"ready\": true}\\n')\n"
                                      "import time\ntime.sleep(30)", tests=[{"input": "", "output": "x"}]),
                            {"timeout"}),
    "deep_directory_chain": (dict(code=f"import os\nfor _ in range({DEEP}):\n    os.mkdir('d')\n    os.chdir('d')\nprint('made')",
                                  tests=[{"input": "", "output": "x"}]), {"wrong_answer"}),
    "lone_surrogates": (dict(code="import sys\nprint('\\ud800 bad \\udfff')\nsys.stderr.write('\\udc80')\nraise ValueError('\\ud834')",
                             tests=[{"input": "", "output": "x"}]), {"runtime_error"}),
    "patched_perf_counter": (dict(code="import time\ntime.perf_counter = lambda: float('nan')\nprint(input())",
                                  tests=[{"input": "1", "output": "1"}, {"input": "2", "output": "3"}]),
                             {"pass"}),
}


@pytest.mark.parametrize("name", sorted(UNCRASHABLE))
def test_program_gets_a_verdict_never_an_infrastructure_error(sandbox, name):
    kwargs, accepted = UNCRASHABLE[name]
    result = sandbox.run(Job(time_limit_s=2.0, **kwargs))  # a SandboxError here fails the test
    assert result.tests[0].status in accepted, result.tests[0]
    text = json.dumps(result.to_dict(), allow_nan=False)  # valid JSON: no NaN, no lone surrogate escapes trip it
    text.encode("utf-8")
    feedback = feedback_text(result)
    feedback.encode("utf-8")  # a tokenizer gets valid text
    assert all(t.elapsed is None or math.isfinite(t.elapsed) for t in result.tests)
    follow = sandbox.run(Job(code="import os\nprint(len(os.listdir('.')), input())", tests=[{"input": "7", "output": "0 7"}]))
    assert follow.passed, follow.tests[0]


def test_surrogate_feedback_reaches_the_tokenizer(sandbox, tok):
    kwargs, _ = UNCRASHABLE["lone_surrogates"]
    result = sandbox.run(Job(time_limit_s=2.0, **kwargs))
    feedback = feedback_text(result)
    assert "\ufffd" in feedback and "ValueError" in feedback
    tok(feedback)  # would raise on a lone surrogate


def test_slow_honest_program_on_many_tests_is_graded_per_test(sandbox):
    """12 tests, each a little under the limit, then 12 that all time out: the whole program's
    deadline comes from the number of tests and the per-test limit; after two time-outs the
    remaining tests are not run."""
    spin = "import time\nn = int(input())\nt = time.monotonic()\nwhile time.monotonic() - t < 0.6:\n    pass\nprint(n)"
    ok = sandbox.run(Job(code=spin, tests=[{"input": str(i), "output": str(i)} for i in range(12)], time_limit_s=1.0))
    assert ok.passed, [t.status for t in ok.tests]
    sleepy = "import time\ntime.sleep(5)"
    slow = sandbox.run(Job(code=sleepy, tests=[{"input": str(i), "output": "x"} for i in range(12)], time_limit_s=0.5))
    assert [t.status for t in slow.tests] == ["timeout"] * 2 + ["not_run"] * 10


@pytest.mark.parametrize("backend", SANDBOX_BACKENDS)
def test_time_spent_waiting_for_a_cpu_is_not_charged(backend):
    """Three programs per core: an honest one needing 1.2 s of CPU (limit 2 s) takes ~3.6 s of wall
    time among spinners, and passes; the spinners still time out (within MAX_CONTENTION limits)."""
    from sandboxes import make_sandbox

    if not os.path.exists("/proc/self/schedstat"):  # a kernel without CONFIG_SCHED_INFO: no credit to test
        pytest.skip("the kernel reports no run delay (/proc/<pid>/schedstat)")
    n = 3 * (os.cpu_count() or 1)
    honest = Job(code="import time\nt = time.process_time()\nwhile time.process_time() - t < 1.2:\n    pass\nprint(input())",
                 tests=[{"input": "1", "output": "1"}], time_limit_s=2.0)
    spinner = Job(code="while True:\n    pass", tests=[{"input": "", "output": "x"}], time_limit_s=2.0)
    with make_sandbox(backend, concurrency=n) as sb:
        t0 = time.monotonic()
        results = sb.run_batch([spinner] * (n // 2) + [honest] + [spinner] * (n - n // 2 - 1))
        wall = time.monotonic() - t0
    honest_result = results[n // 2]
    assert honest_result.passed, honest_result.tests[0]
    assert honest_result.tests[0].elapsed > 2.0  # it did wait: without the credit this is a time-out
    assert all(r.tests[0].status == "timeout" for i, r in enumerate(results) if i != n // 2)
    assert wall < 3 * 2.0 + 10
