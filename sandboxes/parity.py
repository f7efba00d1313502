"""The LiveCodeBench parity corpus: (problem, program) pairs with the verdict the reference grader
gives each, and ours in `robust` semantics.

The reference verdicts were established by reading LiveCodeBench's grader
(lcb_runner/evaluation/testing_util.py and compute_code_generation_metrics.py, commit 15808c7):
every pair carries the rule that decides it. `tests/test_sandbox_lcb_parity.py` runs the corpus on
both backends and `benchmarks/lcb_parity.py` writes docs/lcb-parity.md from the same run.

Rules of the reference that decide pairs here (R1-R12; README "Sandbox semantics"):
  R1  stdin programs run as the body of one function: a *final* `if __name__ == '__main__':` block
      is inlined; a guard anywhere else, or written `'__main__' == __name__`, never runs.
  R2  top-level names become that function's locals: `global x` and `globals()` do not see them.
  R3  `from sys import *` in the preamble binds `stdin`/`stdout` to the worker's own streams:
      bare `stdin.read/readline/readlines` are patched per test (work), iterating `stdin` reads
      the worker's empty stdin, bare `stdout.write` is not captured.
  R4  `sys.stdin` is a StringIO (iterable, no `.buffer`); `sys.stdout` a capturing StringIO
      (no `.buffer`; `close()` raises TypeError).
  R5  the global `open` is the real one (bound by the preamble before the per-test patch):
      `open(0)` and `open('/dev/stdin')` read the worker's empty stdin; `builtins.open` is patched.
  R6  reliability_guard: `quit` is None (exit works), os.getcwd/os.system/... are None,
      `import resource` fails; numpy is already imported.
  R7  the preamble comes first, so `from __future__` imports are a SyntaxError.
  R8  functional results are compared with Python's ==: values across numeric types are equal
      (Fraction(3, 2) == 1.5, 1 == True, (3+0j) == 3), a tuple inside a list never equals a list,
      a numpy array's truth value is an error, only a top-level tuple becomes a list.
  R9  call-based programs that contain the text "class Solution" are called through `Solution()`.
  R10 stdout lines compared after strip, numbers token-wise as Decimals; stderr ignored.
  R11 6 s per test; the first failed test ends the program; SystemExit ends a stdin test
      normally but kills a call-based run.
  R12 no memory limit (ours: `sandbox.memory_mb`, null for parity; Docker's container has 1 GB).
"""

from __future__ import annotations

from dataclasses import dataclass

from .types import Job


@dataclass(frozen=True)
class Problem:
    tests: tuple[tuple[str, str], ...]
    fn_name: str | None = None


@dataclass(frozen=True)
class Pair:
    id: str
    category: str
    problem: str
    code: str
    lcb: bool  # the reference's verdict: True = pass
    why: str  # the rule that decides it
    robust: bool  # ours in robust semantics
    robust_why: str = ""  # why robust differs, where it does

    def job(self, semantics: str, memory_mb: int | None = None, time_limit_s: float = 6.0) -> Job:
        p = PROBLEMS[self.problem]
        kind = "functional" if p.fn_name else "stdin"
        return Job(code=self.code, fn_name=p.fn_name, tests=[{"input": i, "output": o, "testtype": kind} for i, o in p.tests],
                   semantics=semantics, memory_mb=memory_mb, time_limit_s=time_limit_s)


PROBLEMS = {
    "sum": Problem((("3\n1 2 3\n", "6\n"), ("1\n5\n", "5\n"), ("4\n-1 -2 10 0\n", "7\n"))),
    "words": Problem((("a b c\n", "c b a\n"), ("hello\n", "hello\n"))),
    "lines": Problem((("3\n", "2\n4\n6\n"), ("1\n", "2\n"))),
    "div": Problem((("1 2\n", "0.5\n"), ("3 4\n", "0.75\n"))),
    "add": Problem((("1\n2", "3"), ("5\n-7", "-2")), "add"),
    "split": Problem((("[1, 2, 3, 4]", "[[2, 4], [1, 3]]"), ("[5]", "[[], [5]]")), "split"),
    "half": Problem((("3", "1.5"), ("5", "2.5")), "half"),
    "is_even": Problem((("4", "true"), ("3", "false")), "isEven"),
    "greet": Problem((('"bob"', '"hi bob"'),), "greet"),
    "counts": Problem((('"aab"', '{"a": 2, "b": 1}'),), "counts"),
}

