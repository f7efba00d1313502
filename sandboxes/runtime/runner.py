"""Runs one untrusted program on a list of test *inputs* (never the expected outputs).

Started by the supervisor as `python3 -I runner.py`, with rlimits already set.
Reads one JSON job from stdin: {"code", "fn_name", "inputs": [str], "mode": "stdin"|"functional"}.
Writes one JSON line per test to its stdout (the program's own prints are captured in-process):
    {"i": k, "output": str, "stderr": str, "error": null | {...}, "elapsed": s}
or a single {"compile_error": {...}} line. The supervisor compares outputs with
the expected ones; this process never sees them, so it cannot forge a pass.

LiveCodeBench semantics (lcb_runner/evaluation/testing_util.py): the import
preamble, recursion and int-digit limits; stdin programs run as __main__ with
stdin/stdout patched per test (SystemExit caught); functional programs are
loaded once, `Solution()` is instantiated if the code defines it, and the entry
point is called with one JSON value per input line.
"""

import builtins
import io
import json
import os
import sys
import time
import traceback

PREAMBLE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\nfrom functools import *\n"
    "from operator import *\nfrom io import *\nfrom sys import *\nfrom json import *\n"
    "from builtins import *\nfrom typing import *\nimport string\nimport re\nimport datetime\n"
    "import collections\nimport heapq\nimport bisect\nimport copy\nimport math\nimport random\n"
    "import statistics\nimport itertools\nimport functools\nimport operator\nimport io\nimport sys\n"
    "import json\nsys.setrecursionlimit(50000)\n"
)
SOLUTION_FILE = "solution.py"
STREAM_LIMIT = 1 << 20  # bytes of stdout kept per test; more is an output_limit. stderr is kept up to
# the same size and the rest dropped: what a program logs is never a failure by itself (LiveCodeBench
# ignores stderr)


class OutputLimitExceeded(BaseException):
    pass


class LimitedWriter(io.TextIOBase):
    """A text stream that keeps at most `limit` bytes and past it raises (stdout) or drops (stderr)."""

    def __init__(self, limit, truncate=False):
        self.parts, self.size, self.limit, self.truncate = [], 0, limit, truncate
        self.buffer = self  # programs that write bytes to sys.stdout.buffer

    def writable(self):
        return True

    def write(self, s):
        if isinstance(s, (bytes, bytearray)):
            s = bytes(s).decode("utf-8", "replace")
        room = self.limit - self.size
        self.size += len(s)
        if self.size > self.limit:
            if not self.truncate:
                raise OutputLimitExceeded()
            if room > 0:
                self.parts.append(s[:room])
            return len(s)
        self.parts.append(s)
        return len(s)

    def flush(self):
        pass

    def getvalue(self):
        return "".join(self.parts)


def describe(exc, code_lines):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == SOLUTION_FILE]
    tb = []
    for f in frames[-3:]:
        line = code_lines[f.lineno - 1].strip() if f.lineno and 0 < f.lineno <= len(code_lines) else ""
        tb.append(f'File "{SOLUTION_FILE}", line {f.lineno}, in {f.name}' + (f"\n    {line}" if line else ""))
    text = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return {"type": type(exc).__name__, "message": text[:1000], "traceback": tb,
            "memory": isinstance(exc, MemoryError), "output_limit": isinstance(exc, OutputLimitExceeded)}


def main():
    job = json.loads(sys.stdin.read())
    out = os.fdopen(os.dup(1), "w", buffering=1)
    real_open = builtins.open
    try:
        sys.set_int_max_str_digits(50000)
    except AttributeError:
        pass
    code = job["code"]
    code_lines = code.split("\n")
    base = {"__builtins__": builtins}
    exec(compile(PREAMBLE, "<preamble>", "exec"), base)
    try:
        compiled = compile(code, SOLUTION_FILE, "exec")
    except (SyntaxError, ValueError, OverflowError) as e:
        out.write(json.dumps({"compile_error": describe(e, code_lines)}) + "\n")
        return
    out.write(json.dumps({"ready": True}) + "\n")  # the supervisor starts the first test's clock now

    entry = None
    if job["mode"] == "functional":
        ns = dict(base, __name__="solution")
        stdout, stderr = LimitedWriter(STREAM_LIMIT), LimitedWriter(STREAM_LIMIT, truncate=True)
        sys.stdout, sys.stderr = stdout, stderr
        try:
            exec(compiled, ns)
            if "class Solution" in code and "Solution" in ns:
                entry = getattr(ns["Solution"](), job["fn_name"])
            else:
                entry = ns[job["fn_name"]]
        except BaseException as e:  # noqa: BLE001 - the program's failure is data here
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
            err = describe(e, code_lines)
            if isinstance(e, (AttributeError, KeyError)) and job["fn_name"] in str(e):
                err["message"] = f"entry point '{job['fn_name']}' not found"
            out.write(json.dumps({"compile_error": err}) + "\n")
            return
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

    for i, text in enumerate(job["inputs"]):
        stdout, stderr = LimitedWriter(STREAM_LIMIT), LimitedWriter(STREAM_LIMIT, truncate=True)
        stdin = io.TextIOWrapper(io.BytesIO(text.encode()), encoding="utf-8")

        def patched_open(file, *args, **kwargs):
            if file in (0, "/dev/stdin"):  # open(0).read(): a common way to read all input
                return stdin
            return real_open(file, *args, **kwargs)

        error, result = None, None
        sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
        builtins.open = patched_open
        t0 = time.perf_counter()
        try:
            if job["mode"] == "functional":
                args = [json.loads(line) for line in text.split("\n")]
                value = entry(*args)
                if isinstance(value, tuple):
                    value = list(value)
                try:
                    result = json.dumps(value)
                except (TypeError, ValueError):  # not JSON: can never equal a JSON expected value
                    result = json.dumps({"__not_json__": repr(value)[:1000]})
            else:
                try:  # the preamble's `from io import *` binds io.open as a global: patch it there too
                    exec(compiled, dict(base, __name__="__main__", open=patched_open))
                except SystemExit:
                    pass
                result = stdout.getvalue()
        except BaseException as e:  # noqa: BLE001
            error = describe(e, code_lines)
        elapsed = time.perf_counter() - t0
        builtins.open = real_open
        sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__
        out.write(json.dumps({"i": i, "output": result, "printed": stdout.getvalue()[:4096],
                              "stderr": stderr.getvalue()[:4096], "error": error, "elapsed": elapsed}) + "\n")


if __name__ == "__main__":
    main()
