"""Deployments served by `vpd ui` (the same ones prefect.yaml declares for work pools)."""

from __future__ import annotations

from prefect.schedules import Cron

from vpd_core.config import DEFAULT_GRID

from .vpd_flows import pipeline, sweep


def deployments():
    return [
        pipeline.to_deployment(name="vpd-pipeline", parameters={"params_path": "params.yaml", "overrides": []},
                               description="prepare -> evaluate -> train -> evaluate -> report; set the typed settings (or overrides) in the UI"),
        sweep.to_deployment(
            name="nightly-sweep",
            parameters={"params_path": "params.yaml", "overrides": [], "grid": DEFAULT_GRID,
                        "dated": True},
            schedules=[Cron("0 2 * * *", timezone="UTC")],
            description="GRPO vs SDPO vs VPD every night at 02:00 UTC, each night in <run_dir>/sweeps/<date>/",
        ),
    ]
