"""Step records as a step's output metadata, and read back from past runs.

The ops that change the cluster attach their records under :data:`RECORDS_KEY`; a later run
reads them back (:func:`past_records`) to predict how long each kind of outage takes
(:mod:`bm_upgrade.defs.window_plan`); the predicted duration reads them too
(:mod:`bm_upgrade.defs.prediction`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg

from bm_upgrade.procedure.records import StepRecord

RECORDS_KEY = "records"
"""Output metadata of the ops that change the cluster (upgrade_mirrors_*, failover_*,
restart_clients_*, wan_cycle): their step records (JSON). Read by key whatever the step is
called, so runs made before a rename of the steps count too (each record names its server,
client or orchestrator and its action, not the step)."""
PAST_RUNS = 5
"""Successful runs whose durations predict the next run's (the longest wins)."""


def records_metadata(records: Sequence[StepRecord]) -> dict[str, dg.MetadataValue]:
    """A step's records as output metadata: a table for the UI, counts, and the records
    themselves for later runs."""
    lines = ["| node | action | did | s |", "|---|---|---|---|"]
    for r in records:
        did = f"skipped: {r.reason}" if r.skipped else ("; ".join(r.did) or "-")
        lines.append(f"| {r.node} | {r.action} | {did.replace('|', '/')} | {r.duration_s:.1f} |")
    return {
        "steps": dg.MetadataValue.md("\n".join(lines)),
        "changed": dg.MetadataValue.int(sum(not r.skipped for r in records)),
        "skipped": dg.MetadataValue.int(sum(r.skipped for r in records)),
        # Read back by later runs: how long past outages took (past_records).
        RECORDS_KEY: dg.MetadataValue.json([r.as_dict() for r in records if not r.skipped]),
    }


def successful_runs(
    instance: dg.DagsterInstance, job_name: str, limit: int = PAST_RUNS
) -> Sequence[dg.RunRecord]:
    """The last ``limit`` successful runs of ``job_name``, newest first (with their start and
    end times): what the window check and the predicted duration learn from."""
    return instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, statuses=[dg.DagsterRunStatus.SUCCESS]),
        limit=limit,
    )


def past_records(
    instance: dg.DagsterInstance, job_name: str, limit: int = PAST_RUNS
) -> Iterator[list[dict[str, Any]]]:
    """The step records of the last ``limit`` successful runs of ``job_name``, run by run."""
    for run in (record.dagster_run for record in successful_runs(instance, job_name, limit)):
        records: list[dict[str, Any]] = []
        events = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.STEP_OUTPUT
        ).records
        for event in events:
            dagster_event = event.event_log_entry.dagster_event
            data = dagster_event.step_output_data if dagster_event else None
            value = data.metadata.get(RECORDS_KEY) if data else None
            if isinstance(value, dg.JsonMetadataValue) and isinstance(value.data, list):
                records.extend(r for r in value.data if isinstance(r, dict))
        yield records
