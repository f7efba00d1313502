"""The E-step against the M-step on the same batches of the main job (issue 15.2).

Rolls out and grades a few batches the way the main job does (params.yaml with `make run`'s
settings, VPD, code run in the sandbox), then times, interleaved on each batch, one M-step
(teacher scoring + student update, `train_step` with no E-step due) and one E-step
(`Trainer.e_step` under the E-step's autocast, as `train_step` calls it) three ways: the
default (layers recomputed, the teacher scored once), the same with the no-grad teacher pass
of before, and without checkpointing (two passes, nothing recomputed).
The E-step's forward passes are timed by wrapping `token_logprobs` (the rest of it is
backward, context building and the optimizer step). Every update changes the weights; the
timings, not the weights, are the result.

    scripts/with-dockerd.sh .venv/bin/python benchmarks/estep.py --out DIR/estep.json [--batches 3] [--repeats 2]

Prints a JSON summary; figures and their reading are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# the main job (`make run`): its RUN_SET, VPD
MAIN_JOB = ["algorithm=vpd", "train.steps=12", "data.train_problems=12", "diagnostics.every=0", "eval.samples=1"]


@contextmanager
def peak_rss(every_s: float = 0.005):
    """The process's peak resident memory over the block, in MiB above its value at the start
    (sampled from /proc every 5 ms: a lower bound on short spikes). Yields a one-element list."""
    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * page

    start, peak, stop = rss(), [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(every_s)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out = [0.0]
    try:
        yield out
    finally:
        stop.set()
        t.join()
        out[0] = (max(peak[0], rss()) - start) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=3, help="rollout batches (steps) to time on")
    ap.add_argument("--repeats", type=int, default=2, help="timed M-step/E-step pairs per batch")
    ap.add_argument("--set", action="append", default=[], help="more params overrides")
    ap.add_argument("--out", required=True, help="JSON file for the results (kept out of the repository)")
    args = ap.parse_args()

    import torch

    import vpd_core.trainer as trainer_mod
    from vpd_core import loop
    from vpd_core.config import load_params

    work = Path(tempfile.mkdtemp(prefix="vpd-estep-"))
    params = load_params(REPO / "params.yaml", [*MAIN_JOB, f"run_dir={work / 'run'}", *args.set])
    run = loop.Run(params, log=lambda m: None)
    trainer = run.trainer
    problems = loop.run_problems(params, "train")
    grade, sandbox = loop.make_grader(params, params.sandbox.train_tests)
    batches = []
    try:
        for step in range(args.batches):
            batch, rollouts = loop.rollout_step(run.engine, run.tok, problems, params, step)
            graded = grade(loop.expand(batch, rollouts, params.rollout.group_size))
            batches.append(loop.make_samples(batch, rollouts, graded, params.rollout.group_size, step))
    finally:
        if sandbox is not None:
            sandbox.close()

    forwards: list[tuple[bool, float]] = []  # (with gradients, seconds) of each E-step forward
    inner = trainer_mod.token_logprobs

    def timed_logprobs(*a, **k):
        t0 = time.perf_counter()
        out = inner(*a, **k)
        forwards.append((torch.is_grad_enabled(), time.perf_counter() - t0))
        return out

    keep_gib = params.train.e_step_keep_gib
    variants = {  # (layers recomputed in the E-step, train.e_step_keep_gib)
        "one-pass": (True, keep_gib),  # the default: checkpointing, the teacher scored once
        "two-pass": (True, 0.0),  # the same with a no-grad teacher pass first (before this change)
        "two-pass-no-ckpt": (False, keep_gib),  # model.gradient_checkpointing: false
    }
    trainer.p.vpd.e_every = 10**9  # train_step: the M-step alone
    rows = []
    for rep in range(args.repeats):
        for b, samples in enumerate(batches):
            m = trainer.train_step(samples)
            row = {"batch": b, "repeat": rep, "samples": len(samples),
                   "mstep_s": m["time/teacher_scoring"] + m["time/update"], "mstep_update_s": m["time/update"]}
            order = list(variants)[(rep + b) % 3 :] + list(variants)[: (rep + b) % 3]  # rotated: no fixed order
            for name in order:
                ckpt, trainer.p.train.e_step_keep_gib = variants[name]
                forwards.clear()
                trainer_mod.token_logprobs = timed_logprobs
                try:
                    with peak_rss() as peak, trainer._autocast(), trainer_mod.checkpointing(trainer.model, ckpt):
                        e = trainer.e_step(samples)
                finally:
                    trainer_mod.token_logprobs = inner
                row |= {f"{name}/estep_s": e.get("time/estep", 0.0), f"{name}/samples": e.get("estep/samples", 0.0),
                        f"{name}/teacher_passes": e.get("estep/teacher_passes", 0.0),
                        f"{name}/forward_nograd_s": sum(t for g, t in forwards if not g),
                        f"{name}/forward_grad_s": sum(t for g, t in forwards if g),
                        f"{name}/forwards": len(forwards), f"{name}/peak_over_start_mib": peak[0]}
            rows.append(row)
            print(json.dumps(row), flush=True)

    med = statistics.median
    out = {"params": [*MAIN_JOB, *args.set], "rows": rows, "mstep_s_median": med(r["mstep_s"] for r in rows)}
    for name in variants:
        out[f"{name}/estep_s_median"] = med(r[f"{name}/estep_s"] for r in rows)
        out[f"{name}/estep_over_mstep_median"] = med(r[f"{name}/estep_s"] / r["mstep_s"] for r in rows)
        out[f"{name}/peak_over_start_mib_max"] = max(r[f"{name}/peak_over_start_mib"] for r in rows)
    out["one-pass/over_two-pass_median"] = med(r["one-pass/estep_s"] / r["two-pass/estep_s"] for r in rows)
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