SUM_BODY = "print(sum(nums))"
PAIRS: list[Pair] = []


def pair(id, category, problem, code, lcb, why, robust=None, robust_why=""):
    PAIRS.append(Pair(id, category, problem, code, lcb, why, lcb if robust is None else robust, robust_why))


# ----------------------------------------------------------------------------- reading input (sum, words)

READERS = [  # (name, program for "sum", lcb, why, robust, robust_why)
    ("input", "n = int(input())\nnums = list(map(int, input().split()))\n", True, "input() reads sys.stdin (R4)"),
    ("sys.stdin.readline", "import sys\nn = int(sys.stdin.readline())\nnums = list(map(int, sys.stdin.readline().split()))\n",
     True, "sys.stdin is the test's StringIO (R4)"),
    ("sys.stdin.read", "import sys\nn, *nums = map(int, sys.stdin.read().split())\n", True, "R4"),
    ("sys.stdin.readlines", "import sys\nlines = sys.stdin.readlines()\nnums = list(map(int, lines[1].split()))\n", True, "R4"),
    ("for line in sys.stdin", "import sys\nrows = [line for line in sys.stdin]\nnums = list(map(int, rows[1].split()))\n",
     True, "a StringIO iterates (R4)"),
    ("input = sys.stdin.readline", "import sys\ninput = sys.stdin.readline\nn = int(input())\nnums = list(map(int, input().split()))\n",
     True, "bound inside the wrapped function, per test (R1, R4)"),
    ("iter(read().split())", "import sys\ndata = iter(sys.stdin.read().split())\nn = int(next(data))\nnums = [int(next(data)) for _ in range(n)]\n",
     True, "R4"),
    ("fileinput", "import fileinput\nrows = list(fileinput.input())\nnums = list(map(int, rows[1].split()))\n",
     True, "fileinput reads sys.stdin at call time (R4)"),
    ("bare stdin.readline", "n = int(stdin.readline())\nnums = list(map(int, stdin.readline().split()))\n",
     True, "the preamble's `stdin` has readline patched (R3)"),
    ("bare stdin.read", "n, *nums = map(int, stdin.read().split())\n", True, "patched read (R3)"),
    ("bare stdin.readlines", "rows = stdin.readlines()\nnums = list(map(int, rows[1].split()))\n", True, "patched readlines (R3)"),
    ("from sys import stdin", "from sys import stdin\nn = int(stdin.readline())\nnums = list(map(int, stdin.readline().split()))\n",
     True, "a hoisted import binds the worker's stdin, whose readline is patched (R3)"),
    ("builtins.open(0)", "import builtins\nn, *nums = map(int, builtins.open(0).read().split())\n", True,
     "builtins.open is mock_open(read_data=input) (R5)"),
    ("bare for line in stdin", "rows = [line for line in stdin]\nnums = list(map(int, rows[1].split()))\n",
     False, "iterating the worker's own stdin reads nothing (R3)", True, "stdin is this test's input"),
    ("from sys import stdin; for line", "from sys import stdin\nrows = list(stdin)\nnums = list(map(int, rows[1].split()))\n",
     False, "R3", True, "stdin is this test's input"),
    ("open(0).read", "n, *nums = map(int, open(0).read().split())\n", False,
     "the global open is the real one: fd 0 is empty there (R5)", True, "open(0) reads this test's input"),
    ("open('/dev/stdin')", "n, *nums = map(int, open('/dev/stdin').read().split())\n", False, "R5", True,
     "/dev/stdin reads this test's input"),
    ("sys.stdin = open(0)", "import sys\nsys.stdin = open(0)\nn, *nums = map(int, sys.stdin.read().split())\n", False, "R5", True,
     "open(0) reads this test's input"),
    ("sys.stdin.buffer", "import sys\nn, *nums = map(int, sys.stdin.buffer.read().split())\n", False,
     "a StringIO has no .buffer: AttributeError (R4)", True, "stdin is a real text stream with a buffer"),
    ("sys.stdin.buffer.readline", "import sys\ninput = sys.stdin.buffer.readline\nn = int(input())\nnums = list(map(int, input().split()))\n",
     False, "R4", True, "stdin has a buffer"),
    ("os.read(0)", "import os\nn, *nums = map(int, os.read(0, 1 << 20).split())\n", False,
     "fd 0 is the worker's empty stdin", False, ""),
]
for name, code, ok, why, *rob in READERS:
    pair(f"read/sum/{name}", "reading input", "sum", code + SUM_BODY + "\n", ok, why, *rob)
