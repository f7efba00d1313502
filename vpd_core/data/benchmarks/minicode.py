"""minicode: a generated family of small Python function problems, graded in the code sandbox.

The CPU-scale demonstration task (docs/results.md): short prompts, short programs, unit tests
in LiveCodeBench's functional format (one JSON argument per input line, the JSON result as
output), so the same sandbox, feedback and teacher contexts as LiveCodeBench run on it, and
SmolLM2-135M-Instruct solves some of it. Parametric templates over numbers, strings and lists;
each problem has 6 tests, the first 3 of which training sees (the SDPO protocol), and a seeded
train / held-out split. Deterministic: `generate()` gives the same problems on every machine;
`data/embedded/build.py` writes them to data/embedded/minicode/{train,test}.jsonl.
"""

from __future__ import annotations

import json
import random
import string
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..prompts import fill, templates_or_default
from ..registry import Benchmark
from ..schema import Problem, ReadResult, RecordError, read_with, require

if TYPE_CHECKING:
    from ...config import PromptTemplates

TESTS_PER_PROBLEM = 6
TRAIN_TESTS = 3  # the tests training rewards and feedback use; evaluation uses all 6
HELD_OUT = 120  # problems in the held-out (test) split
GENERATOR_SEED = 2026
NAME_SUFFIXES = ("", "_fn", "_it", "_value")  # more distinct prompts for templates without a parameter


@dataclass(frozen=True)
class Template:
    key: str
    category: str  # numbers | strings | lists
    question: str  # {fn} and {k} (and {c}) are filled per problem
    args: str  # signature, e.g. "x" or "s, t"
    body: str  # the reference solution's body (one line, {k}/{c} filled)
    wrong: str  # a plausible wrong body (tests must tell it apart)
    names: tuple[str, ...]  # function names to choose from
    kind: str  # argument generator: i, ii, s, ss, l, li
    params: str = "k"  # which parameters the question uses: "k", "c", "" (none)


