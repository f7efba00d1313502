"""Fixture records in the real LiveCodeBench `code_generation_lite` schema, shared by the tests."""

import base64
import json
import pickle
import zlib

from vpd_core.data.benchmarks.livecodebench import encode_tests


def lcb_record(public, private=(), func_name=None, **fields) -> dict:
    """public / private: (input, output) pairs; functional tests when func_name is given.
    Public tests are a JSON string and private ones base64(zlib(pickle)) as in the released files."""
    kind = "functional" if func_name else "stdin"

    def tests(pairs):
        return [{"input": i, "output": o, "testtype": kind} for i, o in pairs]

    rec = {"question_title": "t", "question_content": "c", "platform": "atcoder", "question_id": "abc1_a",
           "contest_id": "abc1", "contest_date": "2025-02-01T00:00:00", "starter_code": "", "difficulty": "easy",
           "public_test_cases": json.dumps(tests(public)), "private_test_cases": encode_tests(tests(private)),
           "metadata": json.dumps({"func_name": func_name} if func_name else {})}
    return {**rec, **fields}


def tampered_blob(marker) -> str:
    """A private-test blob whose pickle would create `marker` if it were ever unpickled naively."""

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
