"""`bm-upgrade rerun RUN_ID`: re-execute a failed or canceled run from its failed steps, with
the parent run's config, as the UI's "Re-execute from failure" does; a run whose worker was
killed is marked failed first."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from bm_upgrade.defs.config import checked_config
from bm_upgrade.defs.execution import (
    RunOutcome,
    console_config,
    execute_here,
    one_run_per_cluster,
    read_inventory_sha256,
    reconstructable,
)
from bm_upgrade.defs.instance import instance
from bm_upgrade.defs.jobs import job_name
from bm_upgrade.defs.launcher import worker_state
from bm_upgrade.defs.progress import RunWatch
from bm_upgrade.defs.runclaim import (
    CLUSTER_TAG,
    INVENTORY_CHANGE_TAG,
    INVENTORY_SHA_TAG,
    INVENTORY_TAG,
)
from bm_upgrade.errors import UserError
from bm_upgrade.inventory import load_inventory
from bm_upgrade.progress_terminal import ProgressDisplay
from bm_upgrade.runinputs import check_run_inputs


def _same_inventory(parent: dg.DagsterRun, path: str, now: str, accept_change: bool) -> bool:
    """Whether the inventory is the one ``parent`` ran on (True when it did not record it).

    Raises:
        UserError: it changed and the operator did not accept the change.
    """
    before = parent.tags.get(INVENTORY_SHA_TAG)
    if before is None or before == now:
        return True
    if not accept_change:
        raise UserError(
            f"{path} changed since run {parent.run_id} (sha256 {before[:12]}... then, "
            f"{now[:12]}... now), so that run's plan may no longer hold: start a new run with "
            f"`bm-upgrade run {path}`, or re-execute on the changed file with "
            f"`bm-upgrade rerun {parent.run_id} --inventory-changed`"
        )
    return False


def _target_of(run: dg.DagsterRun, path: str) -> str | None:
    """The target version in a run's config (None: it has none, the job's default then).

    Raises:
        UserError: its config is not run config of this version of bm_upgrade (naming the
            key), so Dagster would refuse to re-execute it.
    """
    ops = run.run_config.get("ops")
    preflight = ops.get("preflight") if isinstance(ops, dict) else None
    config = preflight.get("config") if isinstance(preflight, dict) else None
    if not isinstance(config, dict):
        return None
    fix = f"run {run.run_id} cannot be re-executed; start a new run with `bm-upgrade run {path}`"
    return checked_config(config, fix=fix).target_version


def _worker_gone(inst: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """Why an unfinished ``run`` can be marked failed (its worker is gone), or None when it
    ended already.

    Raises:
        UserError: its worker still runs, or this host cannot tell.
    """
    if run.is_finished:
        return None
    state = worker_state(inst, run)
    status = run.status.value
    if state.gone is None:
        raise UserError(
            f"run {run.run_id} is {status} and {state.text}: wait for it to end "
            "or cancel it in the UI, then rerun"
        )
    if not state.gone:
        raise UserError(
            f"run {run.run_id} is still {status} ({state.text}): wait for it to "
            "end (Ctrl-C on its `bm-upgrade run` stops it safely), then rerun"
        )
    return (
        f"run {run.run_id} was left {status} but {state.text} (killed?): marked it "
        "FAILURE; re-executing it from its unfinished steps"
    )


def rerun(
    run_id: str,
    on_run_id: Callable[[str], None] | None = None,
    *,
    inventory_changed: bool = False,
    on_notice: Callable[[str], None] | None = None,
    display: ProgressDisplay | None = None,
    verbose: bool = True,
) -> RunOutcome:
    """Re-execute a failed or canceled run from its failed steps, with the parent run's config.

    A run left STARTED by a worker that is gone (a `bm-upgrade run` killed with -9, no daemon
    to notice) is marked FAILURE first, and ``on_notice`` is told so.

    Args:
        inventory_changed: go on although the inventory file changed since that run.
        display: where the run's progress shows, step by step (none: nowhere).
        verbose: Dagster's console shows the steps' log lines (whatever the parent run's
            config said).

    Raises:
        UserError: no such run, or it succeeded or is still going, or it is not a bm_upgrade
            run; the inventory changed since (without ``inventory_changed``); the target or
            the license file no longer fit.
    """
    inst = instance()
    parent = inst.get_run_by_id(run_id)
    if parent is None:
        raise UserError(
            f"no run {run_id} in the Dagster instance at DAGSTER_HOME; copy the "
            "run id from `bm-upgrade run` or the UI"
        )
    path = parent.tags.get(INVENTORY_TAG)
    if not path:
        raise UserError(
            f"run {run_id} ({parent.job_name}) was not started by bm-upgrade; "
            "re-execute it from the UI instead"
        )
    gone = _worker_gone(inst, parent)
    if gone is None and parent.status not in (
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.CANCELED,
    ):
        raise UserError(
            f"run {run_id} ended {parent.status.value}, not FAILURE or CANCELED: "
            "only a failed or canceled run is re-executed from failure; start a "
            "new run with `bm-upgrade run`"
        )
    inventory = load_inventory(path)
    if parent.job_name != job_name(inventory):
        raise UserError(
            f"run {run_id} is of job {parent.job_name}, but {path} now describes "
            f"cluster {inventory.cluster}; restore the inventory file"
        )
    now = read_inventory_sha256(path)
    same = _same_inventory(parent, path, now, inventory_changed)
    check_run_inputs(inventory, path, _target_of(parent, path) or inventory.target_version)
    if gone is not None:
        inst.report_run_failed(parent, gone)
        if on_notice:
            on_notice(gone)
    one_run_per_cluster(inst, inventory.cluster)
    options = dg.ReexecutionOptions.from_failure(run_id, inst)
    tags = {k: v for k, v in parent.tags.items() if k in (CLUSTER_TAG, INVENTORY_TAG)}
    tags[INVENTORY_SHA_TAG] = now
    if not same:
        tags[INVENTORY_CHANGE_TAG] = now  # the run's own check lets it go on (runclaim)
    run_config = {**parent.run_config, **console_config(verbose)}
    return execute_here(
        reconstructable(path),
        inst,
        run_config,
        tags,
        on_run_id=on_run_id,
        reexecution=options,
        watch=RunWatch.of(display, inst, inventory, run_config) if display else None,
    )
