"""Maintenance windows in Dagster: one schedule per cluster whose window is on.

The schedule's run carries ``window_end`` (the tick plus the window's length) in its config;
a run started by hand has none and ignores the window unless its config asks for
``respect_window`` (:mod:`bm_upgrade.defs.window_plan`). The window arithmetic is plain Python
(:mod:`bm_upgrade.window`).
"""

from __future__ import annotations

import dagster as dg

from bm_upgrade.defs.config import UpgradeConfig
from bm_upgrade.inventory import Inventory
from bm_upgrade.window import window_end


def schedule_name(inventory: Inventory) -> str:
    """The name of the cluster's window schedule."""
    return f"window_{inventory.cluster}"


def build_window_schedule(
    inventory: Inventory, job: dg.JobDefinition
) -> dg.ScheduleDefinition | None:
    """The schedule of the cluster's maintenance window (None: the window is off).

    It starts stopped, as every Dagster schedule does: an operator turns it on (UI,
    Automation) once the inventory's target is the one the window should install. The cron
    was checked when the inventory was loaded (``window.cron``: in range, and it fires).
    """
    window = inventory.window
    if not window.enabled:
        return None
    defaults = UpgradeConfig.defaults_for(inventory)

    @dg.schedule(
        name=schedule_name(inventory),
        cron_schedule=window.cron,
        execution_timezone=window.timezone,
        job=job,
        description=f"Maintenance window of {inventory.cluster}: {window.cron} "
        f"({window.timezone}), {window.length_minutes} min",
    )
    def _window(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        opening = context.scheduled_execution_time
        end = window_end(window, opening)
        config = {**defaults, "window_end": end.isoformat()}
        return dg.RunRequest(
            run_key=opening.isoformat(), run_config={"ops": {"preflight": {"config": config}}}
        )

    return _window
