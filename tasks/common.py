"""Shared bits of the orchestration layer: params in and out of flows, cache keys."""

from __future__ import annotations

import hashlib
import json

from prefect.context import TaskRunContext

from vpd_core.config import Params, RunSettings, load_params


def params_from(params_path: str = "params.yaml", overrides: list[str] | None = None) -> Params:
    """Flows take (path, overrides): JSON-friendly, editable in the UI, validated before any work."""
    return load_params(params_path, list(overrides or []))


def with_settings(settings: RunSettings | None, overrides: list[str] | None) -> list[str]:
    """The UI form's typed settings, then the free-form overrides (which win where both set a key)."""
    return [*(settings.as_overrides() if settings is not None else []), *(overrides or [])]


def params_hash(params: Params) -> str:
    return hashlib.sha256(json.dumps(params.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def step_key(context: TaskRunContext, parameters: dict) -> str:
    """Cache key of per-step work: (run, params, step). Rollouts and grades are pure functions of
    the weights at that step (a checkpoint), the problems and the seed, so a resumed run reuses them."""
    p: Params = parameters["params"]
    return f"{context.task.name}-{params_hash(p)}-{hashlib.sha256(p.run_dir.encode()).hexdigest()[:8]}-step{parameters['step']}"
