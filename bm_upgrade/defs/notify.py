"""Notifications: a short JSON message to a webhook when an upgrade run fails (and, if asked,
when one succeeds), and for each alert of the sync-status sensors.

The webhook's URL comes from the code location's environment (``BM_UPGRADE_WEBHOOK_URL``),
never from run config, logs or metadata: it often carries a token. Without it nothing is
posted. ``BM_UPGRADE_UI_URL`` (default ``http://127.0.0.1:3000``) is where the message's link
to the run points; ``BM_UPGRADE_NOTIFY_SUCCESS=1`` adds a message per successful run.

Message of a run (one JSON object)::

    {"event": "run_failure", "cluster": "prod_eu", "run_id": "...", "job": "upgrade_prod_eu",
     "failed_step": "upgrade_mirrors_frankfurt_stripe1", "reason": "<one sentence>",
     "link": "http://127.0.0.1:3000/runs/<run id>"}
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import dagster as dg

from bm_upgrade.defs.jobs import CLUSTER_TAG
from bm_upgrade.defs.sensors import status_asset_key
from bm_upgrade.defs.stopping import failure_reason
from bm_upgrade.inventory import Inventory
from bm_upgrade.redact import redact_text, redact_urls

WEBHOOK_ENV = "BM_UPGRADE_WEBHOOK_URL"
UI_URL_ENV = "BM_UPGRADE_UI_URL"
SUCCESS_ENV = "BM_UPGRADE_NOTIFY_SUCCESS"
DEFAULT_UI_URL = "http://127.0.0.1:3000"
TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


def ui_url() -> str:
    return (os.environ.get(UI_URL_ENV) or DEFAULT_UI_URL).rstrip("/")


def post(payload: dict[str, Any]) -> str:
    """POST ``payload`` to the webhook; returns what happened, in words without the URL.

    Never raises: a notification that cannot be sent is logged (a warning, without the URL,
    which often is a token) and must not fail the sensor or the run that sent it.
    """
    url = os.environ.get(WEBHOOK_ENV)
    if not url:
        return f"not posted: {WEBHOOK_ENV} is not set"
    if not url.startswith(("http://", "https://")):
        return _not_sent(f"not posted: {WEBHOOK_ENV} is not an http(s) URL")
    try:
        request = urllib.request.Request(  # noqa: S310 (scheme checked just above)
            url,
            data=json.dumps(payload).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            return f"posted (HTTP {response.status})"
    except urllib.error.HTTPError as exc:
        return _not_sent(f"webhook refused the message (HTTP {exc.code})")
    except Exception as exc:  # anything urllib and http.client raise: never out of here
        # Their errors may quote the URL or a piece of it (http.client.InvalidURL, a
        # ValueError of Request): the reason is shown with every part of the URL taken out.
        reason = redact_text(str(getattr(exc, "reason", None) or exc), url, whole=True)
        return _not_sent(
            f"webhook not reachable ({type(exc).__name__}: {reason}); check {WEBHOOK_ENV}"
        )


def _not_sent(outcome: str) -> str:
    log.warning("notification %s", outcome)
    return outcome


def failure_of(events: Sequence[dg.DagsterEvent]) -> tuple[str | None, str]:
    """The first failed step and its one-sentence reason, without Dagster's wrapping; with no
    failed step, why the run's resources could not be set up (the cluster's claim, the
    inventory's check), else that the run failed before any step ran."""
    for event in events:
        if event.is_step_failure and event.step_failure_data:
            return event.step_key, failure_reason(event)
    return None, setup_failure(events) or "the run failed before any step ran"


def setup_failure(events: Sequence[dg.DagsterEvent]) -> str | None:
    """Why the run's resources could not be set up, without Dagster's wrapping (None: they
    were). With the in-process executor this fails the whole run before any step."""
    for event in events:
        data = event.event_specific_data
        error = getattr(data, "error", None)
        if event.event_type_value == "RESOURCE_INIT_FAILURE" and error is not None:
            while error.cause is not None:
                error = error.cause
            message: str = error.message.strip()
            # "module.Class: text" as traceback prints it: the text alone
            _, sep, text = message.partition(f"{error.cls_name}: ")
            return text if sep else message
    return None


def run_message(
    event: str, run: dg.DagsterRun, step: str | None, reason: str | None
) -> dict[str, Any]:
    return {
        "event": event,
        "cluster": run.tags.get(CLUSTER_TAG),
        "run_id": run.run_id,
        "job": run.job_name,
        "failed_step": step,
        "reason": redact_urls(reason) if reason else reason,
        "link": f"{ui_url()}/runs/{run.run_id}",
    }


@dg.run_failure_sensor(
    name="notify_run_failure",
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Posts a JSON message per failed upgrade run to the "
    f"webhook in {WEBHOOK_ENV} (nothing when it is unset).",
)
def notify_run_failure(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    if CLUSTER_TAG not in run.tags:
        return  # not an upgrade run
    step, reason = failure_of(context.get_step_failure_events())
    outcome = post(run_message("run_failure", run, step, reason))
    context.log.info("run %s failed at %s: %s", run.run_id, step, outcome)


@dg.run_status_sensor(
    name="notify_run_success",
    run_status=dg.DagsterRunStatus.SUCCESS,
    minimum_interval_seconds=5,
    description=f"With {SUCCESS_ENV}=1: a JSON message per successful upgrade run to the webhook.",
)
def notify_run_success(context: dg.RunStatusSensorContext) -> None:
    run = context.dagster_run
    if CLUSTER_TAG not in run.tags or os.environ.get(SUCCESS_ENV) != "1":
        return
    outcome = post(run_message("run_success", run, None, None))
    context.log.info("run %s succeeded: %s", run.run_id, outcome)


def post_alert(inventory: Inventory, message: str) -> None:
    """An alert of a sync-status sensor, to the webhook (what happened goes to the log)."""
    key = status_asset_key(inventory).to_user_string()
    outcome = post(
        {
            "event": "status_alert",
            "cluster": inventory.cluster,
            "alert": message,
            "link": f"{ui_url()}/assets/{key}",
        }
    )
    log.info("alert for %s: %s", inventory.cluster, outcome)