T = Template
TEMPLATES = [
    # numbers
    T("add_k", "numbers", "Write a function {fn}(x) that returns x plus {k}.", "x", "return x + {k}", "return x + {k} - 1",
      ("add_k", "plus_k", "increase"), "i"),
    T("mul_k", "numbers", "Write a function {fn}(x) that returns x multiplied by {k}.", "x", "return x * {k}",
      "return x + {k}", ("times_k", "multiply", "scale"), "i"),
    T("sub_k", "numbers", "Write a function {fn}(x) that returns x minus {k}.", "x", "return x - {k}", "return {k} - x",
      ("minus_k", "subtract", "decrease"), "i"),
    T("square_plus", "numbers", "Write a function {fn}(x) that returns x squared plus {k}.", "x", "return x * x + {k}",
      "return x * 2 + {k}", ("square_plus", "sq_add", "f"), "i"),
    T("sum2", "numbers", "Write a function {fn}(a, b) that returns the sum of a and b.", "a, b", "return a + b",
      "return a - b", ("add", "total", "sum_two"), "ii", ""),
    T("max2", "numbers", "Write a function {fn}(a, b) that returns the larger of a and b.", "a, b", "return max(a, b)",
      "return min(a, b)", ("larger", "bigger", "max_of"), "ii", ""),
    T("min2", "numbers", "Write a function {fn}(a, b) that returns the smaller of a and b.", "a, b", "return min(a, b)",
      "return max(a, b)", ("smaller", "least", "min_of"), "ii", ""),
    T("is_even", "numbers", "Write a function {fn}(n) that returns True if n is even and False otherwise.", "n",
      "return n % 2 == 0", "return n % 2 == 1", ("is_even", "even", "check_even"), "i", ""),
    T("mod_k", "numbers", "Write a function {fn}(n) that returns the remainder of n divided by {k}.", "n",
      "return n % {k}", "return n // {k}", ("remainder", "mod_k", "rest"), "i"),
    T("abs_val", "numbers", "Write a function {fn}(x) that returns the absolute value of x.", "x", "return abs(x)",
      "return x", ("absolute", "abs_value", "magnitude"), "i", ""),
    T("div_k", "numbers", "Write a function {fn}(n) that returns n divided by {k}, rounded down (integer division).",
      "n", "return n // {k}", "return n % {k}", ("div_k", "divide", "split"), "i"),
    T("between", "numbers", "Write a function {fn}(x) that returns True if x is between 0 and {k} (inclusive).", "x",
      "return 0 <= x <= {k}", "return 0 < x < {k}", ("in_range", "between", "is_inside"), "i"),
    # strings
    T("reverse", "strings", "Write a function {fn}(s) that returns the string s reversed.", "s", "return s[::-1]",
      "return s", ("reverse", "backwards", "flip"), "s", ""),
    T("upper", "strings", "Write a function {fn}(s) that returns s in upper case.", "s", "return s.upper()",
      "return s.lower()", ("shout", "to_upper", "upper"), "s", ""),
    T("length", "strings", "Write a function {fn}(s) that returns the number of characters in s.", "s",
      "return len(s)", "return len(s) - 1", ("length", "count_chars", "size"), "s", ""),
    T("repeat_k", "strings", "Write a function {fn}(s) that returns s repeated {k} times.", "s", "return s * {k}",
      "return s * ({k} - 1)", ("repeat", "echo", "copies"), "s"),
    T("prefix", "strings", "Write a function {fn}(s) that returns s with '{c}' added at the front.", "s",
      "return '{c}' + s", "return s + '{c}'", ("prepend", "add_prefix", "lead"), "s", "c"),
    T("suffix", "strings", "Write a function {fn}(s) that returns s with '{c}' added at the end.", "s",
      "return s + '{c}'", "return '{c}' + s", ("append", "add_suffix", "trail"), "s", "c"),
    T("first_k", "strings", "Write a function {fn}(s) that returns the first {k} characters of s.", "s",
      "return s[:{k}]", "return s[{k}:]", ("head", "first_chars", "start"), "s"),
    T("count_c", "strings", "Write a function {fn}(s) that returns how many times the letter '{c}' appears in s.",
      "s", "return s.count('{c}')", "return len(s)", ("count_letter", "occurrences", "tally"), "s", "c"),
    T("starts_c", "strings", "Write a function {fn}(s) that returns True if s starts with the letter '{c}'.", "s",
      "return s.startswith('{c}')", "return s.endswith('{c}')", ("starts_with", "begins", "first_is"), "s", "c"),
    T("concat", "strings", "Write a function {fn}(s, t) that returns s followed by t.", "s, t", "return s + t",
      "return t + s", ("join_two", "concat", "glue"), "ss", ""),
    # lists
    T("list_sum", "lists", "Write a function {fn}(nums) that returns the sum of the numbers in the list nums.", "nums",
      "return sum(nums)", "return len(nums)", ("total", "list_sum", "add_all"), "l", ""),
    T("list_max", "lists", "Write a function {fn}(nums) that returns the largest number in the list nums.", "nums",
      "return max(nums)", "return nums[0]", ("largest", "list_max", "top"), "l", ""),
    T("list_min", "lists", "Write a function {fn}(nums) that returns the smallest number in the list nums.", "nums",
      "return min(nums)", "return nums[-1]", ("smallest", "list_min", "bottom"), "l", ""),
    T("list_len", "lists", "Write a function {fn}(nums) that returns how many numbers the list nums contains.",
      "nums", "return len(nums)", "return sum(nums)", ("count", "list_len", "how_many"), "l", ""),
    T("list_sorted", "lists", "Write a function {fn}(nums) that returns the list nums sorted in increasing order.",
      "nums", "return sorted(nums)", "return nums", ("sort_list", "ordered", "ascending"), "l", ""),
    T("list_rev", "lists", "Write a function {fn}(nums) that returns the list nums in reverse order.", "nums",
      "return nums[::-1]", "return sorted(nums)", ("reverse_list", "backwards", "flipped"), "l", ""),
    T("list_scale", "lists", "Write a function {fn}(nums) that returns a list with every number of nums multiplied by {k}.",
      "nums", "return [x * {k} for x in nums]", "return [x + {k} for x in nums]", ("scale_all", "multiply_all", "times"),
      "l"),
    T("list_first", "lists", "Write a function {fn}(nums) that returns the first number of the list nums.", "nums",
      "return nums[0]", "return nums[-1]", ("first", "head", "front"), "l", ""),
    T("list_last", "lists", "Write a function {fn}(nums) that returns the last number of the list nums.", "nums",
      "return nums[-1]", "return nums[0]", ("last", "tail", "back"), "l", ""),
    T("count_gt", "lists", "Write a function {fn}(nums) that returns how many numbers in nums are greater than {k}.",
      "nums", "return sum(1 for x in nums if x > {k})", "return sum(1 for x in nums if x >= {k})",
      ("count_above", "how_many_big", "above"), "l"),
    T("evens", "lists", "Write a function {fn}(nums) that returns a list of the even numbers in nums, in order.", "nums",
      "return [x for x in nums if x % 2 == 0]", "return [x for x in nums if x % 2 == 1]",
      ("evens", "keep_even", "even_only"), "l", ""),
]


def _args(kind: str, rng: random.Random) -> list:
    word = lambda: "".join(rng.choice(string.ascii_lowercase[:8]) for _ in range(rng.randint(1, 7)))  # noqa: E731
    if kind == "i":
        return [rng.randint(-20, 40)]
    if kind == "ii":
        return [rng.randint(-20, 40), rng.randint(-20, 40)]
    if kind == "s":
        return [word()]
    if kind == "ss":
        return [word(), word()]
    if kind == "l":
        return [[rng.randint(-9, 20) for _ in range(rng.randint(1, 6))]]
    raise ValueError(f"unknown argument kind {kind!r}")


def _function(t: Template, fn: str, body: str) -> str:
    return f"def {fn}({t.args}):\n    {body}\n"


