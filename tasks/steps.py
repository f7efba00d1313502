"""Tasks of the training and evaluation flows."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE, TASK_SOURCE, CacheKeyFnPolicy
from tqdm import tqdm

from sandboxes.types import SandboxError
from vpd_core import distributed, loop
from vpd_core.config import Params
from vpd_core.fileio import write_jsonl_atomic
from vpd_core.models import resolve_model_path

from .common import step_key

STEP_CACHE = CacheKeyFnPolicy(cache_key_fn=step_key) + TASK_SOURCE


def infra_only(task, task_run, state) -> bool:
    """Retry sandbox infrastructure failures only; a program's own failure is a verdict, not an error."""
    try:
        state.result()
    except SandboxError:
        return True
    except Exception:  # noqa: BLE001
        return False
    return False


@task(cache_policy=NO_CACHE)
def fetch_model(params: Params) -> str:
    path = resolve_model_path(params.model.path, params.model.cache_dir)  # "embedded" is fetched once
    get_run_logger().info("model at %s", path)
    return str(path)


@task(cache_policy=NO_CACHE)
def prepare_split(params: Params, split: str, out_dir: str) -> dict:
    problems = loop.load_problems(params, split)
    out = Path(out_dir) / f"{split}.jsonl"
    write_jsonl_atomic(out, [p.to_dict() for p in problems])
    get_run_logger().info("%s: %d %s problems -> %s", split, len(problems), params.data.source, out)
    return {"split": split, "problems": len(problems), "path": str(out)}


@task(cache_policy=STEP_CACHE, persist_result=True)
def generate_rollouts(run: loop.Run, problems: list, params: Params, step: int):
    return loop.rollout_step(run.engine, run.tok, problems, params, step)


@task(cache_policy=STEP_CACHE, persist_result=True, retries=2, retry_delay_seconds=5, retry_condition_fn=infra_only)
def grade_rollouts(grader, batch: list, rollouts: list, params: Params, step: int) -> list:
    return grader(loop.expand(batch, rollouts, params.rollout.group_size))


@task(cache_policy=NO_CACHE)
def diagnose(run: loop.Run, problems: list, grader) -> dict:
    return run.diagnose(problems, grader)


@task(cache_policy=NO_CACHE)
def update(run: loop.Run, batch: list, rollouts: list, graded: list) -> dict:
    return run.update(loop.make_samples(batch, rollouts, graded, run.params.rollout.group_size, run.trainer.step))


@task(cache_policy=NO_CACHE)
def record_step(run: loop.Run, metrics: dict) -> str | None:
    ckpt = run.record(metrics)
    return str(ckpt) if ckpt else None


class TaskPhases(loop.Phases):
    """A training step's phases as the tasks above (loop.Run.step owns their order)."""

    def diagnose(self, run, problems, grade):
        return diagnose(run, problems, grade)

    def rollouts(self, run, problems, step):
        return generate_rollouts(run, problems, run.params, step)

    def grade(self, run, grade, batch, rollouts, step):
        return grade_rollouts(grade, batch, rollouts, run.params, step)

    def update(self, run, batch, rollouts, graded):
        return update(run, batch, rollouts, graded)

    def record(self, run, metrics):
        return record_step(run, metrics)


TASK_PHASES = TaskPhases()


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=infra_only)
def evaluate_checkpoint(params: Params, checkpoint: str) -> dict:
    """loop.evaluate_checkpoint with its progress as a console bar and a Prefect progress artifact."""
    name = loop.eval_name(checkpoint)
    total = len(loop.run_problems(params, "test")) * params.eval.samples
    artifact = create_progress_artifact(progress=0.0, description=f"evaluation {name}: samples generated")
    bar = tqdm(total=total, desc=f"evaluate {name}", unit="sample", file=sys.stderr)
    done = 0

    def progress(k: int) -> None:
        nonlocal done
        done += k
        bar.update(k)
        update_progress_artifact(artifact_id=artifact, progress=100 * done / total)

    try:
        return loop.evaluate_checkpoint(params, checkpoint, progress)
    finally:
        bar.close()


@task(cache_policy=NO_CACHE)
def train_distributed(params_path: str, overrides: list[str], params: Params) -> None:
    """The training loop on train.distributed.nproc processes under torchrun; its log streams here."""
    log = get_run_logger()
    d = params.train.distributed
    cmd = shlex.join(distributed.train_command(params_path, overrides, d))
    log.info("launching %d processes: %s", d.nproc, cmd)
    total = params.train.steps
    progress = create_progress_artifact(progress=0.0, description=f"training steps ({d.nproc} processes)")
    with distributed.launch_training(params_path, overrides, d, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1) as proc:
        metrics, seen = Path(params.run_dir) / "metrics.jsonl", None
        for line in proc.stdout:
            log.info(line.rstrip())
            stamp = metrics.stat().st_mtime_ns if metrics.exists() else None  # rank 0 rewrites it every step
            if stamp != seen:
                seen = stamp
                update_progress_artifact(artifact_id=progress,
                                         progress=100 * loop.completed_steps(Path(params.run_dir)) / total)
    if proc.returncode:
        raise RuntimeError(f"distributed training failed (exit status {proc.returncode}): {cmd}")
