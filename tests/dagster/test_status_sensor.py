"""The sync-status sensor against a real sandbox: its first look records every node, a look
with no change records nothing, a mirror that leaves PASSIVE-STANDBY (a failed run) is
recorded with its alerts once, and its return ends them. With each change it observes the
version matrix and evaluates its checks: both pass on the healthy cluster, both fail while
the cluster is mixed and a stripe has no standby, both pass again after the re-execution."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from bm_upgrade.defs.launch import rerun, run_upgrade
from bm_upgrade.defs.sensors import NO_STANDBY_ENV, build_status_sensor, status_asset_key
from bm_upgrade.defs.version_matrix import matrix_key
from bm_upgrade.procedure.observe import observe_cluster
from bm_upgrade.procedure.watch import WatchMemory, watch_step
from bm_upgrade.remote import HostPool
from bm_upgrade.sandbox import faults
from tests.dagster.asset_checks import latest_check
from tests.e2e.conftest import E2ESandbox, dagster_home_env, e2e_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def dagster_home() -> Iterator[Path]:
    # Alert at the second look without a standby.
    with dagster_home_env("bm-upgrade-sensor-", **{NO_STANDBY_ENV: "0.01"}) as home:
        yield home


@pytest.fixture(scope="module")
def sandbox(dagster_home: Path) -> Iterator[E2ESandbox]:
    with e2e_sandbox("small") as sb:
        yield sb


class Ticks:
    """The sensor, evaluated tick after tick with its cursor, as the daemon does."""

    def __init__(self, sandbox: E2ESandbox) -> None:
        self.inventory = sandbox.inventory
        self.alerts: list[str] = []
        self.sensor = build_status_sensor(
            self.inventory,
            str(sandbox.inventory_path),
            alert=lambda _inv, message: self.alerts.append(message),
        )
        self.cursor: str | None = None
        self.checks: dict[str, bool] = {}
        """The version matrix's checks as the last observation of it judged them."""

    def tick(self) -> tuple[dict[str, Any] | None, str | None]:
        """(the observation's metadata or None, the skip message). The events are stored
        as the daemon stores a sensor's (runless), so the instance shows the checks."""
        with dg.DagsterInstance.get() as instance:
            data = self.sensor.evaluate_tick(
                dg.build_sensor_context(instance=instance, cursor=self.cursor)
            )
            for stored in data.asset_events:
                instance.report_runless_asset_event(stored)
        self.cursor = data.cursor
        events = list(data.asset_events)
        if not events:
            return None, data.skip_message
        event, matrix, *checks = events
        assert isinstance(event, dg.AssetObservation) and isinstance(matrix, dg.AssetObservation)
        assert event.asset_key == status_asset_key(self.inventory)
        assert matrix.asset_key == matrix_key(self.inventory.cluster)
        self.checks = {}
        for check in checks:
            assert isinstance(check, dg.AssetCheckEvaluation)
            assert check.asset_key == matrix.asset_key
            self.checks[check.check_name] = check.passed
        return {k: v.value for k, v in event.metadata.items()}, data.skip_message


@pytest.fixture(scope="module")
def ticks(sandbox: E2ESandbox) -> Ticks:
    return Ticks(sandbox)


def test_first_look_records_every_node_then_nothing(sandbox: E2ESandbox, ticks: Ticks) -> None:
    first, _ = ticks.tick()
    assert first is not None
    state = first["state"]
    assert set(state) == set(sandbox.info["servers"])
    assert sorted(n["state"] for n in state.values()) == ["ACTIVE-COORDINATOR", "PASSIVE-STANDBY"]
    assert {n["version"] for n in state.values()} == {"4.2.0"}
    assert first["alerts"] == "none" and ticks.alerts == []
    assert ticks.checks == {"one_version": True, "standby_per_stripe": True}
    again, skip = ticks.tick()
    assert again is None and skip and "no change" in skip


def test_a_mirror_out_of_standby_alerts_once(sandbox: E2ESandbox, ticks: Ticks) -> None:
    mirror = sandbox.inventory.regions[0].stripes[0].servers[1].name
    with faults.injected(sandbox.directory, "no-sync", mirror):
        failed = run_upgrade(sandbox.inventory_path, overrides={"timeouts": {"sync_s": 3.0}})
        assert not failed.success
        seen, _ = ticks.tick()
        assert seen is not None
        assert any(
            line.startswith(f"- {mirror}: PASSIVE-STANDBY 4.2.0 -> ")
            for line in seen["changes"].splitlines()
        ), seen["changes"]
        assert "mixed versions (4.2.0, 4.2.1)" in seen["alerts"]
        assert ticks.checks == {"one_version": False, "standby_per_stripe": False}
        # A stripe without standby alerts once it has been so for the threshold (0.01 s
        # here), counted from the first look that saw it: the next look.
        assert "no PASSIVE-STANDBY" not in seen["alerts"] and len(ticks.alerts) == 1
        later, _ = ticks.tick()
        assert later is not None and later["changes"] == "none"
        assert "has had no PASSIVE-STANDBY mirror" in later["alerts"]
        assert len(ticks.alerts) == 2
        # The same state at the next look: no new observation, no repeated alert.
        repeat, _ = ticks.tick()
        assert repeat is None and len(ticks.alerts) == 2
        # Mixed versions are expected while a run is going: not an alert then.
        with HostPool(sandbox.inventory.ssh) as pool:
            view = observe_cluster(sandbox.inventory, pool, clients=False)
        going = watch_step(WatchMemory(), view, 0.0, upgrading=True, no_standby_alert_s=3600)
        assert going.raised == []
    again = rerun(failed.run_id)
    assert again.success, again.failure
    back, _ = ticks.tick()
    assert back is not None and back["alerts"] == "none"
    assert ticks.checks == {"one_version": True, "standby_per_stripe": True}
    # The instance keeps each check's latest evaluation, as the asset's checks tab shows it.
    with dg.DagsterInstance.get() as instance:
        for name in ticks.checks:
            latest = latest_check(instance, matrix_key(sandbox.inventory.cluster), name)
            assert latest is not None and latest.passed, latest
    ended = [a for a in ticks.alerts[2:] if a.startswith("ended: ")]
    assert len(ended) == 2, ticks.alerts
    assert json.dumps(back["state"]).count("4.2.1") == 2