# the same readers on a one-line problem (words), where line endings matter
WORD_READERS = [
    ("input", "s = input()\n", True, "R4"),
    ("sys.stdin.readline().split()", "import sys\ns = ' '.join(sys.stdin.readline().split())\n", True, "R4"),
    ("bare stdin.readline()", "s = stdin.readline()\n", True, "patched readline returns the line without its newline (R3)"),
    ("sys.stdin.read().strip()", "import sys\ns = sys.stdin.read().strip()\n", True, "R4"),
    ("open(0).read()", "s = open(0).read().strip()\n", False, "R5", True, "open(0) reads this test's input"),
    ("sys.stdin.buffer", "import sys\ns = sys.stdin.buffer.read().decode().strip()\n", False, "R4", True, "stdin has a buffer"),
]
for name, code, ok, why, *rob in WORD_READERS:
    pair(f"read/words/{name}", "reading input", "words", code + "print(' '.join(s.split()[::-1]))\n", ok, why, *rob)

# ----------------------------------------------------------------------------- printing (lines)

LINES_HEAD = "n = int(input())\nvals = [2 * (i + 1) for i in range(n)]\n"
PRINTERS = [
    ("print each", "for v in vals:\n    print(v)\n", True, "R10"),
    ("join", "print('\\n'.join(map(str, vals)))\n", True, "R10"),
    ("print(*vals, sep)", "print(*vals, sep='\\n')\n", True, "R10"),
    ("sys.stdout.write", "import sys\nsys.stdout.write('\\n'.join(map(str, vals)) + '\\n')\n", True, "sys.stdout is captured (R4)"),
    ("print(file=sys.stdout)", "import sys\nfor v in vals:\n    print(v, file=sys.stdout)\n", True, "R4"),
    ("flush=True", "for v in vals:\n    print(v, flush=True)\n", True, "R10"),
    ("sys.stdout.flush()", "import sys\nprint(*vals, sep='\\n')\nsys.stdout.flush()\n", True, "R10"),
    ("trailing spaces", "for v in vals:\n    print(v, end='  \\n')\n", True, "lines are stripped (R10)"),
    ("trailing blank lines", "print(*vals, sep='\\n')\nprint()\nprint()\n", True, "the output is stripped (R10)"),
    ("no final newline", "print(*vals, sep='\\n', end='')\n", True, "R10"),
    ("leading spaces", "for v in vals:\n    print(' ', v)\n", True, "R10"),
    ("stderr too", "import sys\nfor v in vals:\n    print(v)\n    print('debug', v, file=sys.stderr)\n", True, "stderr is ignored (R10)"),
    ("2 MB to stderr", "import sys\nsys.stderr.write('x' * (2 << 20))\nprint(*vals, sep='\\n')\n", True,
     "stderr is ignored (R10); ours keeps 1 MB of it and drops the rest"),
    ("blank line between", "print(vals[0])\nprint()\nprint(*vals[1:], sep='\\n')\n", False, "one line too many (R10)"),
    ("all on one line", "print(*vals)\n", False, "mismatched line count (R10)"),
    ("2 MB to stdout", "print('x' * (2 << 20))\n", False, "wrong output (R10); ours: over the output limit"),
    ("os.write(1)", "import os\nos.write(1, ('\\n'.join(map(str, vals)) + '\\n').encode())\n", False,
     "fd 1 is not captured in either", False),
    ("bare stdout.write", "stdout.write('\\n'.join(map(str, vals)) + '\\n')\n", False,
     "the preamble's `stdout` is the worker's real stdout, not captured (R3)", True, "stdout is this test's capture"),
    ("sys.stdout.buffer.write", "import sys\nsys.stdout.buffer.write(('\\n'.join(map(str, vals)) + '\\n').encode())\n", False,
     "the capturing StringIO has no .buffer (R4)", True, "stdout has a buffer"),
    ("sys.stdout.close()", "import sys\nprint(*vals, sep='\\n')\nsys.stdout.close()\n", False,
     "the capture's close() raises TypeError (R4)", True, "closing stdout after printing is harmless"),
]
for name, code, ok, why, *rob in PRINTERS:
    pair(f"print/lines/{name}", "printing", "lines", LINES_HEAD + code, ok, why, *rob)