def _call(source: str, fn: str, args: list):
    ns: dict = {}
    exec(source, ns)  # our own reference solutions, never model output
    return ns[fn](*[json.loads(json.dumps(a)) for a in args])


def make_record(t: Template, fn: str, k: int, c: str, rng: random.Random) -> dict | None:
    """One problem's record, or None when its tests cannot tell the wrong body from the right one."""
    values = {"fn": fn, "k": str(k), "c": c}
    body, wrong = fill(t.body, **values), fill(t.wrong, **values)
    right_src, wrong_src = _function(t, fn, body), _function(t, fn, wrong)
    tests, seen = [], set()
    for _ in range(200):
        if len(tests) == TESTS_PER_PROBLEM:
            break
        args = _args(t.kind, rng)
        key = json.dumps(args)
        if key in seen:
            continue
        seen.add(key)
        tests.append({"input": "\n".join(json.dumps(a) for a in args), "output": json.dumps(_call(right_src, fn, args)),
                      "testtype": "functional"})
    if len(tests) < TESTS_PER_PROBLEM:
        return None
    distinguishes = lambda ts: any(  # noqa: E731
        json.dumps(_call(wrong_src, fn, [json.loads(x) for x in tst["input"].split("\n")])) != tst["output"] for tst in ts)
    if not (distinguishes(tests[:TRAIN_TESTS]) and distinguishes(tests)):
        return None
    return {"id": f"minicode-{t.key}-{fn}-{k}{c}", "template": t.key, "category": t.category,
            "question": fill(t.question, **values), "fn_name": fn, "starter": f"def {fn}({t.args}):",
            "tests": tests, "train_tests": TRAIN_TESTS, "reference": right_src, "wrong": wrong_src}


def generate(per_template: int = 10, seed: int = GENERATOR_SEED) -> dict[str, list[dict]]:
    """Every problem record, split into {"train": [...], "test": [...]} (HELD_OUT held out), deterministically."""
    rng = random.Random(seed)
    records, ids = [], set()
    for t in TEMPLATES:
        made = 0
        for _ in range(200):
            if made == per_template:
                break
            fn = rng.choice(t.names) + rng.choice(NAME_SUFFIXES)
            k = rng.randint(2, 9) if "k" in t.params else 0
            c = rng.choice("abcdefgh") if "c" in t.params else ""
            rec = make_record(t, fn, k, c, rng)
            if rec is None or rec["id"] in ids:
                continue
            ids.add(rec["id"])
            records.append(rec)
            made += 1
    order = list(range(len(records)))
    random.Random(seed + 1).shuffle(order)
    held = set(order[:HELD_OUT])
    return {"train": [r for i, r in enumerate(records) if i not in held],
            "test": [r for i, r in enumerate(records) if i in held]}


# ----------------------------------------------------------------------------- reading


def minicode_messages(question: str, starter: str, t: PromptTemplates | None = None) -> list[dict]:
    t = templates_or_default(t)
    return [{"role": "system", "content": t.minicode_system},
            {"role": "user", "content": fill(t.minicode_user, question=question, starter=starter)}]


def parse_record(rec: dict, templates: PromptTemplates | None = None) -> Problem:
    pid, question, fn, starter = (require(rec, k) for k in ("id", "question", "fn_name", "starter"))
    tests = require(rec, "tests", list)
    n_train = require(rec, "train_tests", int)
    for i, t in enumerate(tests):
        if not isinstance(t, dict) or not isinstance(t.get("input"), str) or not isinstance(t.get("output"), str):
            raise RecordError(f"tests[{i}]", "expected an object with string input and output")
    if not tests or not 0 < n_train <= len(tests):
        raise RecordError("train_tests", f"expected 1..{len(tests)}, got {n_train}")
    tests = [{"input": t["input"], "output": t["output"], "testtype": "functional"} for t in tests]
    return Problem(id=pid, source="minicode", messages=minicode_messages(question, starter, templates), tests=tests,
                   train_tests=tests[:n_train], fn_name=fn, domain=rec.get("category"),
                   difficulty=rec.get("template"), metadata={"template": rec.get("template")})


def read_minicode(path, *, on_error: str = "strict", templates: PromptTemplates | None = None) -> ReadResult:
    return read_with(lambda r: parse_record(r, templates), [path], on_error)



BENCHMARK = Benchmark(
    name="minicode",
    description="minicode: generated small Python functions with unit tests (the CPU-scale demonstration task)",
    read=read_minicode, parse=parse_record, grading="sandbox", test_kinds=("functional",),
    summarize=lambda ps: {"by_category": dict(Counter(p.domain for p in ps)),
                          "by_template": dict(Counter(p.difficulty for p in ps)), "tests": sum(len(p.tests) for p in ps)},
    templates={  # short, so that a step fits a laptop's CPU
        "minicode_system": "You are a Python programmer. Answer with code only.",
        "minicode_user": "{question}\n\n```python\n{starter}\n```\nWrite the complete function in a ```python code block.",
    },
)
