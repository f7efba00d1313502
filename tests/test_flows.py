"""Prefect flows on the tiny model under one session-scoped test harness; deployments; resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from vpd_core.config import ParamsError

REPO = Path(__file__).resolve().parents[1]


def test_pipeline_flow_end_to_end(prefect_backend, tiny_params):
    from prefect.client.orchestration import get_client

    from flows.vpd_flows import pipeline

    report = Path(pipeline(str(tiny_params), [])["report"])
    run = tiny_params.parent / "run"
    assert report == run / "report" / "report.md" and report.exists()
    assert (run / "report" / "learning_curves.png").stat().st_size > 1000
    text = report.read_text()
    assert "## Held-out evaluation" in text and "| base | 4 | 8 |" in text and "| final | 4 | 8 |" in text
    assert "paired by problem" in text and "## Training (first vs last quarter" in text
    assert "## Wall time and peak memory per stage" in text and "| train |" in text
    assert "## Params (changed from the code's defaults)" in text and "`run_dir`" in text
    assert "## Held-out problems that flipped" in text and "## Time per training step" in text
    html = (run / "report" / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html and "learning_curves.png" not in html
    stages = json.loads((run / "stages.json").read_text())
    assert list(stages) == ["prepare", "evaluate base", "train", "evaluate final"]
    assert all(s["wall_s"] > 0 and s["peak_rss_mb"] > 50 for s in stages.values())
    for name in ("base", "final"):
        m = json.loads((run / "eval" / name / "metrics.json").read_text())
        assert m["problems"] == 4 and m["samples"] == 8 and 0.0 <= m["pass@1"] <= 1.0
        assert (run / "eval" / name / "tables" / "arithmetic.parquet").exists()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["train/step"] for r in rows] == [1.0, 2.0] and "estep/loss" in rows[1]
    plots = {f.stem: json.loads(f.read_text()) for f in (run / "plots").glob("*.json")}
    assert set(plots) == {"training", "distillation", "estep", "teacher"}
    assert [c["step"] for c in plots["training"]] == [1, 2] and [c["step"] for c in plots["estep"]] == [2]
    for name, data in plots.items():  # DVC draws nothing from rows with different keys
        assert len({tuple(sorted(r)) for r in data}) <= 1, name

    import asyncio

    async def artifact_keys():
        async with get_client() as client:
            return {a.key for a in await client.read_artifacts()}

    keys = asyncio.run(artifact_keys())
    assert {"train-metrics", "vpd-report", "run-files", "eval-base", "eval-final", "learning-curves"} <= keys


def test_bad_params_fail_before_any_work(prefect_backend, tiny_params):
    from flows.vpd_flows import train

    with pytest.raises(ParamsError, match="unknown key 'vpd.e_evry'"):
        train(str(tiny_params), ["vpd.e_evry=1"])
    assert not (tiny_params.parent / "run").exists()


def test_prefect_yaml_deployments_load_and_validate():
    import importlib

    from prefect.schedules import Cron

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = set()
    for d in spec["deployments"]:
        module, fn = d["entrypoint"].split(":")
        flow = getattr(importlib.import_module(module.replace("/", ".").removesuffix(".py")), fn)
        flow.validate_parameters(d["parameters"])  # raises on a parameter the flow does not take
        for s in d.get("schedules", []):
            Cron(s["cron"], timezone=s["timezone"])
        names.add(d["name"])
    assert names == {"vpd-pipeline", "nightly-sweep"}
    from flows.deployments import deployments

    served = deployments()
    assert {d.name for d in served} == names
    assert any(d.schedules for d in served if d.name == "nightly-sweep")
    # scheduled sweeps write a new directory per night (a fixed one would only resume finished runs)
    nightly = next(d for d in spec["deployments"] if d["name"] == "nightly-sweep")
    assert nightly["parameters"]["dated"] is True
    assert next(d for d in served if d.name == "nightly-sweep").parameters["dated"] is True
    # the served and the declared deployments run the one default grid
    from vpd_core.config import DEFAULT_GRID

    assert nightly["parameters"]["grid"] == DEFAULT_GRID
    assert next(d for d in served if d.name == "nightly-sweep").parameters["grid"] == DEFAULT_GRID


def test_dated_sweeps_put_each_night_in_its_own_directory(tiny_params):
    import datetime

    from flows.vpd_flows import sweep_points, sweep_root

    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    assert sweep_root("runs/x", dated=True) == f"runs/x/sweeps/{today}"
    points = sweep_points(str(tiny_params), [], {"algorithm": ["grpo"]}, [0], sweep_root("runs/x", dated=True))
    assert points[0][2][-1] == f"run_dir=runs/x/sweeps/{today}/algorithm_grpo/seed0"
    assert sweep_points(str(tiny_params), [], {"algorithm": ["grpo"]}, [0])[0][2][-1].endswith("/sweep/algorithm_grpo/seed0")


def _train_cmd(params):
    return [sys.executable, "-m", "vpd.cli", "train", "--params", str(params)]


def _env():
    """The children talk to the session's test API (PREFECT_API_URL is set by the harness)."""
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
def test_kill_9_then_resume_matches_uninterrupted(prefect_backend, tiny_params, tmp_path):
    """kill -9 the train flow after its 2nd checkpoint of 4; the rerun resumes from it and ends
    with the same metrics as an uninterrupted run with the same seed."""
    import yaml as y

    raw = y.safe_load(tiny_params.read_text())
    raw["train"]["steps"] = 4
    ref = dict(raw, run_dir=str(tmp_path / "ref"))
    cut = dict(raw, run_dir=str(tmp_path / "cut"))
    (tmp_path / "ref.yaml").write_text(y.safe_dump(ref))
    (tmp_path / "cut.yaml").write_text(y.safe_dump(cut))
    env = _env()
    done = subprocess.run(_train_cmd(tmp_path / "ref.yaml"), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]

    proc = subprocess.Popen(_train_cmd(tmp_path / "cut.yaml"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    latest = tmp_path / "cut" / "checkpoints" / "latest"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (latest.exists() and latest.read_text().strip() == "step-000002"):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert latest.read_text().strip() == "step-000002"
    again = subprocess.run(_train_cmd(tmp_path / "cut.yaml"), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from" in again.stdout + again.stderr

    def rows(d):
        return [json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]

    a, b = rows("ref"), rows("cut")
    assert [r["train/step"] for r in b] == [1.0, 2.0, 3.0, 4.0]
    for ra, rb in zip(a, b):
        for k in ("reward/mean", "distill/loss", "distill/divergence", "student/entropy", "estep/loss", "estep/delta"):
            if k in ra:
                assert rb[k] == pytest.approx(ra[k], rel=1e-5, abs=1e-7), (ra["train/step"], k)


def test_sweep_with_seeds_reports_intervals_figure_and_problem_flips(prefect_backend, tiny_params):
    """2 points x 2 seeds on the tiny model: a row per point with mean and 95% CI over seeds, one
    figure, the per-problem file; the base model is evaluated once per seed (cached), not per point."""
    import json as js

    import pandas as pd

    from flows.vpd_flows import sweep

    rows = sweep(str(tiny_params), ["train.steps=2", "diagnostics.every=1", "diagnostics.problems=2"],
                 grid={"algorithm": ["grpo", "vpd"]}, seeds=[3, 4])
    assert [r["algorithm"] for r in rows] == ["grpo", "vpd"]
    for r in rows:
        assert r["seeds"] == 2 and r["failed"] == 0
        for key in ("pass@1 before", "pass@1 after", "pass@1 change", "train reward last quarter", "wall time (s)"):
            assert r[f"{key} ±95%"] >= 0, key  # a number (nan with fewer than 2 seeds)
    out = tiny_params.parent / "run" / "sweep"
    for name in ("algorithm_grpo", "algorithm_vpd"):
        for seed in (3, 4):
            assert (out / name / f"seed{seed}" / "report" / "report.md").exists()
    # the same seed's base evaluation is shared by both points
    base = {s: [js.loads((out / n / f"seed{s}" / "eval" / "base" / "metrics.json").read_text())["pass@1"]
                for n in ("algorithm_grpo", "algorithm_vpd")] for s in (3, 4)}
    assert all(a == b for a, b in base.values())
    assert "±" in (out / "comparison.md").read_text()
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    flips = pd.read_csv(out / "problems.csv")
    assert set(flips["algorithm"]) == {"grpo", "vpd"} and set(flips["seed"]) == {3, 4}
    assert {"problem_id", "solved before", "solved after", "flip"} <= set(flips.columns)
    assert "](learning_curves.png)" in (out / "report.md").read_text()


def test_sweep_marks_a_failed_run_and_finishes_the_others(prefect_backend, tiny_params, monkeypatch):
    from flows import vpd_flows

    real = vpd_flows.pipeline

    class Boom:
        def with_options(self, **kw):
            runner = real.with_options(**kw)

            def run(params_path, overrides):
                if "algorithm=\"grpo\"" in overrides or "algorithm=grpo" in overrides:
                    raise RuntimeError("boom")
                return runner(params_path, overrides)
            return run

    monkeypatch.setattr(vpd_flows, "pipeline", Boom())
    rows = vpd_flows.sweep(str(tiny_params), ["train.steps=1"], grid={"algorithm": ["grpo", "vpd"]}, seeds=[3])
    by = {r["algorithm"]: r for r in rows}
    assert by["grpo"]["failed"] == 1 and by["grpo"]["seeds"] == 0
    assert by["vpd"]["failed"] == 0 and by["vpd"]["seeds"] == 1
    assert "1 failed" in (tiny_params.parent / "run" / "sweep" / "comparison.md").read_text()


def test_sweep_refuses_bad_grids_before_any_work(tiny_params):
    from flows.vpd_flows import sweep_points
    from vpd_core.config import ParamsError

    with pytest.raises(ParamsError, match="algorithm"):
        sweep_points(str(tiny_params), [], {"algorithm": ["grpo", "vpdd"]}, [0])
    with pytest.raises(ParamsError, match="grid"):
        sweep_points(str(tiny_params), [], {"algorithm": "vpd"}, [0])
    with pytest.raises(ParamsError, match="seeds"):
        sweep_points(str(tiny_params), [], {"algorithm": ["vpd"]}, [1, 1])


def test_deployment_run_triggered_through_the_api(prefect_backend, tiny_params, monkeypatch):
    """What the UI's "Run" does: create a flow run of the deployment with edited parameters;
    a runner (as `vpd ui` serves) picks it up and runs it in its own process."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.runner import Runner

    from flows.deployments import deployments

    monkeypatch.chdir(REPO)  # the runner imports flows/vpd_flows.py from the project root
    dep = next(d for d in deployments() if d.name == "vpd-pipeline")
    runner = Runner(query_seconds=1)
    runner.add_deployment(dep)
    async def flow_runs():
        async with get_client() as client:
            return await client.read_flow_runs()

    # the typed form refuses a bad value before any run exists
    known = {r.id for r in asyncio.run(flow_runs())}
    for bad in ({"algorithm": "vpdd"}, {"lr": -1.0}, {"steps": 0}, {"alpha": 2.0}, {"stepz": 3}):
        with pytest.raises(Exception, match="(?i)validation"):
            run_deployment("pipeline/vpd-pipeline", timeout=0,
                           parameters={"params_path": str(tiny_params), "settings": bad})
    assert {r.id for r in asyncio.run(flow_runs())} == known

    run = run_deployment("pipeline/vpd-pipeline", timeout=0,
                         parameters={"params_path": str(tiny_params), "overrides": ["eval.samples=1"],
                                     "settings": {"steps": 1, "algorithm": "sdpo"}})
    asyncio.run(runner.start(run_once=True))

    async def final_state():
        async with get_client() as client:
            return (await client.read_flow_run(run.id)).state

    assert asyncio.run(final_state()).is_completed()
    assert (tiny_params.parent / "run" / "report" / "report.md").exists()
    rows = (tiny_params.parent / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1  # the typed setting edited in the "UI" took effect ...
    assert json.loads((tiny_params.parent / "run" / "params.json").read_text())["algorithm"] == "sdpo"
    assert json.loads((tiny_params.parent / "run" / "eval" / "final" / "metrics.json").read_text())["samples"] == 4


def test_train_flow_runs_two_processes_under_torchrun(prefect_backend, tiny_params):
    """train.distributed.nproc=2: the flow launches the loop on 2 FSDP ranks and publishes the same artifacts."""
    import asyncio

    from prefect.client.orchestration import get_client

    from flows.vpd_flows import train

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    latest = train(str(tiny_params), ["train.distributed.nproc=2", "train.steps=2"])
    run = tiny_params.parent / "run"
    assert Path(latest) == run / "checkpoints" / "step-000002"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["train/step"] for r in rows] == [1.0, 2.0]

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts()

    found = asyncio.run(artifacts())
    progress = [a for a in found if a.type == "progress" and "2 processes" in (a.description or "")]
    assert progress and max(float(a.data) for a in progress) == 100.0
    assert any(a.key == "train-metrics" for a in found)


@pytest.mark.slow
def test_sweep_fans_out_to_a_work_pool_with_two_workers(prefect_backend, tiny_params):
    """sweep.mode: deployment — every (point, seed) a flow run of the pipeline deployment on a local
    process work pool; two workers run them at the same time; the parent's table is built from
    what the runs returned; every run and the comparison are mirrored to run_root; a run that
    fails is a row marked failed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL

    from flows import vpd_flows

    pool = "vpd-test-pool"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    vpd_flows.pipeline.from_source(source=str(REPO), entrypoint="flows/vpd_flows.py:pipeline").deploy(
        name="vpd-pipeline", work_pool_name=pool, print_next_steps=False)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--limit", "1"],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(2)]
    try:
        shared = tiny_params.parent / "shared"
        common = ["train.steps=1", "sweep.mode=deployment", "sweep.max_parallel=2", f"run_root=file://{shared}"]
        rows = vpd_flows.sweep(str(tiny_params), common, grid={"algorithm": ["grpo", "vpd"]}, seeds=[3])
        assert {r["algorithm"]: (r["seeds"], r["failed"]) for r in rows} == {"grpo": (1, 0), "vpd": (1, 0)}
        runs = json.loads((tiny_params.parent / "run" / "sweep" / "runs.json").read_text())
        assert all(r["metrics"] and r["solved"]["final"] for r in runs)  # carried in the results
        mirror = shared / Path(*(tiny_params.parent / "run" / "sweep").parts[1:])
        for r in runs:
            assert r["published"] == f"file://{shared}/{r['run_dir'].lstrip('/')}"
            child = shared / r["run_dir"].lstrip("/")
            assert (child / "report" / "report.html").is_file() and (child / "checkpoints" / "latest").is_file()
        assert json.loads((mirror / "runs.json").read_text()) == runs and (mirror / "comparison.md").is_file()
        with get_client(sync_client=True) as client:
            children = [fr for fr in client.read_flow_runs()  # (the local sweeps of other tests share names)
                        if fr.name in {r["flow_run"] for r in runs} and fr.deployment_id is not None]
        assert len(children) == 2 and all(fr.state.is_completed() for fr in children)
        assert max(fr.start_time for fr in children) < min(fr.end_time for fr in children)  # they overlapped

        rows = vpd_flows.sweep(str(tiny_params), [*common, "run_dir=" + str(tiny_params.parent / "run2")],
                               grid={"model.path": [str(tiny_params.parent / "no-such-model")]}, seeds=[3])
        assert rows[0]["failed"] == 1 and rows[0]["seeds"] == 0
        assert "1 failed" in (tiny_params.parent / "run2" / "sweep" / "comparison.md").read_text()
    finally:
        for w in workers:
            w.terminate()
        for w in workers:  # a worker may be busy reporting (its API's SQLite under load): not forever
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
