"""The experiment as Prefect flows. Each takes (params_path, overrides) so that the UI,
`vpd <command> --set key=value` and DVC stages all run the same thing."""

from __future__ import annotations

import json
import time
import sys
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_image_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from tqdm import tqdm

from vpd_core import loop
from vpd_core.checkpoint import export_final, latest_checkpoint
from vpd_core.config import DEFAULT_GRID, RunSettings
from vpd_core.report import data_uri, inline_figure, stage, write_report
from vpd_core.fileio import read_jsonl, write_text_atomic
from vpd_core.publish import mirror_url, publish, publish_run

from tasks.common import params_from, with_settings
from tasks.steps import TASK_PHASES, evaluate_checkpoint, fetch_model, prepare_split, train_distributed

KEY_METRICS = ["reward/mean", "reward/problems_solved", "distill/divergence", "student/entropy", "estep/accuracy", "time/step"]


@flow(name="prepare", log_prints=True)
def prepare(params_path: str = "params.yaml", overrides: list[str] | None = None) -> dict:
    """Fetch the model and write the train/test problems to <run_dir>/data/."""
    params = params_from(params_path, overrides)
    fetch_model(params)
    out = str(Path(params.run_dir) / "data")
    return {split: prepare_split(params, split, out) for split in ("train", "test")}


@flow(name="train", log_prints=True)
def train(params_path: str = "params.yaml", overrides: list[str] | None = None,
          settings: RunSettings | None = None) -> str:
    """rollouts -> grading -> M-step (+ E-step every F) -> metrics and checkpoint, every step; resumes."""
    overrides = with_settings(settings, overrides)
    params = params_from(params_path, overrides)
    if params.train.distributed.world > 1:
        # N processes (one per GPU) run the plain loop under torchrun; resumable the same way
        train_distributed(params_path, list(overrides or []), params)
        return _train_summary(params)
    log = get_run_logger()
    run = loop.Run(params, log=log.info)
    problems = loop.run_problems(params, "train")
    grader, sandbox = loop.make_grader(params, params.sandbox.train_tests)
    total = params.train.steps
    progress = create_progress_artifact(progress=100 * run.trainer.step / total, description="training steps")
    bar = tqdm(total=total, initial=run.trainer.step, desc="train", unit="step", file=sys.stderr)
    try:
        while not run.done:
            metrics = run.step(problems, grader, TASK_PHASES)  # each phase a task
            log.info(loop.format_metrics(metrics))
            update_progress_artifact(artifact_id=progress, progress=100 * run.trainer.step / total)
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['reward/mean']:.3f}")
    finally:
        bar.close()
        if sandbox is not None:
            sandbox.close()
    return _train_summary(params)


def _train_summary(params) -> str:
    """The metrics table artifact of a finished run and its exported weights (<run_dir>/final);
    returns its latest checkpoint."""
    run_dir = Path(params.run_dir)
    export_final(run_dir)
    publish_run(params, get_run_logger().info)
    rows = [{k: round(r.get(k, float("nan")), 4) for k in ["train/step", *KEY_METRICS]}
            for r in read_jsonl(run_dir / "metrics.jsonl")]
    create_table_artifact(key="train-metrics", table=rows, description=f"{params.run_dir}: metrics per step")
    return str(latest_checkpoint(run_dir / "checkpoints"))


@flow(name="evaluate", log_prints=True)
def evaluate(params_path: str = "params.yaml", overrides: list[str] | None = None, checkpoint: str = "latest",
             settings: RunSettings | None = None) -> dict:
    """mean@k / pass@k on the test split for a checkpoint ("base" = the initial model, "latest", or a path)."""
    overrides = with_settings(settings, overrides)
    params = params_from(params_path, overrides)
    result = evaluate_checkpoint(params, checkpoint)
    if result.get("reused"):
        get_run_logger().info("base model evaluation reused from %s", result["reused"])
    else:
        name = loop.eval_name(checkpoint)
        create_table_artifact(key=f"eval-{name.replace('_', '-')}", table=result["tables"]["overall"],
                              description=f"{params.data.source} test split, checkpoint {name}")
    return result["metrics"]


@flow(name="report", log_prints=True)
def report(params_path: str = "params.yaml", overrides: list[str] | None = None) -> str:
    """report.md and a self-contained report.html (vpd_core.report), shown in the UI with the
    figure inline, and where the run's files are."""
    params = params_from(params_path, overrides)
    run_dir = Path(params.run_dir)
    files = write_report(run_dir, params)
    out, png = files["markdown"], files["figure"]
    create_markdown_artifact(key="vpd-report", markdown=inline_figure(out.read_text(), png), description=str(out))
    # a browser opens no file:// URL from the UI: the picture travels inline, paths are shown as text
    create_image_artifact(image_url=data_uri(png), key="learning-curves", description=str(png))
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    create_markdown_artifact(key="run-files", description=str(run_dir), markdown="\n".join(
        [f"- report: `{out.resolve()}` and `{files['html'].resolve()}` (self-contained)",
         f"- metrics: `{(run_dir / 'metrics.jsonl').resolve()}`",
         f"- latest checkpoint: `{ckpt.resolve()}`" if ckpt is not None else "- no checkpoint yet"]))
    return str(out)


