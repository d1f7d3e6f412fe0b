"""The window a run works within: its end, how long each kind of outage is expected to take,
when the next window opens, and whether the whole run is expected to finish before it closes
(:func:`predicted_start`, preflight's refusal of a run that cannot).

Dagster-side only for what it reads from the instance (past runs' step records,
:func:`bm_upgrade.defs.records.past_records`); the arithmetic is plain Python
(:mod:`bm_upgrade.window`).
"""

from __future__ import annotations

import datetime

import dagster as dg

from bm_upgrade.defs.config import RunSettings
from bm_upgrade.defs.prediction import Prediction, predict_plan
from bm_upgrade.defs.records import past_records
from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory
from bm_upgrade.plan import Plan
from bm_upgrade.plan.estimate import late_start
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


def predicted_start(
    instance: dg.DagsterInstance,
    settings: RunSettings,
    inventory: Inventory,
    plan: Plan,
    *,
    ignore_prediction: bool,
    now: datetime.datetime | None = None,
) -> Prediction:
    """The run's predicted duration, for the work ``plan`` (preflight's, on the observed
    state) leaves; a run that must end before its window closes is refused here when the
    prediction from past runs says it cannot (a dry run changes nothing: never refused).

    Raises:
        StepFailed: the prediction is longer than the time left in the window; nothing has
            been touched.
    """
    prediction = predict_plan(instance, inventory, plan)
    end = settings.window_end
    if end is None or settings.dry_run or ignore_prediction:
        return prediction
    now = now or datetime.datetime.now(datetime.UTC)
    late = late_start(prediction, end, now)
    if late is None:
        return prediction
    upcoming = settings.next_opening or next_opening(inventory.window, end)
    when = upcoming.isoformat() if upcoming else "not known (check window.cron)"
    raise StepFailed(
        "preflight",
        f"{late}; nothing was touched; the next window opens {when}: run then, or launch "
        "with ignore_prediction: true to start anyway (each disruptive step still checks "
        "that it fits before the window closes)",
    )
