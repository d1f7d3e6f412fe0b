"""Notifications to a real local HTTP receiver: the run-failure message (cluster, run id,
failed step, one-sentence reason, link), the optional success message, status alerts, and a
webhook URL (with its token) that never shows in logs or messages."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import dagster as dg
import pytest

from bm_upgrade.defs import notify
from bm_upgrade.inventory import Inventory
from tests.dagster.webhook import Receiver, webhook_receiver
from tests.unit.inventories import minimal

TOKEN = "s3cret-token"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with webhook_receiver(f"/hook?token={TOKEN}") as box:
        monkeypatch.setenv(notify.WEBHOOK_ENV, box.url)
        monkeypatch.setenv(notify.UI_URL_ENV, "http://ui.example:3000/")
        yield box


@dg.op
def stripe_step() -> None:
    raise dg.Failure(
        description="upgrade_mirrors_east_stripe1: s2 did not sync within 3 s; rerun once it syncs"
    )


@dg.job(name="upgrade_small", tags={"cluster": "small"})
def failing() -> None:
    stripe_step()


@dg.op
def fine() -> None:
    pass


@dg.job(name="upgrade_ok", tags={"cluster": "ok"})
def succeeding() -> None:
    fine()


def status_context(
    instance: dg.DagsterInstance, job: dg.JobDefinition, event_type: dg.DagsterEventType
) -> dg.RunStatusSensorContext:
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    records = instance.get_records_for_run(result.run_id, of_type=event_type).records
    event = records[0].event_log_entry.dagster_event
    assert event is not None
    return dg.build_run_status_sensor_context(
        sensor_name="s", dagster_event=event, dagster_instance=instance, dagster_run=run
    )


def test_failed_run_posts_cluster_step_reason_and_link(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with dg.instance_for_test() as instance:
        context = status_context(instance, failing, dg.DagsterEventType.RUN_FAILURE)
        notify.notify_run_failure(context.for_run_failure())
        run_id = context.dagster_run.run_id
    assert receiver.bodies == [
        {
            "event": "run_failure",
            "cluster": "small",
            "run_id": run_id,
            "job": "upgrade_small",
            "failed_step": "stripe_step",
            "reason": (
                "upgrade_mirrors_east_stripe1: s2 did not sync within 3 s; rerun once it syncs"
            ),
            "link": f"http://ui.example:3000/runs/{run_id}",
        }
    ]
    assert TOKEN not in caplog.text


def test_success_is_posted_only_when_asked(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dg.instance_for_test() as instance:
        context = status_context(instance, succeeding, dg.DagsterEventType.RUN_SUCCESS)
        notify.notify_run_success(context)
        assert receiver.bodies == []
        monkeypatch.setenv(notify.SUCCESS_ENV, "1")
        notify.notify_run_success(context)
    assert [(b["event"], b["cluster"], b["failed_step"]) for b in receiver.bodies] == [
        ("run_success", "ok", None)
    ]


def test_alert_and_refusals_never_show_the_url(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = Inventory.model_validate(minimal())
    notify.post_alert(inventory, "stripe east/stripe1 has had no PASSIVE-STANDBY mirror")
    assert receiver.bodies[0]["event"] == "status_alert"
    assert receiver.bodies[0]["link"].endswith(
        f"/assets/bm_upgrade/{inventory.cluster}/sync_status"
    )
    receiver.status = 500
    refused = notify.post({"event": "x"})
    assert refused == "webhook refused the message (HTTP 500)"
    monkeypatch.setenv(notify.WEBHOOK_ENV, f"http://127.0.0.1:9/hook?token={TOKEN}")
    unreachable = notify.post({"event": "x"})
    assert unreachable.startswith("webhook not reachable") and TOKEN not in unreachable
    monkeypatch.delenv(notify.WEBHOOK_ENV)
    assert notify.post({"event": "x"}) == f"not posted: {notify.WEBHOOK_ENV} is not set"
