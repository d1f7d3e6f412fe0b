"""The report sensors of runs that end without their report step (defs/report_asset.py),
evaluated tick after tick as the daemon does, on an instance of their own, no sandbox: a
canceled upgrade run whose inventory cannot be read still gets its report (outcome, steps, no
look at the cluster and why), a run another code location owns or that is not an upgrade
run gets none, a run that already has its report gets no second one, and `bm-upgrade report`
refuses, in one sentence, a run it does not know or one that has not ended."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from bm_upgrade.defs.report_asset import (
    build_report_sensors,
    evidence_report,
    report_key,
    stored_report,
)
from bm_upgrade.defs.runclaim import CLUSTER_TAG, INVENTORY_TAG
from bm_upgrade.errors import UserError


@dg.op
def preflight() -> None:
    pass


@dg.job(name="upgrade_lab")
def upgrade_lab() -> None:
    preflight()


@dg.job(name="approve_lab")
def approve_lab() -> None:
    preflight()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def tick(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None
) -> tuple[list[object], str | None]:
    """One evaluation; its asset events stored as the daemon stores them."""
    data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
    for event in data.asset_events:
        instance.report_runless_asset_event(event)
    return list(data.asset_events), data.cursor


def canceled(instance: dg.DagsterInstance, job: dg.JobDefinition, cluster: str) -> str:
    """A run of ``job`` that preflight's config names a target for, then canceled."""
    run = instance.create_run_for_job(
        job,
        run_config={"ops": {"preflight": {"config": {"target_version": "4.2.1"}}}},
        tags={CLUSTER_TAG: cluster, INVENTORY_TAG: "/nowhere/lab.yaml"},
        status=dg.DagsterRunStatus.STARTED,
    )
    instance.report_run_canceled(run, message="terminated from the UI")
    return run.run_id


def test_a_canceled_run_gets_its_report_once_even_without_its_inventory(
    instance: dg.DagsterInstance,
) -> None:
    _, on_cancel = build_report_sensors({"lab": "/nowhere/lab.yaml"})
    _, cursor = tick(on_cancel, instance, None)  # the daemon's first tick: the cursor only
    run_id = canceled(instance, upgrade_lab, "lab")
    canceled(instance, upgrade_lab, "elsewhere")  # another code location's cluster
    canceled(instance, approve_lab, "lab")  # a control job, not an upgrade
    events, cursor = tick(on_cancel, instance, cursor)
    assert [type(e).__name__ for e in events] == ["AssetMaterialization"]
    report = stored_report(instance, "lab", run_id)
    assert report is not None
    markdown = report["markdown"]
    assert markdown.startswith("# Upgrade of cluster lab to 4.2.1: canceled\n")
    assert "The run was canceled (terminated) before it ended." in markdown
    assert "The cluster could not be looked at after the run: " in markdown
    assert "/nowhere/lab.yaml" in markdown
    assert "Preflight did not pass: no plan was made." in markdown
    # Asked again (`bm-upgrade report`), the same report; no second one is made.
    again, made = evidence_report(instance, run_id)
    assert again == report and not made
    later, _ = tick(on_cancel, instance, cursor)
    assert later == []
    assert len(instance.fetch_materializations(report_key("lab"), limit=10).records) == 1


def test_the_report_command_refuses_an_unknown_or_unfinished_run(
    instance: dg.DagsterInstance,
) -> None:
    with pytest.raises(UserError, match=r"^run nope is not in the Dagster instance"):
        evidence_report(instance, "nope")
    going = instance.create_run_for_job(
        upgrade_lab, tags={CLUSTER_TAG: "lab"}, status=dg.DagsterRunStatus.STARTED
    )
    with pytest.raises(UserError, match=f"^run {going.run_id} has not ended \\(STARTED\\)"):
        evidence_report(instance, going.run_id)
    control = instance.create_run_for_job(approve_lab, tags={CLUSTER_TAG: "lab"})
    with pytest.raises(UserError, match="is not an upgrade run"):
        evidence_report(instance, control.run_id)
