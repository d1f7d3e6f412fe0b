"""One run per cluster, decided inside the run itself, and the inventory a run was made from.

The claim is create-then-check: a run exists in the instance (with its ``cluster`` tag) before
any of its steps starts, and the cluster resource's setup, which Dagster runs before any op in
every process of a run (also on re-execution, and for runs launched from the UI, a schedule or
a sensor), looks at the cluster's runs that are queued or going: when one of them was created
before this run (a lower storage id: unique and increasing, so no two runs can both be first)
this run stops there, touching nothing. Two launches at the same moment therefore both create
their runs, and exactly one (the first created) goes on, whatever launched them; no read-then-
launch window is left. A run refused this way ends FAILURE, so it never blocks a later run.

The check is within one Dagster instance (one DAGSTER_HOME or one PostgreSQL database): every
launcher of a cluster's runs (UI, daemon, `bm-upgrade run`) must use the same instance.

The inventory's sha256 goes in every run's tags (the job's tags, and `bm-upgrade run`'s);
a re-execution whose parent ran on a different inventory file is refused unless the operator
accepted the change (`bm-upgrade rerun --inventory-changed`, which records the accepted hash in
:data:`INVENTORY_CHANGE_TAG`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg

CLUSTER_TAG = "cluster"
INVENTORY_TAG = "bm_upgrade/inventory"
INVENTORY_SHA_TAG = "bm_upgrade/inventory_sha256"
INVENTORY_CHANGE_TAG = "bm_upgrade/inventory_change_accepted"
"""Set to the inventory's new sha256 when the operator accepted re-executing on a changed file."""

GOING = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
"""Statuses of a run that is waiting or going (the one-run-per-cluster rule counts these)."""


def going_records(instance: dg.DagsterInstance, cluster: str) -> list[dg.RunRecord]:
    """The cluster's queued or going runs, the first created first."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={CLUSTER_TAG: cluster}, statuses=GOING)
    )
    return sorted(records, key=lambda record: record.storage_id)


def inventory_sha256(path: str | Path) -> str:
    """The sha256 of the inventory file's bytes (hex).

    Raises:
        OSError: the file cannot be read.
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def claim_cluster(instance: dg.DagsterInstance, run: dg.DagsterRun, cluster: str) -> None:
    """Go on only if no queued or going run of ``cluster`` was created before ``run``.

    Raises:
        dg.Failure: another run holds the cluster, or ``run`` lacks the cluster tag the
            rule relies on; one sentence naming that run and what to do.
    """
    if run.tags.get(CLUSTER_TAG) != cluster:
        raise dg.Failure(
            description=(
                f"run {run.run_id} carries tag {CLUSTER_TAG}={run.tags.get(CLUSTER_TAG)!r}, not "
                f"{cluster!r}, so one run per cluster cannot be enforced; this run stops here "
                "before touching anything: launch it again with the job's own tags"
            )
        )
    mine = instance.get_run_record_by_id(run.run_id)
    if mine is None:
        return  # not stored in this instance (an ephemeral one): nothing else can see it
    for record in going_records(instance, cluster):
        other = record.dagster_run
        if record.storage_id < mine.storage_id and other.run_id != run.run_id:
            raise dg.Failure(
                description=(
                    f"run {other.run_id} of cluster {cluster} ({other.status.value}) was "
                    "created before this one and has not ended; one run per cluster at a time, "
                    "so this run stops here before touching anything: wait for that run to end "
                    "(or cancel it in the UI), then start again"
                )
            )


def check_inventory_unchanged(instance: dg.DagsterInstance, run: dg.DagsterRun, path: str) -> None:
    """Refuse a run whose inventory file changed after it was launched, or, for a
    re-execution, since its parent run, unless the change was accepted.

    Raises:
        dg.Failure: one sentence naming the file, the hashes and what to do.
    """
    try:
        now = inventory_sha256(path)
    except OSError as exc:
        raise dg.Failure(
            description=f"inventory {path} cannot be read ({exc}); this step "
            "stops before touching anything: restore it and start "
            "again"
        ) from exc
    if run.tags.get(INVENTORY_CHANGE_TAG) == now:
        return
    launched = run.tags.get(INVENTORY_SHA_TAG)
    parent = instance.get_run_by_id(run.parent_run_id) if run.parent_run_id else None
    before = parent.tags.get(INVENTORY_SHA_TAG) if parent else None
    if parent is not None and before and before != now:
        raise dg.Failure(
            description=(
                f"inventory {path} changed since run {parent.run_id} (sha256 {before[:12]}... "
                f"then, {now[:12]}... now), so that run's plan may no longer hold; this run "
                "stops here before touching anything: start a new run, or re-execute on the "
                f"changed file with `bm-upgrade rerun {parent.run_id} --inventory-changed` "
                f"(from the UI: add the tag {INVENTORY_CHANGE_TAG}={now})"
            )
        )
    if launched and launched != now:
        raise dg.Failure(
            description=(
                f"inventory {path} changed after this run was launched (sha256 {launched[:12]}... "
                f"then, {now[:12]}... now); this step stops before touching anything: reload "
                "the code location if you "
                "launched from the UI, and start the run again"
            )
        )
