"""LiveCodeBench `code_generation_lite` records -> sandbox jobs.

Private tests are base64(zlib(pickle(json))) in the real files; they are decoded
with an unpickler that refuses every global, so a tampered file cannot run code.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickle
import zlib

from .types import Job, JobError, TestCase


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def decode_tests(blob: str, field: str = "private_test_cases") -> list[dict]:
    """Plain JSON, or base64(zlib(pickle(JSON text))) as in the released files."""
    if blob in ("", None):
        return []
    try:
        return json.loads(blob)
    except (json.JSONDecodeError, TypeError):
        pass
    try:
        raw = zlib.decompress(base64.b64decode(blob.encode("utf-8"), validate=False))
        obj = _NoGlobals(io.BytesIO(raw)).load()
    except pickle.UnpicklingError as e:
        raise JobError(f"{field}: {e}") from None
    except (binascii.Error, zlib.error, EOFError, ValueError) as e:
        raise JobError(f"{field}: not JSON and not base64/zlib/pickle encoded ({e})") from None
    try:
        tests = json.loads(obj) if isinstance(obj, str) else obj
    except json.JSONDecodeError as e:
        raise JobError(f"{field}: decoded pickle does not hold JSON ({e})") from None
    if not isinstance(tests, list):
        raise JobError(f"{field}: expected a list of tests, got {type(tests).__name__}")
    return tests


def encode_tests(tests: list[dict]) -> str:
    """The released files' encoding, for building fixtures."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode("utf-8")


def _tests(record: dict, field: str) -> list[TestCase]:
    raw = record.get(field, "")
    tests = decode_tests(raw, field) if isinstance(raw, str) else raw
    out = []
    for i, t in enumerate(tests):
        if not isinstance(t, dict) or "input" not in t or "output" not in t:
            raise JobError(f"{field}[{i}]: a test needs 'input' and 'output'")
        kind = t.get("testtype", "stdin")
        if kind not in ("stdin", "functional"):
            raise JobError(f"{field}[{i}].testtype: unknown test type '{kind}'")
        out.append(TestCase(str(t["input"]), str(t["output"]), kind))
    return out


def job_from_record(record: dict, code: str, *, stop_at_first_failure: bool = False,
                    time_limit_s: float = 6.0, memory_mb: int = 512) -> Job:
    """Public then private tests, in that order (the official evaluation's order)."""
    if not isinstance(record, dict):
        raise JobError("problem: expected a JSON object (one code_generation_lite record)")
    if "public_test_cases" not in record:
        raise JobError("public_test_cases: missing field")
    meta = record.get("metadata", "{}")
    try:
        meta = json.loads(meta) if isinstance(meta, str) else (meta or {})
    except json.JSONDecodeError as e:
        raise JobError(f"metadata: not valid JSON ({e})") from None
    tests = _tests(record, "public_test_cases") + _tests(record, "private_test_cases")
    if not tests:
        raise JobError("public_test_cases/private_test_cases: the problem has no tests")
    return Job(code=code, tests=tests, fn_name=meta.get("func_name"), time_limit_s=time_limit_s,
               memory_mb=memory_mb, stop_at_first_failure=stop_at_first_failure)
