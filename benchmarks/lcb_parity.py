"""The LiveCodeBench parity corpus (sandboxes/parity.py) on every backend, as tables.

Runs every pair in `lcb` semantics on Docker and bubblewrap (memory_mb null, as the reference)
and in `robust` semantics on bubblewrap (memory_mb 512, the default), and writes parity.md:
table 1, every pair with the reference's verdict, the rule that decides it and ours on both
backends; table 2, the pairs where `robust` differs, and why. docs/lcb-parity.md is this output.

    scripts/with-dockerd.sh .venv/bin/python benchmarks/lcb_parity.py --out /tmp/parity
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandboxes import make_sandbox  # noqa: E402
from sandboxes.parity import PAIRS  # noqa: E402

RUNS = [("lcb", "docker", None), ("lcb", "bwrap", None), ("robust", "bwrap", 512)]


def verdict(ok: bool) -> str:
    return "pass" if ok else "fail"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    got, seconds = {}, {}
    for semantics, backend, memory in RUNS:
        with make_sandbox(backend, concurrency=4) as sb:
            t0 = time.perf_counter()
            results = sb.run_batch([p.job(semantics, memory_mb=memory) for p in PAIRS])
            seconds[(semantics, backend)] = time.perf_counter() - t0
        got[(semantics, backend)] = [r.passed for r in results]
        print(f"{semantics} on {backend}: {time.perf_counter() - t0:.1f} s", flush=True)

    lcb_agree = {b: sum(g == p.lcb for g, p in zip(got[("lcb", b)], PAIRS)) for b in ("docker", "bwrap")}
    robust_agree = sum(g == p.robust for g, p in zip(got[("robust", "bwrap")], PAIRS))
    differ = [p for p in PAIRS if p.robust != p.lcb]
    lines = [
        "# LiveCodeBench parity corpus",
        "",
        f"{len(PAIRS)} (problem, program) pairs from `sandboxes/parity.py` (rules R1–R12 in its docstring and in the",
        "README's \"Sandbox semantics\"). The reference column is LiveCodeBench's verdict as established by reading its",
        "grader (`lcb_runner/evaluation/testing_util.py`, commit 15808c7); ours ran in one run of",
        "`benchmarks/lcb_parity.py` (`lcb`: memory_mb null, as the reference; `robust`: memory_mb 512).",
        "",
        f"- `lcb` on Docker agrees with the reference on **{lcb_agree['docker']}/{len(PAIRS)}**, on bubblewrap on "
        f"**{lcb_agree['bwrap']}/{len(PAIRS)}**.",
        f"- `robust` (bubblewrap) gives the verdict the corpus records for it on {robust_agree}/{len(PAIRS)}; it differs "
        f"from the reference on {len(differ)} pairs (table 2), {sum(p.robust for p in differ)} of them passing a "
        "program the reference fails.",
        "- Wall time for the corpus (4 programs at a time, 2 cores): "
        + ", ".join(f"{s} on {b} {seconds[(s, b)]:.1f} s" for s, b, _ in RUNS) + ".",
        "",
        "## Table 1: every pair",
        "",
        "| pair | reference | why (rule) | lcb, Docker | lcb, bwrap | robust |",
        "|---|---|---|---|---|---|",
    ]
    for i, p in enumerate(PAIRS):
        lines.append(f"| `{cell(p.id)}` | {verdict(p.lcb)} | {cell(p.why)} | {verdict(got[('lcb', 'docker')][i])} | "
                     f"{verdict(got[('lcb', 'bwrap')][i])} | {verdict(got[('robust', 'bwrap')][i])} |")
    lines += ["", "## Table 2: where `robust` differs from the reference, and why", "",
              "| pair | reference | robust | why the reference decides so | why robust decides otherwise |", "|---|---|---|---|---|"]
    for p in differ:
        i = PAIRS.index(p)
        lines.append(f"| `{cell(p.id)}` | {verdict(p.lcb)} | {verdict(got[('robust', 'bwrap')][i])} | {cell(p.why)} | "
                     f"{cell(p.robust_why)} |")
    (args.out / "parity.md").write_text("\n".join(lines) + "\n")
    (args.out / "parity.json").write_text(json.dumps(
        {"pairs": [p.id for p in PAIRS], "reference": [p.lcb for p in PAIRS],
         "results": {f"{s}/{b}": got[(s, b)] for s, b, _ in RUNS},
         "seconds": {f"{s}/{b}": seconds[(s, b)] for s, b, _ in RUNS}}, indent=1))
    print(f"wrote {args.out / 'parity.md'}")
    return 0 if all(v == len(PAIRS) for v in lcb_agree.values()) and robust_agree == len(PAIRS) else 1


if __name__ == "__main__":
    sys.exit(main())
