"""Maintenance windows in Dagster: one schedule per cluster whose window is on, and the window
a run works within (its end, how long past outages took, when the next window opens).

The schedule's run carries ``window_end`` (the tick plus the window's length) in its config;
a run started by hand has none and ignores the window unless its config asks for
``respect_window``. The window arithmetic is plain Python (:mod:`bm_upgrade.window`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import dagster as dg

from bm_upgrade.defs.config import RunSettings, UpgradeConfig
from bm_upgrade.inventory import Inventory
from bm_upgrade.window import (
    expected_outages,
    next_opening,
    window_end,
    window_end_for_run,
)

RECORDS_KEY = "records"
"""Output metadata of the ops that change the cluster (upgrade_mirrors_*, failover_*,
restart_clients_*, wan_cycle): their step records (JSON). Read by key whatever the step is
called, so runs made before a rename of the steps count too (each record names its server,
client or orchestrator and its action, not the step)."""
PAST_RUNS = 5
"""Successful runs whose durations predict the next run's (the longest wins)."""


def schedule_name(inventory: Inventory) -> str:
    return f"window_{inventory.cluster}"


def build_window_schedule(inventory: Inventory,
                          job: dg.JobDefinition) -> dg.ScheduleDefinition | None:
    """The schedule of the cluster's maintenance window (None: the window is off).

    It starts stopped, as every Dagster schedule does: an operator turns it on (UI,
    Automation) once the inventory's target is the one the window should install. The cron
    was checked when the inventory was loaded (``window.cron``: in range, and it fires).
    """
    window = inventory.window
    if not window.enabled:
        return None
    defaults = UpgradeConfig.defaults_for(inventory)

    @dg.schedule(name=schedule_name(inventory), cron_schedule=window.cron,
                 execution_timezone=window.timezone, job=job,
                 description=f"Maintenance window of {inventory.cluster}: {window.cron} "
                             f"({window.timezone}), {window.length_minutes} min")
    def _window(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        opening = context.scheduled_execution_time
        end = window_end(window, opening)
        config = {**defaults, "window_end": end.isoformat()}
        return dg.RunRequest(run_key=opening.isoformat(),
                             run_config={"ops": {"preflight": {"config": config}}})

    return _window


def past_records(instance: dg.DagsterInstance, job_name: str,
                 limit: int = PAST_RUNS) -> Iterator[list[dict[str, Any]]]:
    """The step records of the last ``limit`` successful runs of ``job_name``, run by run."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=job_name,
                                                   statuses=[dg.DagsterRunStatus.SUCCESS]),
                             limit=limit)
    for run in runs:
        records: list[dict[str, Any]] = []
        events = instance.get_records_for_run(run.run_id,
                                              of_type=dg.DagsterEventType.STEP_OUTPUT).records
        for event in events:
            dagster_event = event.event_log_entry.dagster_event
            data = dagster_event.step_output_data if dagster_event else None
            value = data.metadata.get(RECORDS_KEY) if data else None
            if isinstance(value, dg.JsonMetadataValue) and isinstance(value.data, list):
                records.extend(r for r in value.data if isinstance(r, dict))
        yield records


def plan_window(instance: dg.DagsterInstance, job_name: str, settings: RunSettings,
                inventory: Inventory, *, respect_window: bool,
                now: datetime.datetime | None = None) -> RunSettings:
    """The run's settings with its window: the end (from the schedule, or the window in
    progress when a run by hand asked to respect it), how long each kind of outage is
    expected to take, and when the next window opens.

    Raises:
        StepFailed: a run by hand asked to respect a window, and none is open.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    end = settings.window_end
    if end is None and respect_window:
        end = window_end_for_run(inventory.window, now)
    if end is None:
        return settings
    expected = expected_outages(inventory, settings.timeouts, past_records(instance, job_name))
    return settings.with_window(end, expected, next_opening(inventory.window, end))
