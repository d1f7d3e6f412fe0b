"""The predicted duration of an upgrade run, from the cluster's past runs in the Dagster
instance: what the step times of those runs were (STEP_START to STEP_SUCCESS in the event
log), how much work each step did (its step records, :mod:`bm_upgrade.defs.records`), and
the time Dagster spent between steps.

The arithmetic is plain Python (:mod:`bm_upgrade.plan.estimate`); this module reads the
instance. Shown by `bm-upgrade plan`, in the job's description in the UI, in the preflight
step's metadata, and used by preflight to refuse a run that cannot finish before its
maintenance window closes (:mod:`bm_upgrade.defs.window_plan`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

from bm_upgrade.defs.instance import instance
from bm_upgrade.defs.records import PAST_RUNS, RECORDS_KEY, successful_runs
from bm_upgrade.errors import UserError
from bm_upgrade.inventory import Inventory
from bm_upgrade.plan import Plan, PlanOptions, make_plan
from bm_upgrade.plan.estimate import (
    COUNTED_KINDS,
    SERVER_KINDS,
    PastRun,
    PastStep,
    Prediction,
    estimate,
    from_timeouts,
    shape_options,
    step_kind,
    work_of,
)

__all__ = ["Prediction", "past_runs", "predict", "predict_here", "predict_plan"]

_STEP_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_OUTPUT,
}


def predict(
    instance: dg.DagsterInstance | None, inventory: Inventory, options: PlanOptions
) -> Prediction:
    """How long a run of the cluster's job with ``options`` is expected to take, every node
    still to upgrade; from the instance's last successful runs of the job, or with no
    instance or no such run, from the inventory's timeouts (the ``basis`` says which).

    Raises:
        UserError: ``options`` names a target with no kit in the inventory.
    """
    plan = make_plan(inventory, options=shape_options(options))
    return predict_plan(instance, inventory, plan)


def predict_plan(
    instance: dg.DagsterInstance | None, inventory: Inventory, plan: Plan
) -> Prediction:
    """As :func:`predict`, for the work left in ``plan`` (a plan made on the cluster's
    observed state counts only the nodes still to upgrade)."""
    history = past_runs(instance, _job_name(inventory)) if instance is not None else []
    return estimate(work_of(plan, inventory), history)


def _job_name(inventory: Inventory) -> str:
    from bm_upgrade.defs.jobs import job_name  # jobs imports the ops, which import this

    return job_name(inventory)


def past_runs(instance: dg.DagsterInstance, job_name: str, limit: int = PAST_RUNS) -> list[PastRun]:
    """The last ``limit`` successful runs of ``job_name`` that changed or checked the
    cluster (dry runs left out), newest first: each step's time and units of work."""
    runs: list[PastRun] = []
    for record in successful_runs(instance, job_name, limit=2 * limit):
        run = record.dagster_run
        if _dry_run(run.run_config):
            continue
        events = instance.get_records_for_run(run.run_id, of_type=_STEP_EVENTS).records
        steps = _steps(e.event_log_entry for e in events)
        idle = None
        if run.parent_run_id is None and record.start_time and record.end_time:
            idle = max(0.0, record.end_time - record.start_time - _busy(steps.values()))
        runs.append(
            PastRun(
                tuple(
                    PastStep(key, end - start, units) for key, (start, end, units) in steps.items()
                ),
                idle,
            )
        )
        if len(runs) == limit:
            break
    return runs


def _dry_run(run_config: Mapping[str, Any]) -> bool:
    ops = run_config.get("ops")
    preflight = ops.get("preflight") if isinstance(ops, Mapping) else None
    config = preflight.get("config") if isinstance(preflight, Mapping) else None
    return isinstance(config, Mapping) and bool(config.get("dry_run"))


def _steps(entries: Iterable[dg.EventLogEntry]) -> dict[str, tuple[float, float, int]]:
    """Per step that succeeded: its start and end (unix times) and units of work."""
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    units: dict[str, int] = {}
    for entry in entries:
        event = entry.dagster_event
        key = entry.step_key
        if event is None or key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[key] = entry.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            ended[key] = entry.timestamp
        elif event.step_output_data is not None:
            units[key] = _units(key, event.step_output_data.metadata.get(RECORDS_KEY))
    return {
        key: (started[key], end, units.get(key, 1)) for key, end in ended.items() if key in started
    }


def _units(step_key: str, value: object) -> int:
    """A step's units of work from its records: the servers it started, or one when it
    changed anything (see :mod:`bm_upgrade.plan.estimate`)."""
    records = value.data if isinstance(value, dg.JsonMetadataValue) else None
    kind = step_kind(step_key)
    if not isinstance(records, list) or kind not in COUNTED_KINDS:
        return 1
    if kind in SERVER_KINDS:
        return sum(1 for r in records if isinstance(r, dict) and r.get("action") == "start")
    return int(bool(records))


def _busy(spans: Iterable[tuple[float, float, int]]) -> float:
    """The time some step ran: the union of the steps' spans."""
    total, reach = 0.0, float("-inf")
    for start, end, _ in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def predict_here(inventory: Inventory, options: PlanOptions) -> Prediction:
    """:func:`predict` from the instance of ``DAGSTER_HOME`` (`bm-upgrade plan`); an instance
    that cannot be opened or read gives the timeouts' estimate, saying why."""
    try:
        inst = instance()
    except UserError as exc:
        return _from_timeouts(inventory, options, f"no past run read: {exc}")
    with inst:
        try:
            return predict(inst, inventory, options)
        except UserError:
            raise
        except Exception as exc:  # a storage error: the plan is still worth printing
            return _from_timeouts(inventory, options, f"the instance could not be read: {exc!r}")


def _from_timeouts(inventory: Inventory, options: PlanOptions, why: str) -> Prediction:
    plan = make_plan(inventory, options=shape_options(options))
    return from_timeouts(work_of(plan, inventory), why)