DIV_HEAD = "a, b = map(int, input().split())\n"
for name, code, ok, why in [
    ("repr float", "print(a / b)\n", True, "R10"),
    ("6 decimals", "print(f'{a / b:.6f}')\n", True, "0.500000 == 0.5 as Decimals (R10)"),
    ("exponent", "print(f'{a / b:e}')\n", True, "5.000000e-01 == 0.5 as Decimals (R10)"),
    ("fraction text", "print(f'{a}/{b}')\n", False, "1/2 is not a number (R10)"),
    ("rounded", "print(round(a / b, 1))\n", False, "0.8 != 0.75 (R10)"),
    ("trailing token", "print(a / b, 'ok')\n", False, "token counts differ (R10)"),
]:
    pair(f"print/div/{name}", "number formats", "div", DIV_HEAD + code, ok, why)

# ----------------------------------------------------------------------------- program structure (sum)

READ = "n = int(input())\nnums = list(map(int, input().split()))\n"
STRUCTURE = [
    ("main() called", "def main():\n" + "    n = int(input())\n    print(sum(map(int, input().split())))\n\nmain()\n",
     True, "R1"),
    ("guard last", "def main():\n    n = int(input())\n    print(sum(map(int, input().split())))\n\nif __name__ == '__main__':\n    main()\n",
     True, "the final guard is inlined (R1)"),
    ("guard last, double quotes", 'def main():\n    n = int(input())\n    print(sum(map(int, input().split())))\n\nif __name__ == "__main__":\n    main()\n',
     True, "compared after ast.unparse, which normalises quotes (R1)"),
    ("guard with setrecursionlimit", "import sys\ndef main():\n    n = int(input())\n    print(sum(map(int, input().split())))\n\nif __name__ == '__main__':\n    sys.setrecursionlimit(10000)\n    main()\n",
     True, "R1"),
    ("guard not last", "def main():\n    n = int(input())\n    print(sum(map(int, input().split())))\n\nif __name__ == '__main__':\n    main()\n\nDONE = True\n",
     False, "a guard followed by code is not inlined and __name__ is 'tmp_sol' (R1)", True, "runs as __main__"),
    ("reversed guard", "def main():\n    n = int(input())\n    print(sum(map(int, input().split())))\n\nif '__main__' == __name__:\n    main()\n",
     False, "only `__name__ == '__main__'` is recognised (R1)", True, "runs as __main__"),
    ("guard with else", "def main():\n    n = int(input())\n    print(sum(map(int, input().split())))\n\nif __name__ == '__main__':\n    main()\nelse:\n    pass\n",
     True, "the final If is inlined, its else dropped (R1)"),
    ("closure over top-level", "K = 0\ndef total(xs):\n    return sum(xs) + K\n" + READ + "print(total(nums))\n",
     True, "nested functions see the wrapper's locals (R2)"),
    ("late-bound top-level", "def total(xs):\n    return sum(xs) + K\nK = 0\n" + READ + "print(total(nums))\n",
     True, "a closure cell, filled before the call (R2)"),
    ("class uses top-level", "OFFSET = 0\nclass Acc:\n    def __init__(self):\n        self.t = OFFSET\n    def add(self, x):\n        self.t += x\n" + READ + "a = Acc()\nfor x in nums:\n    a.add(x)\nprint(a.t)\n",
     True, "R2"),
    ("global write", "total = 0\ndef add(x):\n    global total\n    total += x\n" + READ + "for x in nums:\n    add(x)\nprint(total)\n",
     False, "`global total` looks in the module, where it is not (R2): NameError", True, "runs as a module"),
    ("global read", "LIMIT = 10 ** 9\ndef check(x):\n    global LIMIT\n    return x <= LIMIT\n" + READ + "print(sum(x for x in nums if check(x)))\n",
     False, "R2", True, "runs as a module"),
    ("globals() lookup", "SCALE = 1\n" + READ + "print(sum(nums) * globals()['SCALE'])\n",
     False, "top-level names are not in globals() (R2): KeyError", True, "runs as a module"),
    ("exec'd helper", "exec('def f(xs):\\n    return sum(xs)')\n" + READ + "print(f(nums))\n",
     False, "inside a function exec defines f in a throwaway locals() dict (R2): NameError", True, "runs as a module"),
    ("exit() after print", READ + "print(sum(nums))\nexit()\n", True, "exit is not disabled; SystemExit ends the test (R6, R11)"),
    ("sys.exit(0) after print", "import sys\n" + READ + "print(sum(nums))\nsys.exit(0)\n", True, "R11"),
    ("raise SystemExit", READ + "print(sum(nums))\nraise SystemExit\n", True, "R11"),
    ("exit() inside a function", "def main():\n    n = int(input())\n    print(sum(map(int, input().split())))\n    exit()\nmain()\n", True, "R11"),
    ("from sys import exit", "from sys import exit\n" + READ + "print(sum(nums))\nexit(0)\n", True, "R11"),
    ("quit() after print", READ + "print(sum(nums))\nquit()\n", False, "reliability_guard sets quit to None: TypeError (R6)",
     True, "quit() is SystemExit"),
    ("os._exit after print", "import os, sys\n" + READ + "print(sum(nums))\nsys.stdout.flush()\nos._exit(0)\n", False,
     "the worker dies before reporting (R11)", False),
    ("from __future__", "from __future__ import annotations\n" + READ + "print(sum(nums))\n", False,
     "after the preamble a __future__ import is a SyntaxError (R7)", True, "the program as written"),
    ("annotated top-level", "n: int = int(input())\nnums: list[int] = list(map(int, input().split()))\nprint(sum(nums))\n", True, "R1"),
    ("import resource", "import resource\n" + READ + "print(sum(nums))\n", False, "sys.modules['resource'] is None (R6)",
     True, "the module exists"),
    ("os.getcwd()", "import os\nos.getcwd()\n" + READ + "print(sum(nums))\n", False, "os.getcwd is None (R6)", True, "works"),
    ("subprocess", "import subprocess\nsubprocess.run(['true'])\n" + READ + "print(sum(nums))\n", False,
     "subprocess.Popen is None (R6)", True, "a child process may run"),
    ("numpy", "import numpy as np\n" + READ + "print(int(np.sum(np.array(nums))))\n", True, "numpy is installed (R6)"),
    ("sortedcontainers", "from sortedcontainers import SortedList\n" + READ + "s = SortedList(nums)\nprint(sum(s))\n", True,
     "environment, not grader: LiveCodeBench's pyproject does not list it; the issue's reference environment had it"),
    ("threading", "import sys, threading\nsys.setrecursionlimit(1 << 20)\nthreading.stack_size(1 << 26)\ndef main():\n    n = int(input())\n    print(sum(map(int, input().split())))\nt = threading.Thread(target=main)\nt.start()\nt.join()\n",
     True, "sys.stdin/stdout are patched process-wide"),
    ("deep recursion, limit raised", "import sys\nsys.setrecursionlimit(300000)\ndef depth(k):\n    return 0 if k == 0 else 1 + depth(k - 1)\ndepth(100000)\n" + READ + "print(sum(nums))\n",
     True, "pure-Python recursion does not use the C stack (3.11+)"),
    ("recursion past the preamble's limit", "def depth(k):\n    return 0 if k == 0 else 1 + depth(k - 1)\ndepth(100000)\n" + READ + "print(sum(nums))\n",
     False, "the preamble sets the limit to 50000: RecursionError"),
    ("only imports", "import sys\nimport math\n", False, "nothing runs: empty output"),
    ("syntax error", READ + "print(sum(nums)\n", False, "SyntaxError"),
    ("runtime error", READ + "print(sum(nums) // 0)\n", False, "ZeroDivisionError"),
    ("name error", READ + "print(summ(nums))\n", False, "NameError"),
    ("match statement", READ + "match len(nums):\n    case _:\n        print(sum(nums))\n", True, "Python 3.10+"),
    ("walrus", "n = int(input())\nprint(sum(x for x in map(int, input().split()) if (y := x) or True))\n", True, "R1"),
    ("sys.stdin.readline with strip", "import sys\nn = int(sys.stdin.readline().strip())\nnums = [int(x) for x in sys.stdin.readline().strip().split(' ')]\nprint(sum(nums))\n",
     True, "R4"),
    ("print inside a loop of lines", "import sys\nfor i, line in enumerate(sys.stdin):\n    if i == 1:\n        print(sum(map(int, line.split())))\n", True, "R4"),
    ("bare stdin.readline past the end", "n = int(stdin.readline())\nnums = list(map(int, stdin.readline().split()))\nextra = stdin.readline()\nextra2 = stdin.readline()\nprint(sum(nums))\n",
     False, "the patched readline iterates input.split('\\n'): past the end it raises StopIteration (R3)",
     True, "readline returns '' at the end"),
    ("input() past the end", READ + "try:\n    input()\n    input()\nexcept EOFError:\n    pass\nprint(sum(nums))\n", True, "EOFError, caught"),
    ("defines input()", "import sys\ndef input():\n    return sys.stdin.readline().rstrip()\n" + READ + "print(sum(nums))\n", True,
     "a local input shadows the builtin inside the wrapper"),
]
for name, code, ok, why, *rob in STRUCTURE:
    pair(f"structure/sum/{name}", "structure", "sum", code, ok, why, *rob)

