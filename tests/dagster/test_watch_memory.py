"""The sync-status sensor's memory (its cursor) and settings, without a cluster."""

from __future__ import annotations

import pytest

from bm_upgrade.defs.sensors import INTERVAL_ENV, build_status_sensor
from bm_upgrade.errors import BmUpgradeError
from bm_upgrade.inventory import Inventory
from bm_upgrade.procedure.watch import WatchMemory
from tests.unit.inventories import minimal


def test_memory_survives_its_cursor() -> None:
    memory = WatchMemory(
        nodes={"s1": {"state": "PASSIVE-STANDBY", "version": "4.2.0"}},
        no_standby_since={"east/stripe2": 1700000000.5},
        alerts={"mixed-versions": "prod runs mixed versions"},
    )
    assert WatchMemory.from_cursor(memory.to_cursor()) == memory


@pytest.mark.parametrize("cursor", [None, "", "not json", "[]", '{"nodes": 3}'])
def test_unreadable_cursor_is_a_first_look(cursor: str | None) -> None:
    assert WatchMemory.from_cursor(cursor) == WatchMemory()


def test_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = Inventory.model_validate(minimal())
    monkeypatch.setenv(INTERVAL_ENV, "15")
    assert build_status_sensor(inventory, "x.yaml").minimum_interval_seconds == 15
    monkeypatch.setenv(INTERVAL_ENV, "soon")
    with pytest.raises(
        BmUpgradeError, match=f"{INTERVAL_ENV}='soon' is not a positive number of seconds"
    ):
        build_status_sensor(inventory, "x.yaml")
