"""Where the main job's memory goes: resident memory per phase of real training steps.

Runs `vpd_core.loop.Run` on the configured data (default: the main job's params) for a few
steps and records, per phase, the resident memory after the phase and its peak during the
phase (Linux VmHWM, reset before every phase through /proc/self/clear_refs). Phases:
imports, model + trainer + engine, rollouts, grading (sandbox), the M-step, the E-step (VPD,
forced every step here with vpd.e_every=1 unless --set overrides it), the checkpoint, and an
evaluation pass over --eval-problems held-out problems.

Each configuration runs in a fresh subprocess, so one configuration's allocations never count
toward another's. Results go to --out (never into the repository by default).

    scripts/with-dockerd.sh .venv/bin/python benchmarks/memory.py --out /tmp/mem \\
        --config default= --config mb4=train.micro_batch_size=4 \\
        --config ckpt=model.gradient_checkpointing=true
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vpd_core.memory import peak_rss_mb, reset_peak_rss, return_freed_memory, rss_mb  # noqa: E402


class Phases:
    """Resident memory after each phase and the peak within it (MiB)."""

    def __init__(self):
        self.rows: list[dict] = []

    def run(self, name: str, fn, *args, **kwargs):
        reset_peak_rss()
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.rows.append({"phase": name, "rss_after_mib": round(rss_mb()), "peak_mib": round(peak_rss_mb()),
                          "seconds": round(time.perf_counter() - t0, 1)})
        return out


def profile(overrides: list[str], steps: int, eval_problems: int, params_path: str) -> list[dict]:
    return_freed_memory()  # as the CLI does
    ph = Phases()

    def imports():
        import torch  # noqa: F401

        import tasks.common  # noqa: F401  (the main job runs under Prefect: its imports count)
        from vpd_core import loop  # noqa: F401

    ph.run("imports (torch, transformers, prefect)", imports)
    from vpd_core import loop
    from vpd_core.config import load_params

    work = tempfile.mkdtemp(prefix="vpd-mem-")
    params = load_params(params_path, [f"run_dir={work}/run", "vpd.e_every=1", "diagnostics.every=0",
                                       f"train.steps={steps}", "train.checkpoint_every=1", *overrides])
    run = ph.run("model + trainer + engine", loop.Run, params, lambda _: None)
    problems = loop.load_problems(params, "train")
    grade, sandbox = loop.make_grader(params, params.sandbox.train_tests)
    trainer = run.trainer
    for name in ("m_step", "e_step", "grpo_step"):  # time each update kind as its own phase
        if hasattr(trainer, name):
            method = getattr(trainer, name)
            setattr(trainer, name, (lambda m, n: lambda *a, **k: ph.run(f"  {n}", m, *a, **k))(method, name))
    try:
        for _ in range(steps):
            step = trainer.step
            batch, rollouts = ph.run("rollouts", loop.rollout_step, run.engine, run.tok, problems, params, step)
            graded = ph.run("grading", grade, loop.expand(batch, rollouts, params.rollout.group_size))
            samples = loop.make_samples(batch, rollouts, graded, params.rollout.group_size, step)
            metrics = run.update(samples)  # its M-step, E-step or GRPO step is a phase each
            ph.run("record + checkpoint", run.record, metrics)
        if eval_problems:
            test = loop.load_problems(params, "test")[:eval_problems]
            eval_grade, eval_sandbox = loop.make_grader(params, "all")
            ph.run(f"evaluation ({eval_problems} problems)", loop.evaluate_problems, run.engine, run.tok, test, params,
                   eval_grade, params.seed)
            if eval_sandbox is not None:
                eval_sandbox.close()
    finally:
        if sandbox is not None:
            sandbox.close()
        shutil.rmtree(work, ignore_errors=True)  # checkpoints: 1.6 GB a step
    return ph.rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory for memory.json and memory.md")
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--config", action="append", default=[],
                    help="NAME=key=value[,key=value...]: one configuration (repeatable); default: the params as they are")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--eval-problems", type=int, default=16)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        overrides = [o for o in args.child.split(",") if o]
        print(json.dumps(profile(overrides, args.steps, args.eval_problems, args.params)))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    configs = dict(c.split("=", 1) for c in args.config) or {"default": ""}
    results = {}
    for name, overrides in configs.items():
        cmd = [sys.executable, __file__, "--out", str(out), "--params", args.params, "--steps", str(args.steps),
               "--eval-problems", str(args.eval_problems), "--child", overrides]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if proc.returncode:
            sys.exit(f"configuration {name} failed:\n{proc.stderr[-3000:]}")
        results[name] = {"overrides": overrides, "phases": json.loads(proc.stdout.strip().splitlines()[-1])}
        print(f"{name}: done", file=sys.stderr)
    (out / "memory.json").write_text(json.dumps(results, indent=1))
    lines = []
    for name, r in results.items():
        lines += [f"### {name} (`{r['overrides'] or 'params as they are'}`)", "",
                  "| phase | peak during (MiB) | resident after (MiB) | seconds |", "|---|---|---|---|"]
        lines += [f"| {p['phase']} | {p['peak_mib']} | {p['rss_after_mib']} | {p['seconds']} |" for p in r["phases"]]
        peak = max(p["peak_mib"] for p in r["phases"])
        lines += ["", f"process peak: **{peak} MiB**", ""]
    (out / "memory.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
