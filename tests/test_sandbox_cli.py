"""`vpd sandbox check`: one JSON object on stdout, exit 0 whatever the verdict; bad input exits 2."""

import json
import os
import subprocess
import sys

import pytest

from records import lcb_record

RECORD = lcb_record(
    [("1\n2", "3")], [("10\n-3", "7"), ("0\n0", "0")], func_name="addTwo",
    question_title="add-two", question_content="Return a + b.", platform="leetcode", question_id="9999",
    contest_id="weekly-contest-999", contest_date="2025-02-01T18:30:00",
    starter_code="class Solution:\n    def addTwo(self, a: int, b: int) -> int:\n        ",
)


def check(tmp_path, code, record=RECORD, *extra, env=None):
    p = tmp_path / "P.json"
    p.write_text(record if isinstance(record, str) else json.dumps(record))
    s = tmp_path / "S.py"
    s.write_text(code)
    return subprocess.run([sys.executable, "-m", "vpd.cli", "sandbox", "check", "--problem", str(p), "--code", str(s), *extra],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("backend", ["docker", "bwrap"])
def test_verdicts_and_feedback(tmp_path, backend):
    ok = check(tmp_path, "class Solution:\n    def addTwo(self, a, b):\n        return a + b\n", RECORD, "--backend", backend)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out == {**out, "passed": True, "reward": 1, "feedback": ""} and len(out["tests"]) == 3
    bad = check(tmp_path, "class Solution:\n    def addTwo(self, a, b):\n        return a - b\n", RECORD, "--backend", backend)
    assert bad.returncode == 0 and len(bad.stdout.strip().splitlines()) == 1
    out = json.loads(bad.stdout)
    assert out["passed"] is False and out["reward"] == 0
    assert [t["status"] for t in out["tests"]] == ["wrong_answer", "wrong_answer", "pass"]
    assert out["feedback"].startswith("Test Case 1: Wrong Answer\nInput:\n1\n2\nOutput:\n-1\nExpected:\n3")
    first = check(tmp_path, "class Solution:\n    def addTwo(self, a, b):\n        return a - b\n", RECORD, "--backend", backend,
                  "--stop-at-first-failure")
    assert [t["status"] for t in json.loads(first.stdout)["tests"]] == ["wrong_answer"]


def test_calling_environment_never_reaches_the_program(tmp_path):
    env = {**os.environ, "VPD_CLI_SECRET": "cli-secret-99"}
    code = "import os\nclass Solution:\n    def addTwo(self, a, b):\n        return str(dict(os.environ))\n"
    for backend in ("docker", "bwrap"):
        r = check(tmp_path, code, RECORD, "--backend", backend, env=env)
        assert r.returncode == 0 and "cli-secret-99" not in r.stdout and "DOCKER_HOST" not in r.stdout


@pytest.mark.parametrize(
    "record, message",
    [("{not json", "P.json: not valid JSON"),
     ({k: v for k, v in RECORD.items() if k != "public_test_cases"}, "P.json: public_test_cases: missing field"),
     ({**RECORD, "private_test_cases": "@@@"}, "P.json: private_test_cases: not JSON and not base64"),
     ({**RECORD, "metadata": "{}"}, "metadata.func_name: functional tests need a function name"),
     ("[1, 2]", "expected a JSON object")],
)
def test_bad_problem_exits_2(tmp_path, record, message):
    r = check(tmp_path, "print(1)", record, "--backend", "bwrap")
    assert r.returncode == 2 and r.stdout == ""
    assert message in r.stderr


def test_missing_files_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "vpd.cli", "sandbox", "check", "--problem", str(tmp_path / "nope.json"),
                        "--code", str(tmp_path / "S.py")], capture_output=True, text=True)
    assert r.returncode == 2 and "nope.json: no such problem file" in r.stderr
    (tmp_path / "P.json").write_text(json.dumps(RECORD))
    r = subprocess.run([sys.executable, "-m", "vpd.cli", "sandbox", "check", "--problem", str(tmp_path / "P.json"),
                        "--code", str(tmp_path / "missing.py")], capture_output=True, text=True)
    assert r.returncode == 2 and "missing.py: no such program file" in r.stderr