@flow(name="pipeline", log_prints=True, persist_result=True)
def pipeline(params_path: str = "params.yaml", overrides: list[str] | None = None,
             settings: RunSettings | None = None) -> dict:
    """prepare -> evaluate(base) -> train -> evaluate(latest) -> report, as subflows. `settings`:
    the typed form of the UI (algorithm, data source, steps, learning rate, ...); `overrides`:
    any other key as `key=value`. Returns the run's record (`report`: its path; the numbers, the
    per-step metrics and per-problem outcomes a sweep compares), persisted: a sweep that started
    this run as a deployment's flow run reads it from the result, not from the run directory."""
    overrides = with_settings(settings, overrides)
    params = params_from(params_path, overrides)
    loop.check_sandbox(params)  # no engine: fail now, not after prepare
    run_dir = params.run_dir  # each stage's wall time and peak memory go to <run_dir>/stages.json
    with stage(run_dir, "prepare"):
        prepare(params_path, overrides)
    with stage(run_dir, "evaluate base"):
        before = evaluate(params_path, overrides, checkpoint="base")
    with stage(run_dir, "train"):
        train(params_path, overrides)
    with stage(run_dir, "evaluate final"):
        after = evaluate(params_path, overrides, checkpoint="latest")
    out = report(params_path, overrides)
    get_run_logger().info("%s: held-out pass@1 %.3f -> %.3f (%d problems x %d samples); report %s and %s",
                          params.algorithm, before["pass@1"], after["pass@1"], after["problems"],
                          after["samples"] // max(after["problems"], 1), out, Path(out).with_suffix(".html"))
    from vpd_core import compare

    published = mirror_url(params.run_root, run_dir) if params.run_root else None
    return {"report": out, "published": published, **compare.run_record(run_dir)}


def sweep_root(run_dir: str, dated: bool) -> str:
    """Where a sweep writes: <run_dir>/sweep, or for scheduled sweeps <run_dir>/sweeps/<UTC date>
    (a fixed directory would resume last night's finished runs instead of training new ones)."""
    import datetime

    return f"{run_dir}/sweeps/{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}" if dated else f"{run_dir}/sweep"


def sweep_points(params_path: str, overrides: list[str] | None, grid: dict[str, list], seeds: list[int],
                 root: str | None = None) -> list[tuple[dict, int, list[str]]]:
    """Every (grid point, seed) and its child overrides, each validated before any work starts;
    run directories under `root` (default <run_dir>/sweep)."""
    import itertools

    from vpd_core.config import ParamsError

    if not isinstance(grid, dict) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise ParamsError(f"sweep grid: expected {{key: [values, ...]}} with at least one value each, got {grid!r}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ParamsError(f"sweep seeds: expected distinct integers, got {seeds!r}")
    base = params_from(params_path, overrides)
    root = root or sweep_root(base.run_dir, dated=False)
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values))
        name = "-".join(f"{k.split('.')[-1]}_{json.dumps(v) if not isinstance(v, str) else v}" for k, v in point.items())
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        for seed in seeds:
            child = [*(overrides or []), *(f"{k}={json.dumps(v)}" for k, v in point.items()), f"seed={seed}",
                     f"run_dir={root}/{name}/seed{seed}"]
            params_from(params_path, child)  # a bad grid value fails now, naming the key
            out.append((point, seed, child))
    return out


