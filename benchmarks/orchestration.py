"""Orchestration overhead: Prefect per training step, the fixed cost of a flow process (temporary
server vs the shared one), `dvc repro` when nothing changed, and the share of work a resumed
(kill -9) run skips. Tiny random model, arithmetic task, CPU.

    .venv/bin/python benchmarks/orchestration.py --out /tmp/orch.json [--steps 6] [--repeats 5]

Prints a JSON summary; figures and their reading are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tiny_params(work: Path, steps: int, run_dir: str, merged: bool = True) -> Path:
    """The repository's params on the tiny model; merged: with prompts.yaml's templates inside (a
    file that stands alone), else naming prompts.yaml as the repository's own does (for DVC)."""
    from vpd_core.tiny import write_tiny_model

    model = work / "tiny"
    if not model.exists():
        write_tiny_model(model)
    from vpd_core.config import read_params_file

    raw = read_params_file(REPO / "params.yaml") if merged else yaml.safe_load((REPO / "params.yaml").read_text())
    raw.update(run_dir=run_dir, seed=3)
    raw["model"]["path"] = str(model)
    raw["data"].update(source="arithmetic", num_problems=16)
    raw["rollout"].update(max_new_tokens=16)
    raw["train"].update(steps=steps, checkpoint_every=1)
    raw["vpd"]["e_every"] = 2
    raw["eval"].update(samples=2, max_new_tokens=8)
    path = work / f"params-{Path(run_dir).name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def vpd(*args, env, cwd=None, timeout=900):
    t0 = time.perf_counter()
    r = subprocess.run([str(BIN / "vpd"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return time.perf_counter() - t0


def step_times(run_dir: Path) -> list[float]:
    return [json.loads(x)["time/step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def python_import(module: str, env, freeze: bool = True) -> float:
    """A process that imports `module` and exits; freeze: the way `vpd` exits (gc.freeze, no
    collection over the whole heap at shutdown), so that the floor is the CLI's minus Prefect."""
    code = f"import {module}" + ("; import gc; gc.freeze()" if freeze else "")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def fixed_costs(plain: Path, env: dict, repeats: int) -> dict:
    """2. The fixed cost of a flow process: `vpd prepare` (a one-task flow, ms of work) with Prefect's
    temporary server per process (VPD_SHARED_PREFECT=0, the old behaviour) and with the project's
    shared server (warm), against two floors: the CLI's (`vpd params`: interpreter, config) and the
    same imports without Prefect (`import vpd_core.loop`: torch, transformers, pandas, exiting as
    `vpd` does; also with a plain exit, for reference). Interleaved."""
    floor, temporary = [], []
    for _ in range(repeats):
        floor.append(vpd("params", "--params", str(plain), env=env))
        temporary.append(vpd("prepare", "--params", str(plain), env={**env, "VPD_SHARED_PREFECT": "0"}))
    vpd("server", "stop", env=env)
    first = vpd("prepare", "--params", str(plain), env=env)  # starts the shared server
    shared, core, core_plain_exit, flows = [], [], [], []
    for _ in range(repeats):
        core.append(python_import("vpd_core.loop", env))
        core_plain_exit.append(python_import("vpd_core.loop", env, freeze=False))
        flows.append(python_import("flows.vpd_flows", env))
        shared.append(vpd("prepare", "--params", str(plain), env=env))
    med = statistics.median
    return {
        "cli_floor_s_median": med(floor), "import_core_s_median": med(core), "import_flows_s_median": med(flows),
        "prepare_temporary_server_s_median": med(temporary), "prepare_shared_server_first_s": first,
        "prepare_shared_server_s_median": med(shared), "prepare_shared_server_s_runs": shared,
        "import_core_s_runs": core, "import_core_plain_exit_s_median": med(core_plain_exit),
        "fixed_cost_per_process_temporary_s": med(temporary) - med(floor),
        "fixed_cost_per_process_shared_s": med(shared) - med(floor),
        # what Prefect adds to a stage that imports the core anyway: its import and its API calls
        "prefect_cost_per_process_shared_s": med(shared) - med(core),
        "prefect_import_s": med(flows) - med(core),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", required=True, help="JSON file for the results (kept out of the repository)")
    ap.add_argument("--only-fixed", action="store_true", help="only part 2, the fixed cost of a flow process")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vpd-orch-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PREFECT_HOME": str(work / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PATH": f"{BIN}:{os.environ['PATH']}"}
    out: dict = {}

    plain = tiny_params(work, args.steps, str(work / "plain"))
    flow = tiny_params(work, args.steps, str(work / "flow"))
    if args.only_fixed:
        out |= fixed_costs(plain, env, args.repeats)
        print(json.dumps(out, indent=2))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2))
        vpd("server", "stop", env=env)
        shutil.rmtree(work, ignore_errors=True)
        return

    # 1. Prefect per step: the same run as a flow and as the plain loop
    wall_plain = vpd("train", "--no-prefect", "--params", str(plain), env=env)
    wall_flow = vpd("train", "--params", str(flow), env=env)
    sp, sf = step_times(work / "plain"), step_times(work / "flow")
    out["step_seconds_plain_median"] = statistics.median(sp)
    out["step_seconds_flow_median"] = statistics.median(sf)
    out["prefect_overhead_per_step_s"] = statistics.median(sf) - statistics.median(sp)
    out["process_wall_plain_s"], out["process_wall_flow_s"] = wall_plain, wall_flow
    out["flow_fixed_overhead_s"] = (wall_flow - sum(sf)) - (wall_plain - sum(sp))

    out |= fixed_costs(plain, env, args.repeats)

    # 3. a no-op `dvc repro`
    repo = work / "repo"
    repo.mkdir()
    for d in ("vpd_core", "sandboxes", "tasks", "flows", "data/embedded"):
        shutil.copytree(REPO / d, repo / d, ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("dvc.yaml", "prompts.yaml"):  # dvc.yaml names prompts.yaml as a dependency
        shutil.copy(REPO / f, repo)
    shutil.copy(tiny_params(work, 2, "run", merged=False), repo / "params.yaml")
    genv = {**env, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=repo, env=genv, check=True, capture_output=True)
    shutil.copy(REPO / ".dvc" / "config", repo / ".dvc" / "config")  # as a clone has it
    shutil.copytree(REPO / ".dvc" / "plots", repo / ".dvc" / "plots")
    (repo / ".gitignore").write_text("/run/\n/.dvc-remote/\n")
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "x"], ["dvc", "repro"]):
        r = subprocess.run(cmd, cwd=repo, env=genv, capture_output=True, text=True)
        if r.returncode:  # name the command and what it said, not just an exit status
            raise RuntimeError(f"{' '.join(cmd)} in {repo}: exit {r.returncode}\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    # a forced full repro (every stage a process), with the temporary server per stage and the shared
    # one (started by the first stage: a cold start is included)
    for name, extra in (("temporary", {"VPD_SHARED_PREFECT": "0"}), ("shared", {})):
        vpd("server", "stop", env=env)
        t0 = time.perf_counter()
        subprocess.run(["dvc", "repro", "-f"], cwd=repo, env={**genv, **extra}, check=True, capture_output=True)
        out[f"dvc_forced_repro_{name}_server_s"] = time.perf_counter() - t0
    noop = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        r = subprocess.run(["dvc", "repro"], cwd=repo, env=genv, check=True, capture_output=True, text=True)
        noop.append(time.perf_counter() - t0)
        assert "Running stage" not in r.stdout
    out["dvc_noop_repro_s_median"] = statistics.median(noop)
    out["dvc_noop_repro_s_runs"] = noop

    # 4. kill -9 after half the steps, then resume: the share of step time the rerun skips
    cut = tiny_params(work, args.steps, str(work / "cut"))
    proc = subprocess.Popen([str(BIN / "vpd"), "train", "--params", str(cut)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest, half = work / "cut" / "checkpoints" / "latest", f"step-{args.steps // 2:06d}"
    while not (latest.exists() and latest.read_text().strip() == half):
        time.sleep(0.05)
    time.sleep(0.5 * statistics.median(sf))  # die in the middle of the next step
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    rows_before = len((work / "cut" / "metrics.jsonl").read_text().splitlines())
    t0 = time.perf_counter()
    vpd("train", "--params", str(cut), env=env)
    resumed_wall = time.perf_counter() - t0
    rerun_steps = step_times(work / "cut")[rows_before:]
    out["killed_after_steps"] = rows_before
    out["resume_skipped_fraction_of_step_time"] = 1 - sum(rerun_steps) / sum(sf)
    out["resume_rerun_wall_s"], out["uninterrupted_wall_s"] = resumed_wall, wall_flow
    print(json.dumps(out, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    vpd("server", "stop", env=env)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
