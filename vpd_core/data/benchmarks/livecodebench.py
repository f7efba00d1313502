"""LiveCodeBench `code_generation_lite` JSONL shards (test.jsonl ... test6.jsonl).

Every field is a string in the released files; test lists are JSON strings, and
private tests are base64(zlib(pickle(JSON text))). The pickle is decoded with an
unpickler that refuses every global, so a tampered file cannot execute code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import pickle
import random
import zlib
from datetime import date, datetime
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ..prompts import fill, templates_or_default
from ..registry import Benchmark
from ..schema import DataError, Problem, ReadResult, RecordError, read_with, require

if TYPE_CHECKING:
    from ...config import DataParams, PromptTemplates

RELEASES = {  # cumulative file sets (data-formats.md §3.1)
    "release_v1": ["test.jsonl"],
    "release_v2": ["test.jsonl", "test2.jsonl"],
    "release_v3": ["test.jsonl", "test2.jsonl", "test3.jsonl"],
    "release_v4": ["test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl"],
    "release_v5": ["test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl"],
    "release_v6": ["test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl", "test6.jsonl"],
}
RELEASES["release_latest"] = RELEASES["release_v6"]
for _n in range(1, 7):
    RELEASES[f"v{_n}"] = ["test.jsonl" if _n == 1 else f"test{_n}.jsonl"]
PAPER_V6_WINDOW = (date(2025, 2, 1), date(2025, 5, 1))  # [start, end): the paper's 131 problems
PLATFORMS = ("leetcode", "codeforces", "atcoder")
# The largest private-test blob in the released shards decompresses to well under this; a crafted
# 1.4 MB blob would otherwise expand to gigabytes
MAX_TESTS_BYTES = 256 << 20
DIFFICULTIES = ("easy", "medium", "hard")


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def decode_tests(blob, field: str = "private_test_cases") -> list[dict]:
    """Plain JSON (or an already-decoded list), or base64(zlib(pickle(JSON text)))."""
    if isinstance(blob, list):
        return blob
    if blob in ("", None):
        return []
    try:
        plain = json.loads(blob)
    except (json.JSONDecodeError, TypeError):
        pass
    except RecursionError:
        raise RecordError(field, "JSON nested too deep") from None
    else:
        if not isinstance(plain, list):
            raise RecordError(field, f"expected a list of tests, got {type(plain).__name__}")
        return plain
    if not isinstance(blob, str):
        raise RecordError(field, f"expected a string or a list of tests, got {type(blob).__name__}")
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(blob.encode("utf-8"), validate=False), MAX_TESTS_BYTES + 1)
        if len(raw) > MAX_TESTS_BYTES or inflater.unconsumed_tail:
            raise RecordError(field, f"expands past {MAX_TESTS_BYTES >> 20} MB when decompressed (a decompression bomb?)")
        obj = _NoGlobals(io.BytesIO(raw)).load()
    except pickle.UnpicklingError as e:
        raise RecordError(field, str(e)) from None
    except (binascii.Error, zlib.error, EOFError, ValueError, AttributeError, TypeError, IndexError, KeyError,
            RecursionError, MemoryError) as e:  # a no-globals pickle can still fail (unhashable keys, deep nesting)
        raise RecordError(field, f"not JSON and not base64/zlib/pickle encoded ({type(e).__name__}: {e})") from None
    try:
        tests = json.loads(obj) if isinstance(obj, str) else obj
    except json.JSONDecodeError as e:
        raise RecordError(field, f"decoded pickle does not hold JSON ({e})") from None
    except RecursionError:
        raise RecordError(field, "decoded pickle holds JSON nested too deep") from None
    if not isinstance(tests, list):
        raise RecordError(field, f"expected a list of tests, got {type(tests).__name__}")
    return tests


def encode_tests(tests: list[dict]) -> str:
    """The released files' encoding (for fixtures and the embedded set)."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode("utf-8")


def check_tests(tests: list, field: str) -> list[dict]:
    out = []
    for i, t in enumerate(tests):
        if not isinstance(t, dict) or "input" not in t or "output" not in t:
            raise RecordError(f"{field}[{i}]", "a test needs 'input' and 'output'")
        kind = t.get("testtype", "stdin")
        if kind not in ("stdin", "functional"):
            raise RecordError(f"{field}[{i}].testtype", f"unknown test type '{kind}'")
        out.append({"input": str(t["input"]), "output": str(t["output"]), "testtype": kind})
    return out


def train_split(tests: list[dict], problem_id: str, seed: int, fraction: float = 0.5) -> list[dict]:
    """SDPO protocol: training sees a seeded random `fraction` of each problem's tests (at least one)."""
    if not tests:
        return []
    rng = random.Random(int(hashlib.sha256(f"{seed}:{problem_id}".encode()).hexdigest()[:16], 16))
    k = max(1, round(fraction * len(tests)))
    keep = sorted(rng.sample(range(len(tests)), k))
    return [tests[i] for i in keep]


def code_messages(question: str, starter: str, t: PromptTemplates | None = None) -> list[dict]:
    """LiveCodeBench's official generic chat prompt (starter code, or the stdin format)."""
    t = templates_or_default(t)
    if starter.strip():
        user = fill(t.code_user, question=question, format=t.code_format_starter, starter=starter)
    else:
        user = fill(t.code_user, question=question, format=t.code_format_stdin, starter=t.code_stdin_placeholder)
    return [{"role": "system", "content": t.code_system}, {"role": "user", "content": user}]