@flow(name="sweep", log_prints=True)
def sweep(params_path: str = "params.yaml", overrides: list[str] | None = None,
          grid: dict[str, list] | None = None, seeds: list[int] | None = None, dated: bool = False,
          settings: RunSettings | None = None) -> list[dict]:
    """A grid of overrides (e.g. {"algorithm": ["grpo", "sdpo", "vpd"]}) x replicate seeds -> one
    pipeline per (point, seed), each in its own run directory -> a comparison table with 95%
    confidence intervals over seeds, one learning-curve figure and per-problem outcomes
    (under <run_dir>/sweep/, or <run_dir>/sweeps/<UTC date>/ with dated=True, as the nightly
    deployment runs). A failed run is reported and marked; the others finish."""
    from vpd_core import compare

    overrides = with_settings(settings, overrides)
    log = get_run_logger()
    base = params_from(params_path, overrides)
    loop.check_sandbox(base)
    grid = grid or DEFAULT_GRID
    seeds = list(seeds or [base.seed])
    root = sweep_root(base.run_dir, dated)
    points = sweep_points(params_path, overrides, grid, seeds, root)
    keys = list(grid)
    if base.sweep.mode == "deployment":
        results = run_on_deployment(points, params_path, base.sweep.deployment, base.sweep.max_parallel)
    else:
        results = []
        for i, (point, seed, child) in enumerate(points, 1):
            run_dir = child[-1].split("=", 1)[1]
            log.info("sweep run %d/%d: %s, seed %d -> %s", i, len(points), point_label(point), seed, run_dir)
            row = {**point, "seed": seed, "run_dir": run_dir}
            try:
                row |= pipeline.with_options(flow_run_name=run_name(run_dir, seed))(params_path, child)
            except Exception as e:  # noqa: BLE001 - one failed run is a row, not the end of the sweep
                log.error("sweep run %s, seed %d failed: %s", point_label(point), seed, e)
                row |= {"failed": f"{type(e).__name__}: {e}"}
            results.append(row)
    out_dir = Path(root)
    files = compare.write_comparison(results, keys, out_dir)
    table = compare.summarize_points(results, keys)
    create_table_artifact(key="sweep-comparison", table=[{k: (round(v, 4) if isinstance(v, float) else v)
                                                          for k, v in r.items()} for r in table],
                          description=f"grid {grid}, seeds {seeds}: mean and 95% CI half-width over seeds")
    create_markdown_artifact(key="sweep-report", markdown=sweep_report(grid, seeds, files, params_path, overrides),
                             description=str(out_dir))
    if base.run_root:  # beside the runs' own mirrors, which each run publishes itself
        url = mirror_url(base.run_root, out_dir)
        publish(out_dir, url, recursive=False)
        log.info("sweep comparison published to %s", url)
    log.info("sweep comparison:\n%s", files["table_md"].read_text())
    return table


def point_label(point: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def run_name(run_dir: str, seed: int) -> str:
    return f"sweep-{Path(run_dir).parent.name}-seed{seed}"


def run_on_deployment(points: list[tuple[dict, int, list[str]]], params_path: str, deployment: str,
                      max_parallel: int, poll_s: float = 2.0) -> list[dict]:
    """Every (point, seed) as a flow run of `deployment` (a child of this flow run in the UI), at most
    `max_parallel` in flight; whichever workers serve the deployment's work pool pick them up. Waits
    for all; a run that does not complete is a row marked failed. Rows come from what each run
    returned (its persisted result), in the order of `points`."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    log = get_run_logger()
    pending = list(enumerate(points))
    running: dict = {}  # flow run id -> (index, point, seed, run_dir)
    rows: dict[int, dict] = {}
    with get_client(sync_client=True) as client:
        while pending or running:
            while pending and len(running) < max_parallel:
                i, (point, seed, child) = pending.pop(0)
                run_dir = child[-1].split("=", 1)[1]
                fr = run_deployment(name=deployment, parameters={"params_path": params_path, "overrides": child},
                                    flow_run_name=run_name(run_dir, seed), timeout=0)
                log.info("sweep run %d/%d: %s, seed %d -> flow run %s (%s)", i + 1, len(points), point_label(point),
                         seed, fr.name, run_dir)
                running[fr.id] = (i, point, seed, run_dir)
            time.sleep(poll_s)
            for run_id, (i, point, seed, run_dir) in list(running.items()):
                fr = client.read_flow_run(run_id)
                if fr.state is None or not fr.state.is_final():
                    continue
                del running[run_id]
                row = {**point, "seed": seed, "run_dir": run_dir, "flow_run": fr.name}
                try:
                    row |= fr.state.result(raise_on_failure=True)
                except Exception as e:  # noqa: BLE001 - a failed or crashed run is a row, not the end of the sweep
                    log.error("sweep run %s, seed %d (%s) failed: %s", point_label(point), seed, fr.name, e)
                    row |= {"failed": f"{fr.state.type.value}: {e}"}
                rows[i] = row
    return [rows[i] for i in sorted(rows)]


def sweep_report(grid: dict, seeds: list[int], files: dict, params_path: str, overrides: list[str] | None) -> str:
    """The sweep's report: the table, the figure inline (a data URI shows in the UI and any viewer)."""
    text = (f"# Sweep: {json.dumps(grid)} x seeds {seeds}\n\nparams `{params_path}`, overrides `{overrides or []}`\n\n"
            f"{files['table_md'].read_text()}\n![learning curves]({files['figure'].name})\n\n"
            f"Per-problem outcomes: `{files['problems']}`; per-run numbers: `{files['runs']}`.\n")
    write_text_atomic(files["table_md"].parent / "report.md", text)
    return inline_figure(text, files["figure"])
