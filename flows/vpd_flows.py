"""The experiment as Prefect flows. Each takes (params_path, overrides) so that the UI,
`vpd <command> --set key=value` and DVC stages all run the same thing."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from tqdm import tqdm

from vpd_core import loop
from vpd_core.checkpoint import latest_checkpoint
from vpd_core.fileio import atomic_output, read_jsonl, write_text_atomic

from tasks.common import make_grader, params_from
from tasks.steps import (evaluate_checkpoint, fetch_model, generate_rollouts, grade_rollouts, prepare_split,
                         record_step, train_distributed, update)

KEY_METRICS = ["reward/mean", "reward/pass_rate", "distill/divergence", "student/entropy", "estep/accuracy", "time/step"]


@flow(name="prepare", log_prints=True)
def prepare(params_path: str = "params.yaml", overrides: list[str] | None = None) -> dict:
    """Fetch the model and write the train/test problems to <run_dir>/data/."""
    params = params_from(params_path, overrides)
    fetch_model(params)
    out = str(Path(params.run_dir) / "data")
    return {split: prepare_split(params, split, out) for split in ("train", "test")}


@flow(name="train", log_prints=True)
def train(params_path: str = "params.yaml", overrides: list[str] | None = None) -> str:
    """rollouts -> grading -> M-step (+ E-step every F) -> metrics and checkpoint, every step; resumes."""
    params = params_from(params_path, overrides)
    if params.train.distributed.nproc > 1:
        # N processes (one per GPU) run the plain loop under torchrun; resumable the same way
        train_distributed(params_path, list(overrides or []), params)
        return _train_summary(params)
    log = get_run_logger()
    run = loop.Run(params, log=log.info)
    problems = loop.run_problems(params, "train")
    grader, sandbox = make_grader(params, params.sandbox.train_tests)
    total = params.train.steps
    progress = create_progress_artifact(progress=100 * run.trainer.step / total, description="training steps")
    bar = tqdm(total=total, initial=run.trainer.step, desc="train", unit="step", file=sys.stderr)
    try:
        while not run.done:
            step = run.trainer.step
            t0 = time.perf_counter()
            batch, rollouts = generate_rollouts(run, problems, params, step)
            t1 = time.perf_counter()
            graded = grade_rollouts(grader, batch, rollouts, params, step)
            t2 = time.perf_counter()
            metrics = update(run, batch, rollouts, graded)
            metrics |= {"time/rollout": t1 - t0, "time/execution": t2 - t1, "time/step": time.perf_counter() - t0}
            record_step(run, metrics)
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
    """The metrics table artifact of a finished run; returns its latest checkpoint."""
    run_dir = Path(params.run_dir)
    rows = [{k: round(r.get(k, float("nan")), 4) for k in ["train/step", *KEY_METRICS]}
            for r in read_jsonl(run_dir / "metrics.jsonl")]
    create_table_artifact(key="train-metrics", table=rows, description=f"{params.run_dir}: metrics per step")
    return str(latest_checkpoint(run_dir / "checkpoints"))


@flow(name="evaluate", log_prints=True)
def evaluate(params_path: str = "params.yaml", overrides: list[str] | None = None, checkpoint: str = "latest") -> dict:
    """mean@k / pass@k on the test split for a checkpoint ("base" = the initial model, "latest", or a path)."""
    from vpd_core.models import load_model, load_tokenizer, resolve_model_path
    from vpd_core.rollout import make_engine

    params = params_from(params_path, overrides)
    if checkpoint == "base":
        model_dir, name = resolve_model_path(params.model.path, params.model.cache_dir), "base"
    else:
        ckpt = latest_checkpoint(Path(params.run_dir) / "checkpoints") if checkpoint == "latest" else Path(checkpoint)
        if ckpt is None:
            raise FileNotFoundError(f"{params.run_dir}/checkpoints: no checkpoint to evaluate")
        model_dir, name = ckpt / "model", "final" if checkpoint == "latest" else ckpt.name
    tok = load_tokenizer(model_dir, params.model.chat_template_kwargs)
    # a vLLM engine loads the weights itself; the HF copy then only answers config questions, off the GPU
    device = "cpu" if params.rollout.backend == "vllm" else params.model.device
    model = load_model(model_dir, params.model.dtype, device)
    problems = loop.run_problems(params, "test")
    grader, sandbox = make_grader(params, "all")
    out = Path(params.run_dir) / "eval" / name
    try:
        tables = evaluate_checkpoint(make_engine(params, model, tok, model_dir), tok, problems, params,
                                     grader, str(out / "tables"), params.data.source, params.seed + 10_000)
    finally:
        if sandbox is not None:
            sandbox.close()
    overall = tables["overall"][0]
    create_table_artifact(key=f"eval-{name.replace('_', '-')}", table=tables["overall"],
                          description=f"{params.data.source} test split, checkpoint {name}")
    source = "base model" if checkpoint == "base" else str(model_dir.parent)
    write_text_atomic(out / "metrics.json", json.dumps({**overall, "checkpoint": source}, indent=2))
    return {"checkpoint": source, **overall}


@flow(name="report", log_prints=True)
def report(params_path: str = "params.yaml", overrides: list[str] | None = None) -> str:
    """Learning curves (PNG), a markdown report with the evaluation tables, links to checkpoints."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = params_from(params_path, overrides)
    run_dir = Path(params.run_dir)
    rows = read_jsonl(run_dir / "metrics.jsonl")
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.2))
    for ax, key in zip(axes, ["reward/mean", "reward/pass_rate", "distill/divergence", "estep/accuracy"]):
        pts = [(r["train/step"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts), marker="o")
        ax.set_title(key)
        ax.set_xlabel("step")
    fig.tight_layout()
    png = run_dir / "report" / "learning_curves.png"
    with atomic_output(png) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    sections = [f"# VPD run report: `{run_dir}`\n", f"algorithm **{params.algorithm}**, {len(rows)} steps, "
                f"model `{params.model.path}`, data `{params.data.source}`\n", "![learning curves](learning_curves.png)\n"]
    for ev in sorted((run_dir / "eval").glob("*/metrics.json")):
        m = json.loads(ev.read_text())
        sections.append(f"## Evaluation: {ev.parent.name}\n\n" + "\n".join(f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in m.items()) + "\n")
        md = ev.parent / "tables" / f"{params.data.source}.md"
        if md.exists():
            sections.append(md.read_text())
    text = "\n".join(sections)
    out = run_dir / "report" / "report.md"
    write_text_atomic(out, text)
    create_markdown_artifact(key="vpd-report", markdown=text, description=str(out))
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if ckpt is not None:
        create_link_artifact(key="latest-checkpoint", link=ckpt.resolve().as_uri(), description="latest checkpoint")
    create_link_artifact(key="report-file", link=out.resolve().as_uri(), description="report")
    create_image_artifact(image_url=png.resolve().as_uri(), key="learning-curves", description=str(png))
    return str(out)


@flow(name="pipeline", log_prints=True)
def pipeline(params_path: str = "params.yaml", overrides: list[str] | None = None) -> str:
    """prepare -> evaluate(base) -> train -> evaluate(latest) -> report, as subflows."""
    prepare(params_path, overrides)
    before = evaluate(params_path, overrides, checkpoint="base")
    train(params_path, overrides)
    after = evaluate(params_path, overrides, checkpoint="latest")
    out = report(params_path, overrides)
    get_run_logger().info("evaluation before: %s | after: %s | report: %s", before, after, out)
    return out


@flow(name="sweep", log_prints=True)
def sweep(params_path: str = "params.yaml", overrides: list[str] | None = None,
          grid: dict[str, list] | None = None) -> list[dict]:
    """A grid of overrides (e.g. {"algorithm": ["grpo", "sdpo", "vpd"]}) -> one pipeline per point,
    each in its own run directory -> a comparison table."""
    import itertools

    base = params_from(params_path, overrides)
    grid = grid or {"algorithm": ["grpo", "sdpo", "vpd"]}
    keys = list(grid)
    rows = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in zip(keys, values)]
        name = "-".join(f"{k.split('.')[-1]}_{v}" for k, v in zip(keys, values))
        child = [*(overrides or []), *point, f"run_dir={base.run_dir}/sweep/{name}"]
        pipeline.with_options(flow_run_name=f"sweep-{name}")(params_path, child)
        m = json.loads((Path(base.run_dir) / "sweep" / name / "eval" / "base" / "metrics.json").read_text())
        after = json.loads((Path(base.run_dir) / "sweep" / name / "eval" / "final" / "metrics.json").read_text())
        rows.append({**dict(zip(keys, values)), **{f"base {k}": v for k, v in m.items() if "@" in k},
                     **{f"final {k}": v for k, v in after.items() if "@" in k}})
    create_table_artifact(key="sweep-comparison", table=rows, description=f"grid {grid}")
    return rows