def parse_record(rec: dict, templates: PromptTemplates | None = None, split_seed: int | None = None) -> Problem:
    for name in ("question_title", "question_content", "platform", "question_id", "contest_id",
                 "contest_date", "starter_code", "difficulty", "public_test_cases", "metadata"):
        require(rec, name, (str, list, dict) if name in ("public_test_cases", "metadata") else str)
    if rec["platform"] not in PLATFORMS:
        raise RecordError("platform", f"expected one of {PLATFORMS}, got '{rec['platform']}'")
    if rec["difficulty"] not in DIFFICULTIES:
        raise RecordError("difficulty", f"expected one of {DIFFICULTIES}, got '{rec['difficulty']}'")
    try:
        contest = datetime.fromisoformat(rec["contest_date"])
    except ValueError:
        raise RecordError("contest_date", f"not an ISO date: '{rec['contest_date']}'") from None
    try:
        meta = json.loads(rec["metadata"]) if isinstance(rec["metadata"], str) else rec["metadata"]
    except json.JSONDecodeError as e:
        raise RecordError("metadata", f"not valid JSON ({e.msg})") from None
    except RecursionError:
        raise RecordError("metadata", "JSON nested too deep") from None
    if not isinstance(meta, dict):
        raise RecordError("metadata", f"expected a JSON object, got {type(meta).__name__}")
    public = check_tests(decode_tests(rec["public_test_cases"], "public_test_cases"), "public_test_cases")
    private = check_tests(decode_tests(rec.get("private_test_cases", ""), "private_test_cases"), "private_test_cases")
    tests = public + private
    if not tests:
        raise RecordError("public_test_cases", "the problem has no tests")
    fn_name = meta.get("func_name")
    if any(t["testtype"] == "functional" for t in tests) and not fn_name:
        raise RecordError("metadata.func_name", "functional tests need a function name")
    pid = rec["question_id"]
    return Problem(
        id=pid, source="livecodebench", messages=code_messages(rec["question_content"], rec["starter_code"], templates),
        tests=tests, train_tests=None if split_seed is None else train_split(tests, pid, split_seed), fn_name=fn_name,
        difficulty=rec["difficulty"], platform=rec["platform"],
        metadata={"title": rec["question_title"], "contest_id": rec["contest_id"], "contest_date": contest.isoformat(),
                  "starter_code": rec["starter_code"], "public_tests": len(public)},
    )


def shard_paths(path: str | Path, release: str | None = None) -> list[Path]:
    """A file, or a directory of shards narrowed to a release tag's files."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or directory")
    if release is None:
        files = sorted(path.glob("test*.jsonl"))
    else:
        if release not in RELEASES:
            raise DataError(f"unknown LiveCodeBench release '{release}' (known: {', '.join(sorted(RELEASES))})")
        files = [path / f for f in RELEASES[release]]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise DataError(f"release {release} needs {', '.join(missing)}")
    if not files:
        raise DataError(f"{path}: no test*.jsonl shards")
    return files


def read_livecodebench(path, *, release: str | None = None, start: date | None = None, end: date | None = None,
                       split_seed: int | None = None, on_error: str = "strict",
                       templates: PromptTemplates | None = None) -> ReadResult:
    """Problems with start <= contest date < end (either bound optional)."""
    result = read_with(lambda r: parse_record(r, templates, split_seed), shard_paths(path, release), on_error)

    def inside(p: Problem) -> bool:
        d = datetime.fromisoformat(p.metadata["contest_date"]).date()
        return (start is None or d >= start) and (end is None or d < end)

    result.problems = [p for p in result.problems if inside(p)]
    return result


def read_paper_v6(path, *, split_seed: int = 0, on_error: str = "strict") -> ReadResult:
    """The paper's LiveCodeBench v6 subset: contest dates in [2025-02-01, 2025-05-01), 50% train tests."""
    return read_livecodebench(path, release="release_v6" if Path(path).is_dir() else None, start=PAPER_V6_WINDOW[0],
                              end=PAPER_V6_WINDOW[1], split_seed=split_seed, on_error=on_error)


def summarize(ps: list[Problem]) -> dict:
    dates = sorted(p.metadata["contest_date"][:10] for p in ps)
    return {"by_difficulty": dict(Counter(p.difficulty for p in ps)), "by_platform": dict(Counter(p.platform for p in ps)),
            "by_testtype": dict(Counter("functional" if p.fn_name else "stdin" for p in ps)),
            "tests": sum(len(p.tests) for p in ps), "contest_dates": [dates[0], dates[-1]] if dates else []}


def filters(d: DataParams) -> dict:
    # train and test are the same problems: training sees a seeded 50% of each problem's tests
    return {"split_seed": d.split_seed, "release": d.release, "start": d.start_date, "end": d.end_date}


BENCHMARK = Benchmark(
    name="livecodebench",
    description="LiveCodeBench code_generation_lite: contest problems, stdin and call-based tests, run in the sandbox",
    read=read_livecodebench, parse=parse_record, grading="sandbox", test_kinds=("stdin", "functional"),
    filters=filters, summarize=summarize, lcb_semantics=True,
    templates={  # LiveCodeBench's official generic chat prompt (lcb_runner/prompts/code_generation.py)
        "code_system": "You are an expert Python programmer. You will be given a question (problem specification) "
        "and will generate a correct Python program that matches the specification and passes all tests.",
        "code_user": "### Question:\n{question}\n\n### Format: {format}\n```python\n{starter}\n```\n\n"
        "### Answer: (use the provided format with backticks)\n\n",
        "code_format_starter": "You will use the following starter code to write the solution to the problem and "
        "enclose your code within delimiters.",
        "code_format_stdin": "Read the inputs from stdin solve the problem and write the answer to stdout (do not "
        "directly test on the sample inputs). Enclose your code within delimiters as follows. Ensure that when the "
        "python program runs, it reads the inputs, runs the algorithm and writes output to STDOUT.",
        "code_stdin_placeholder": "# YOUR CODE HERE",
    },
)