# ----------------------------------------------------------------------------- limits (sum)

for name, code, ok, why, *rob in [
    ("sleep 8 s", "import time\ntime.sleep(8)\n" + READ + "print(sum(nums))\n", False, "over 6 s (R11)"),
    ("sleep 8 s on the last test", READ + "import time\nif n == 4:\n    time.sleep(8)\nprint(sum(nums))\n", False, "R11"),
    ("infinite loop", READ + "while True:\n    pass\n", False, "R11"),
    ("sleep 1 s", "import time\ntime.sleep(1)\n" + READ + "print(sum(nums))\n", True, "under 6 s (R11)"),
    ("call-based, sleeps 8 s", None, False, "R11"),
    ("640 MB", "block = bytearray(640 << 20)\n" + READ + "print(sum(nums))\n", True,
     "no memory limit (R12); at memory_mb null ours has none either", False, "robust keeps memory_mb: 512 (MemoryError)"),
    ("50 MB", "block = bytearray(50 << 20)\n" + READ + "print(sum(nums))\n", True, "R12"),
]:
    if code is None:
        pair(f"limits/add/{name}", "limits", "add", "import time\ndef add(a, b):\n    time.sleep(8)\n    return a + b\n", ok, why, *rob)
    else:
        pair(f"limits/sum/{name}", "limits", "sum", code, ok, why, *rob)

