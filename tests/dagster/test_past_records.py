"""The window check reads past runs' step records by metadata key, whatever the steps were
called: runs made before the stripe op was split (one ``upgrade_<region>_<stripe>`` step)
count as much as runs of ``upgrade_mirrors_*`` and ``failover_*``."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from bm_upgrade.defs.records import past_records, records_metadata
from bm_upgrade.inventory import parse_inventory
from bm_upgrade.procedure.records import StepRecord
from bm_upgrade.window import ACTIVE, SERVER, outage_spans
from tests.unit.inventories import minimal

JOB = "upgrade_test"


def record(node: str, action: str, started: float, ended: float) -> StepRecord:
    return StepRecord(
        node=node, action=action, found="", did=("done",), started=started, ended=ended
    )


def steps_job(steps: dict[str, list[StepRecord]]) -> dg.JobDefinition:
    """A job named like the cluster's, one node per entry, each storing its records as the
    upgrade's ops do (``records_metadata``)."""

    # Unannotated: Dagster cannot resolve a nested op's string annotation of ``context``.
    @dg.op
    def step(context) -> None:  # type: ignore[no-untyped-def]
        context.add_output_metadata(records_metadata(steps[context.op_handle.name]))

    @dg.job(name=JOB)
    def job() -> None:
        for name in steps:
            step.alias(name)()

    return job


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def test_runs_before_and_after_the_split_both_count(instance: dg.DagsterInstance) -> None:
    inv = parse_inventory(minimal(), "x")
    mirror, active = (s.name for s in inv.regions[0].stripes[0].servers)
    old = {
        "upgrade_east_stripe1": [
            record(mirror, "stop", 0, 10),
            record(mirror, "confirm-standby", 10, 30),
            record(active, "failover-stop", 40, 45),
            record(active, "confirm-standby", 45, 100),
        ]
    }
    new = {
        "upgrade_mirrors_east_stripe1": [
            record(mirror, "stop", 0, 5),
            record(mirror, "confirm-standby", 5, 20),
        ],
        "failover_east_stripe1": [
            record(active, "failover-stop", 30, 35),
            record(active, "confirm-standby", 35, 50),
        ],
    }
    for steps in (old, new):
        assert steps_job(steps).execute_in_process(instance=instance).success
    runs = [list(records) for records in past_records(instance, JOB)]
    assert len(runs) == 2
    newest, oldest = (outage_spans(inv, records) for records in runs)
    assert newest == {SERVER: 20.0, ACTIVE: 20.0}
    assert oldest == {SERVER: 30.0, ACTIVE: 60.0}
