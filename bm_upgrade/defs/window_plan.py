"""The window a run works within: its end, how long each kind of outage is expected to take,
and when the next window opens.

Dagster-side only for what it reads from the instance (past runs' step records,
:func:`bm_upgrade.defs.records.past_records`); the arithmetic is plain Python
(:mod:`bm_upgrade.window`).
"""

from __future__ import annotations

import datetime

import dagster as dg

from bm_upgrade.defs.config import RunSettings
from bm_upgrade.defs.records import past_records
from bm_upgrade.inventory import Inventory
from bm_upgrade.window import expected_outages, next_opening, window_end_for_run


def plan_window(
    instance: dg.DagsterInstance,
    job_name: str,
    settings: RunSettings,
    inventory: Inventory,
    *,
    respect_window: bool,
    now: datetime.datetime | None = None,
) -> RunSettings:
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
    expected = expected_outages(
        inventory, settings.options.timeouts, past_records(instance, job_name)
    )
    return settings.with_window(end, expected, next_opening(inventory.window, end))