# ----------------------------------------------------------------------------- call-based

FUNCTIONAL = [
    ("add", "plain function", "def add(a, b):\n    return a + b\n", True, "R9"),
    ("add", "Solution method", "class Solution:\n    def add(self, a: int, b: int) -> int:\n        return a + b\n", True, "R9"),
    ("add", "Solution with helper", "class Solution:\n    def add(self, a, b):\n        return self._s(a, b)\n    def _s(self, a, b):\n        return a + b\n", True, "R9"),
    ("add", "'class Solution' in a comment", "# not a class Solution\ndef add(a, b):\n    return a + b\n", False,
     "the text contains 'class Solution': Solution() is looked up and missing (R9)", True, "the function exists"),
    ("add", "Solution needs arguments", "class Solution:\n    def __init__(self, k):\n        self.k = k\n    def add(self, a, b):\n        return a + b\n",
     False, "Solution() raises TypeError (R9)"),
    ("add", "numpy int", "import numpy as np\ndef add(a, b):\n    return np.int64(a) + np.int64(b)\n", True, "np.int64(3) == 3 (R8)"),
    ("add", "float result", "def add(a, b):\n    return float(a + b)\n", True, "3.0 == 3 (R8)"),
    ("add", "complex result", "def add(a, b):\n    return complex(a + b, 0)\n", True, "(3+0j) == 3 (R8)", False,
     "not JSON: never equal"),
    ("add", "string result", "def add(a, b):\n    return str(a + b)\n", False, "'3' != 3 (R8)"),
    ("add", "None result", "def add(a, b):\n    a + b\n", False, "None != 3 (R8)"),
    ("add", "prints 2 MB", "def add(a, b):\n    print('x' * (2 << 20))\n    return a + b\n", True,
     "a function's prints are not captured or limited"),
    ("add", "sys.exit", "import sys\ndef add(a, b):\n    sys.exit(0)\n", False, "SystemExit kills a call-based run (R11)"),
    ("add", "from __future__", "from __future__ import annotations\ndef add(a: int, b: int) -> int:\n    return a + b\n",
     False, "after the preamble a __future__ import is a SyntaxError (R7)", True, "the program as written"),
    ("add", "__main__ test harness", "def add(a, b):\n    return a + b\n\nif __name__ == '__main__':\n    print(add(int(input()), int(input())))\n",
     True, "the module is not __main__: the harness never runs"),
    ("add", "input() at import", "x = input()\ndef add(a, b):\n    return a + b\n", False, "stdin is empty while loading: EOFError"),
    ("add", "wrong arity", "def add(a):\n    return a\n", False, "TypeError"),
    ("add", "lru_cache", "from functools import lru_cache\n@lru_cache(None)\ndef add(a, b):\n    return a + b\n", True, "R8"),
    ("add", "wrong answer", "def add(a, b):\n    return a - b\n", False, "R8"),
    ("split", "lists", "def split(nums):\n    return [[x for x in nums if x % 2 == 0], [x for x in nums if x % 2]]\n", True, "R8"),
    ("split", "top-level tuple", "def split(nums):\n    return ([x for x in nums if x % 2 == 0], [x for x in nums if x % 2])\n",
     True, "a top-level tuple becomes a list (R8)"),
    ("split", "tuples inside", "def split(nums):\n    return [tuple(x for x in nums if x % 2 == 0), tuple(x for x in nums if x % 2)]\n",
     False, "(2, 4) != [2, 4] (R8)", True, "tuples are lists in JSON"),
    ("split", "numpy arrays", "import numpy as np\ndef split(nums):\n    a = np.array(nums)\n    return [a[a % 2 == 0], a[a % 2 == 1]]\n",
     False, "array == list is elementwise; its truth value raises (R8)", True, "arrays compare as lists"),
    ("split", "floats inside", "def split(nums):\n    return [[float(x) for x in nums if x % 2 == 0], [float(x) for x in nums if x % 2]]\n",
     True, "2.0 == 2 (R8)"),
    ("split", "sets", "def split(nums):\n    return [{x for x in nums if x % 2 == 0}, {x for x in nums if x % 2}]\n", False, "a set != a list (R8)"),
    ("split", "generator", "def split(nums):\n    return (g for g in [[x for x in nums if x % 2 == 0], [x for x in nums if x % 2]])\n",
     False, "a generator != a list (R8)"),
    ("split", "mutates its input", "def split(nums):\n    ev = [x for x in nums if x % 2 == 0]\n    nums[:] = [x for x in nums if x % 2]\n    return [ev, nums]\n",
     True, "R8"),
    ("half", "float", "def half(x):\n    return x / 2\n", True, "R8"),
    ("half", "Fraction", "from fractions import Fraction\ndef half(x):\n    return Fraction(x, 2)\n", True,
     "Fraction(3, 2) == 1.5 (R8)"),
    ("half", "Decimal", "from decimal import Decimal\ndef half(x):\n    return Decimal(x) / 2\n", True, "Decimal('1.5') == 1.5 (R8)"),
    ("half", "numpy float", "import numpy as np\ndef half(x):\n    return np.float64(x) / 2\n", True, "R8"),
    ("half", "floor division", "def half(x):\n    return x // 2\n", False, "1 != 1.5 (R8)"),
    ("half", "off by 1e-9", "def half(x):\n    return x / 2 + 1e-9\n", False, "== has no tolerance (R8)"),
    ("half", "nan", "def half(x):\n    return float('nan')\n", False, "nan != 1.5 (R8)"),
    ("is_even", "bool", "def isEven(n):\n    return n % 2 == 0\n", True, "R8"),
    ("is_even", "1 and 0", "def isEven(n):\n    return 1 if n % 2 == 0 else 0\n", True, "1 == True (R8)"),
    ("is_even", "string 'true'", "def isEven(n):\n    return 'true' if n % 2 == 0 else 'false'\n", False, "'true' != True (R8)"),
    ("greet", "right", "def greet(name):\n    return 'hi ' + name\n", True, "R8"),
    ("greet", "trailing space", "def greet(name):\n    return 'hi ' + name + ' '\n", False, "R8"),
    ("counts", "dict", "def counts(s):\n    d = {}\n    for c in s:\n        d[c] = d.get(c, 0) + 1\n    return d\n", True, "R8"),
    ("counts", "Counter", "from collections import Counter\ndef counts(s):\n    return Counter(s)\n", True, "a Counter == an equal dict (R8)"),
    ("counts", "defaultdict", "from collections import defaultdict\ndef counts(s):\n    d = defaultdict(int)\n    for c in s:\n        d[c] += 1\n    return d\n",
     True, "R8"),
    ("counts", "list of pairs", "from collections import Counter\ndef counts(s):\n    return sorted(Counter(s).items())\n", False,
     "a list != a dict (R8)"),
]
for problem, name, code, ok, why, *rob in FUNCTIONAL:
    pair(f"call/{problem}/{name}", "call-based", problem, code, ok, why, *rob)

# ----------------------------------------------------------------------------- correct and wrong, every stdin problem

for problem, right, wrong in [
    ("words", "print(' '.join(input().split()[::-1]))\n", "print(input())\n"),
    ("lines", "n = int(input())\nfor i in range(1, n + 1):\n    print(2 * i)\n", "n = int(input())\nfor i in range(n):\n    print(2 * i)\n"),
    ("div", "a, b = map(int, input().split())\nprint(a / b)\n", "a, b = map(int, input().split())\nprint(a // b)\n"),
    ("sum", "input()\nprint(sum(map(int, input().split())))\n", "input()\nprint(max(map(int, input().split())))\n"),
]:
    pair(f"basic/{problem}/right", "basics", problem, right, True, "R10")
    pair(f"basic/{problem}/wrong", "basics", problem, wrong, False, "R10")
