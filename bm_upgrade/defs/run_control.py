"""What the operator's controls of a running upgrade share (the approval gate's decisions,
:mod:`bm_upgrade.defs.approval`; a pause, :mod:`bm_upgrade.defs.pausing`): finding the upgrade
run they act on, where one of its steps is, and who acted when.

A control writes run tags on the upgrade run; the run's own steps read them from the instance.
So the command line (`bm-upgrade approve|reject|pause`) and the UI (the small control jobs of
:mod:`bm_upgrade.defs.control_jobs`) act the same way on any run of the instance, whichever
process or machine executes it.
"""

from __future__ import annotations

import datetime
import getpass
from enum import Enum

import dagster as dg

from bm_upgrade.defs.runclaim import CLUSTER_TAG, GOING, INVENTORY_TAG
from bm_upgrade.errors import UserError


class StepState(Enum):
    """Where one step of a run is, from the run's events."""

    NOT_STARTED = "not started"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def utc_now() -> str:
    """Now, ISO 8601 in UTC, to the second (the time a control records)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def operator(by: str | None) -> str:
    """Who acts: ``by`` when given, else the login name of this process."""
    if by and by.strip():
        return by.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown operator"


def upgrade_run(
    instance: dg.DagsterInstance, run_id: str, cluster: str | None = None
) -> dg.DagsterRun:
    """The upgrade run ``run_id`` (of ``cluster`` when given).

    Raises:
        UserError: no such run in the instance, not a run of an ``upgrade_<cluster>`` job, or
            a run of another cluster; one line each.
    """
    run = instance.get_run_by_id(run_id) if run_id.strip() else None
    if run is None:
        raise UserError(
            f"no run {run_id!r} in the Dagster instance at DAGSTER_HOME; copy the run id from "
            "`bm-upgrade run` or the UI"
        )
    if INVENTORY_TAG not in run.tags or not run.job_name.startswith("upgrade_"):
        raise UserError(
            f"run {run_id} is a run of {run.job_name}, not of a bm_upgrade upgrade_<cluster> "
            "job; give the id of the upgrade run"
        )
    if cluster is not None and run.tags.get(CLUSTER_TAG) != cluster:
        raise UserError(
            f"run {run_id} upgrades cluster {run.tags.get(CLUSTER_TAG)}, not {cluster}; use "
            f"that cluster's control job"
        )
    return run


def is_going(run: dg.DagsterRun) -> bool:
    """Whether ``run`` is queued or in progress."""
    return run.status in GOING


def step_state(instance: dg.DagsterInstance, run_id: str, step_key: str) -> StepState:
    """Where step ``step_key`` of run ``run_id`` is, from its last start, success or
    failure event (a step retried in the run counts from its last start)."""
    kinds = {
        dg.DagsterEventType.STEP_START: StepState.RUNNING,
        dg.DagsterEventType.STEP_SUCCESS: StepState.SUCCEEDED,
        dg.DagsterEventType.STEP_FAILURE: StepState.FAILED,
    }
    state = StepState.NOT_STARTED
    records = instance.get_records_for_run(run_id, of_type=set(kinds)).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is not None and event.step_key == step_key:
            state = kinds[event.event_type]
    return state


def has_step(instance: dg.DagsterInstance, run: dg.DagsterRun, step_key: str) -> bool:
    """Whether the job graph ``run`` executes has the step ``step_key``."""
    snapshot_id = run.execution_plan_snapshot_id
    if snapshot_id is None:
        return False
    plan = instance.get_execution_plan_snapshot(snapshot_id)
    return any(step.key == step_key for step in plan.steps)
