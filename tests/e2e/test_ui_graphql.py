"""The UI path: dagster-webserver and dagster-daemon on loopback with their own DAGSTER_HOME
and a sandbox inventory; runs launched and re-executed through GraphQL (the UI's own API),
started by the daemon from the run queue; the run-failure webhook posted by the daemon.

Every process is started in its own session and stopped by its PID's process group.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bm_upgrade.defs.config import UpgradeConfig
from bm_upgrade.defs.notify import WEBHOOK_ENV
from bm_upgrade.sandbox import faults
from tests.dagster import processes
from tests.dagster.webhook import Receiver, webhook_receiver
from tests.e2e.conftest import E2ESandbox
from tests.e2e.graphql import GraphQL
from tests.e2e.ui_servers import BEFORE_STOPS, FROM_FIRST_STOP, ui_servers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OBSERVATIONS = """
query Observations($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset { assetObservations(limit: 100) {
      metadataEntries { label ... on MarkdownMetadataEntry { mdStr } } } }
  }
}"""


@dataclass
class Ui:
    """The webserver's GraphQL API (tests/e2e/graphql.py), with the module's sandbox and
    webhook receiver."""

    url: str
    location: str
    sandbox: E2ESandbox
    receiver: Receiver

    @property
    def api(self) -> GraphQL:
        return GraphQL(self.url, self.location)

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.api.query(query, variables)

    def launch(self, config: dict[str, Any]) -> str:
        return self.api.launch("upgrade_small", config)

    def reexecute_from_failure(self, parent: str) -> str:
        return self.api.reexecute_from_failure(parent)

    def wait(self, run_id: str, timeout: float = 240) -> dict[str, Any]:
        return self.api.wait(run_id, timeout)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with webhook_receiver(status=204) as box:
        yield box


@pytest.fixture(scope="module")
def ui(receiver: Receiver) -> Iterator[Ui]:
    with ui_servers("small", {WEBHOOK_ENV: receiver.url}) as servers:
        yield Ui(servers.url, servers.location, servers.sandbox, receiver)


def executed(run: dict[str, Any]) -> set[str]:
    return {s["stepKey"] for s in run["stepStats"] if s["status"] == "SUCCESS"}


def test_upgrade_launched_through_graphql_succeeds(ui: Ui) -> None:
    config = UpgradeConfig.defaults_for(ui.sandbox.inventory)  # what the launchpad shows
    run = ui.wait(ui.launch(config))
    assert run["status"] == "SUCCESS", run
    assert executed(run) == BEFORE_STOPS | FROM_FIRST_STOP


def test_failed_run_reexecuted_from_failure_through_graphql(ui: Ui) -> None:
    config = {**UpgradeConfig.defaults_for(ui.sandbox.inventory), "target_version": "4.2.0"}
    with faults.injected(ui.sandbox.directory, "crash-on-start", "4.2.0"):
        failed_id = ui.launch(config)
        failed = ui.wait(failed_id)
    assert failed["status"] == "FAILURE"
    failed_steps = {s["stepKey"] for s in failed["stepStats"] if s["status"] == "FAILURE"}
    assert failed_steps == {"upgrade_mirrors_east_stripe1"}
    assert executed(failed) == BEFORE_STOPS
    again = ui.wait(ui.reexecute_from_failure(failed_id))
    assert again["status"] == "SUCCESS", again
    # Only the failed step and what follows it ran again.
    assert executed(again) == FROM_FIRST_STOP
    # The daemon's run-failure sensor told the webhook, with a link into this UI.
    processes.wait_until(
        lambda: any(b.get("run_id") == failed_id for b in ui.receiver.bodies),
        60,
        "the run-failure message at the webhook",
    )
    message = next(b for b in ui.receiver.bodies if b.get("run_id") == failed_id)
    assert message["cluster"] == ui.sandbox.inventory.cluster
    assert message["failed_step"] == "upgrade_mirrors_east_stripe1" and message["reason"]
    assert message["link"] == f"{ui.url}/runs/{failed_id}"
    assert os.environ.get(WEBHOOK_ENV) is None  # only the servers' environment had it


def test_sync_status_history_shows_in_the_ui(ui: Ui) -> None:
    """The daemon ran the sync-status sensor all along: its observations (one per change)
    show the upgrades' role and version changes."""
    key = {"path": ["bm_upgrade", ui.sandbox.inventory.cluster, "sync_status"]}

    def changes() -> list[str]:
        asset = ui.graphql(OBSERVATIONS, {"key": key})["assetOrError"]
        if asset["__typename"] != "Asset":
            return []
        return [
            e["mdStr"]
            for o in asset["assetObservations"]
            for e in o["metadataEntries"]
            if e["label"] == "changes"
        ]

    processes.wait_until(lambda: len(changes()) >= 2, 60, "sync-status observations")
    text = "\n".join(changes())
    assert "not seen -> ACTIVE-COORDINATOR 4.2.0" in text  # the first look
    # Between the upgrade and the rollback (which spends seconds on preflight and the kit
    # before it touches a server) the servers ran 4.2.1 for several looks.
    assert " 4.2.0 -> " in text and " 4.2.1" in text
