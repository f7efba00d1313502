"""Shared bits of the orchestration layer: params in and out of flows, graders, cache keys."""

from __future__ import annotations

import hashlib
import json
import os

from prefect.context import TaskRunContext

from vpd_core.config import Params, RunSettings, load_params
from vpd_core.data.schema import CODE_SOURCES


def params_from(params_path: str = "params.yaml", overrides: list[str] | None = None) -> Params:
    """Flows take (path, overrides): JSON-friendly, editable in the UI, validated before any work."""
    return load_params(params_path, list(overrides or []))


def with_settings(settings: RunSettings | None, overrides: list[str] | None) -> list[str]:
    """The UI form's typed settings, then the free-form overrides (which win where both set a key)."""
    return [*(settings.as_overrides() if settings is not None else []), *(overrides or [])]


def params_hash(params: Params) -> str:
    return hashlib.sha256(json.dumps(params.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def check_sandbox(params: Params) -> None:
    """A code task needs its sandbox engine: refuse before any work (not after a model load)."""
    if params.data.source in CODE_SOURCES:
        from sandboxes import check_available

        check_available(params.sandbox.backend)


def make_grader(params: Params, split: str, processes: int = 1):
    """Code problems go to the sandbox (split: "train" tests or "all"); the rest are graded in-process.

    `processes`: how many training processes share this machine's cores (one sandbox each)."""
    from vpd_core.loop import text_grader

    if params.data.source not in CODE_SOURCES:
        return text_grader, None
    from sandboxes import make_sandbox
    from sandboxes.grading import code_grader

    s = params.sandbox
    concurrency = s.concurrency or max(1, (os.cpu_count() or 1) // processes)
    sandbox = make_sandbox(s.backend, concurrency=concurrency)
    return code_grader(sandbox, split=split, time_limit_s=s.time_limit_s, memory_mb=s.memory_mb), sandbox


def step_key(context: TaskRunContext, parameters: dict) -> str:
    """Cache key of per-step work: (run, params, step). Rollouts and grades are pure functions of
    the weights at that step (a checkpoint), the problems and the seed, so a resumed run reuses them."""
    p: Params = parameters["params"]
    return f"{context.task.name}-{params_hash(p)}-{hashlib.sha256(p.run_dir.encode()).hexdigest()[:8]}-step{parameters['step']}"
