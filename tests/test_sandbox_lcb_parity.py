"""`lcb` semantics reproduce LiveCodeBench's grader on the parity corpus (sandboxes/parity.py), on a
real dockerd and real bubblewrap; `robust` differs exactly where the corpus says and why."""

import json
import subprocess
import sys
from collections import Counter

import pytest

from conftest import SANDBOX_BACKENDS
from records import lcb_record
from sandboxes import Job, make_sandbox
from sandboxes.parity import PAIRS, PROBLEMS
from sandboxes.types import JobError
from vpd_core.config import load_params
from vpd_core.loop import grading_semantics


def first_failure(result):
    t = next((t for t in result.tests if t.status != "pass"), None)
    return "no tests" if t is None else f"{t.status}: {(t.exception or t.message)[:120]}"


def test_the_corpus_covers_every_category_with_both_verdicts():
    assert len(PAIRS) >= 150
    assert len({p.id for p in PAIRS}) == len(PAIRS)
    assert {p.problem for p in PAIRS} == set(PROBLEMS)
    by_category = Counter((p.category, p.lcb) for p in PAIRS)
    for category in {p.category for p in PAIRS}:
        assert by_category[(category, True)] and by_category[(category, False)], category
    differ = [p for p in PAIRS if p.lcb != p.robust]
    assert len(differ) >= 20
    assert all(p.robust_why for p in differ), [p.id for p in differ if not p.robust_why]
    assert all(p.why for p in PAIRS)


@pytest.mark.parametrize("backend", SANDBOX_BACKENDS)
def test_lcb_semantics_give_the_reference_verdict_on_every_pair(backend):
    # memory_mb None: the reference sets no memory limit (rule R12); concurrency 4: the
    # time-out pairs sleep, they need no core
    with make_sandbox(backend, concurrency=4) as sb:
        results = sb.run_batch([p.job("lcb", memory_mb=None) for p in PAIRS])
    wrong = [(p.id, p.lcb, first_failure(r)) for p, r in zip(PAIRS, results) if r.passed != p.lcb]
    assert not wrong


def test_robust_semantics_differ_from_the_reference_only_where_documented():
    with make_sandbox("docker", concurrency=4) as sb:
        results = sb.run_batch([p.job("robust", memory_mb=512) for p in PAIRS])
    wrong = [(p.id, p.robust, first_failure(r)) for p, r in zip(PAIRS, results) if r.passed != p.robust]
    assert not wrong


def test_lcb_stops_at_the_first_failure_and_reports_the_rule(sandbox):
    code = "n = int(input())\nprint(n if n != 2 else -1)\n"
    tests = [{"input": f"{k}\n", "output": f"{k}\n"} for k in (1, 2, 3, 4)]
    lcb = sandbox.run(Job(code=code, tests=tests, semantics="lcb"))
    robust = sandbox.run(Job(code=code, tests=tests))
    assert [t.status for t in lcb.tests] == ["pass", "wrong_answer"]
    assert [t.status for t in robust.tests] == ["pass", "wrong_answer", "pass", "pass"]
    quit_ = sandbox.run(Job(code="print(input())\nquit()\n", tests=tests[:1], semantics="lcb"))
    assert quit_.tests[0].status == "runtime_error" and "NoneType" in quit_.tests[0].exception


def test_a_numpy_array_result_is_a_runtime_error_in_lcb(sandbox):
    job = Job(code="import numpy as np\ndef f(x):\n    return np.array([x, x])\n", fn_name="f", semantics="lcb",
              tests=[{"input": "1", "output": "[1, 1]", "testtype": "functional"}])
    t = sandbox.run(job).tests[0]
    assert t.status == "runtime_error" and "ambiguous" in t.exception


def test_a_large_expected_output_fits_its_limit(sandbox):
    """The stdout limit grows with the expected output: a correct 3 MB answer passes in both semantics."""
    n = 400_000
    expected = "\n".join(str(i) for i in range(n)) + "\n"
    code = "n = int(input())\nprint('\\n'.join(map(str, range(n))))\n"
    for semantics in ("robust", "lcb"):
        r = sandbox.run(Job(code=code, tests=[{"input": f"{n}\n", "output": expected}] * 2, semantics=semantics))
        assert r.passed, (semantics, first_failure(r))
    flood = sandbox.run(Job(code="print('x' * (3 << 20))\n", tests=[{"input": "", "output": "x\n"}]))
    assert flood.tests[0].status == "output_limit"


def test_semantics_is_validated():
    with pytest.raises(JobError, match="semantics"):
        Job(code="", tests=[], semantics="strict")


def test_auto_semantics_grade_livecodebench_evaluation_as_the_reference():
    lcb = load_params("params.yaml", ["data.source=livecodebench"])
    mini = load_params("params.yaml", ["data.source=minicode"])
    assert lcb.sandbox.semantics == "auto"
    assert grading_semantics(lcb, "all") == "lcb"
    assert grading_semantics(lcb, "train") == "robust"  # training rewards
    assert grading_semantics(mini, "all") == "robust"
    forced = load_params("params.yaml", ["data.source=livecodebench", "sandbox.semantics=robust"])
    assert grading_semantics(forced, "all") == "robust"


def test_sandbox_check_takes_the_semantics(tmp_path):
    problem = tmp_path / "p.json"
    problem.write_text(json.dumps(lcb_record([("3\n", "3\n")])))
    code = tmp_path / "s.py"
    code.write_text("print(input())\nquit()\n")
    out = {}
    for semantics in ("robust", "lcb"):
        r = subprocess.run([sys.executable, "-m", "vpd.cli", "sandbox", "check", "--problem", str(problem), "--code",
                            str(code), "--backend", "bwrap", "--semantics", semantics, "--memory", "none"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        out[semantics] = json.loads(r.stdout)["passed"]
    assert out == {"robust": True, "lcb": False}
    bad = subprocess.run([sys.executable, "-m", "vpd.cli", "sandbox", "check", "--problem", str(problem), "--code",
                          str(code), "--semantics", "strict"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "semantics" in bad.stderr
