"""A 4-run sweep on the tiny model: one after another in the sweep's process (sweep.mode: local) vs
flow runs of the pipeline deployment on a local process work pool with 2 workers (mode: deployment).

    .venv/bin/python benchmarks/sweep.py --out /tmp/sweep.json [--steps 20] [--worker-threads 1]

Everything in a temporary project directory with its own shared Prefect server (vpd server start);
grid {"algorithm": ["grpo", "vpd"]} x seeds 0,1 (arithmetic task). Prints and writes the wall times
and their ratio, and for the deployment mode each flow run's wait for a worker, its duration and
how long runs overlapped (from the API); the workers and the server are stopped at the end.
--worker-threads sets each worker's OMP_NUM_THREADS (torch's threads): two workers on a 2-core
machine at the default 2 threads each would run 4 threads on 2 cores.
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

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", required=True)
    ap.add_argument("--worker-threads", type=int, default=None, help="OMP_NUM_THREADS of each worker (default: unset)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vpd-sweep-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PREFECT_HOME": str(work / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(work / "prefect" / "storage"),
           "PREFECT_WORKER_QUERY_SECONDS": "2", "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("PREFECT_API_URL", None)
    from vpd_core.tiny import write_tiny_model

    write_tiny_model(work / "tiny")
    from vpd_core.config import read_params_file

    raw = read_params_file(REPO / "params.yaml")  # with prompts.yaml merged in: one self-contained file
    raw.update(run_dir=str(work / "run"), seed=0)
    raw["model"]["path"] = str(work / "tiny")
    raw["data"].update(source="arithmetic", num_problems=16)
    raw["rollout"].update(max_new_tokens=16)
    raw["train"].update(steps=args.steps, checkpoint_every=1)
    raw["eval"].update(samples=2, max_new_tokens=8)
    raw["diagnostics"]["every"] = 0
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))

    def vpd(*a):
        r = subprocess.run([str(BIN / "vpd"), *a], cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
        if r.returncode:
            raise RuntimeError(r.stderr[-3000:])
        return r.stdout

    api = json.loads(vpd("server", "start"))["api"]
    env["PREFECT_API_URL"] = api  # the workers, the deploy and both sweeps talk to this one server
    subprocess.run([str(BIN / "prefect"), "work-pool", "create", "vpd-bench", "--type", "process"], env=env, check=True,
                   capture_output=True)
    deploy = ("from flows.vpd_flows import pipeline; pipeline.from_source(source='%s', "
              "entrypoint='flows/vpd_flows.py:pipeline').deploy(name='vpd-pipeline', work_pool_name='vpd-bench', "
              "print_next_steps=False)" % REPO)
    subprocess.run([sys.executable, "-c", deploy], cwd=REPO, env=env, check=True, capture_output=True)
    worker_env = {**env, **({"OMP_NUM_THREADS": str(args.worker_threads)} if args.worker_threads else {})}
    workers = [subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "vpd-bench", "--limit", "1"],
                                cwd=REPO, env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(2)]
    out = {"runs": 4, "steps": args.steps, "cpus": os.cpu_count(), "worker_threads": args.worker_threads}
    try:
        grid = json.dumps({"algorithm": ["grpo", "vpd"]})
        for mode, extra in (("local", []), ("deployment", ["--set", "sweep.max_parallel=2"])):
            t0 = time.perf_counter()
            vpd("sweep", "--params", str(params), "--grid", grid, "--seeds", "0,1", "--set", f"sweep.mode={mode}",
                "--set", f"run_dir={work / mode}", *extra)
            out[f"{mode}_s"] = time.perf_counter() - t0
            print(f"{mode}: {out[f'{mode}_s']:.1f} s", flush=True)
        out["local_over_deployment"] = out["local_s"] / out["deployment_s"]
        out["deployment_runs"] = flow_run_times(env)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:  # a worker may be busy reporting (its API's SQLite under load): not forever
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
        env.pop("PREFECT_API_URL")
        vpd("server", "stop")
    print(json.dumps(out, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    shutil.rmtree(work, ignore_errors=True)


def flow_run_times(env: dict) -> list[dict]:
    """Each pipeline flow run of the deployment: seconds from its creation to its start (waiting for
    a worker and the worker's process start) and its duration; plus overlap with the others."""
    code = """
import json
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
with get_client(sync_client=True) as c:
    runs = c.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["vpd-pipeline"])))
    print(json.dumps([{"name": r.name, "created": r.created.timestamp(), "start": r.start_time.timestamp(),
                       "end": r.end_time.timestamp()} for r in runs if r.start_time and r.end_time]))
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    runs = sorted(json.loads(r.stdout.strip().splitlines()[-1]), key=lambda x: x["start"])
    out = []
    for x in runs:
        overlap = sum(max(0.0, min(x["end"], y["end"]) - max(x["start"], y["start"])) for y in runs if y is not x)
        out.append({"name": x["name"], "wait_s": round(x["start"] - x["created"], 1),
                    "duration_s": round(x["end"] - x["start"], 1), "overlap_s": round(overlap, 1)})
    return out


if __name__ == "__main__":
    main()
