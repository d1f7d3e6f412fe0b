"""A replica region with remainDisconnected: after a disconnect (its master region's orchestrator
stops, or a standby takes over) its replica caches stay INACTIVE, standalone, even once the
master region serves again, until the operator restarts the replica region's orchestrator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Sandbox
from .wan_helpers import Orch, cache_states, orchestrators, wan_sandbox

TOPOLOGY = """\
version: 4.2.0
kits: [4.2.0]
persistent: false
regions:
  - {name: east, wan_role: master, stripes: 1, mirrors: 0, clients: 0,
     orchestrators: {master: 1, standby: 1}}
  - {name: north, wan_role: replica, stripes: 1, mirrors: 0, clients: 0,
     orchestrators: {master: 1}, replica_disconnect_behavior: remainDisconnected}
timing: {start_s: 0.1, election_s: 0.5, sync_s: 0.5}
"""
SYNC_S = 0.5
STANDALONE = "remain disconnected (remainDisconnected); restart this orchestrator"


def inactive(status: dict[str, Any] | None) -> bool:
    return status is not None and {c["state"] for c in status["caches"]} == {"INACTIVE"}


@pytest.fixture(scope="module")
def sandbox(sandbox_tmp: Path) -> Iterator[Sandbox]:
    with wan_sandbox(sandbox_tmp, "sandbox-wan-remain", TOPOLOGY) as sb:
        yield sb


@pytest.fixture(scope="module")
def orchs(sandbox: Sandbox) -> Iterator[dict[str, Orch]]:
    with orchestrators(sandbox, ("east-wan-m1", "east-wan-s1", "north-wan-m1")) as found:
        yield found


def restart(orch: Orch) -> None:
    """What the operator does to end a standalone replica: restart its orchestrator."""
    assert orch.stop()[0] == 0
    orch.wait_state(None)
    orch.start()
    orch.wait_state("running")


def test_the_wan_xml_says_remain_disconnected(orchs: dict[str, Orch]) -> None:
    text = orchs["north-wan-m1"].wan_xml.read_text(encoding="utf-8")
    assert (
        "<wan:replicaDisconnectBehavior>remainDisconnected</wan:replicaDisconnectBehavior>"
    ) in text
    orchs["north-wan-m1"].wait_caches("ACTIVE")


def test_replicas_stay_standalone_after_the_master_region_returns(
    sandbox: Sandbox, orchs: dict[str, Orch]
) -> None:
    east, standby, north = orchs["east-wan-m1"], orchs["east-wan-s1"], orchs["north-wan-m1"]
    assert standby.stop()[0] == 0  # no takeover: the master region goes away entirely
    standby.wait_state(None)
    said = north.log().count(STANDALONE)
    since = time.time()
    assert east.stop()[0] == 0
    north.wait_log(STANDALONE, said + 1)  # the decision: standalone from here on
    north.wait_caches("INACTIVE")
    east.start()
    east.wait_caches("ACTIVE")
    # North journals nothing when it sees the master region serve again: watched for three
    # sync times (a resync would show RESYNCING within one poll, 0.1 s).
    north.holds(inactive, "standalone (caches INACTIVE)", 3 * SYNC_S)
    assert cache_states(sandbox, "north", since) == ["INACTIVE"]

    since = time.time()
    restart(north)
    north.wait_caches("ACTIVE")
    assert cache_states(sandbox, "north", since) == ["RESYNCING", "ACTIVE"]
    standby.start()
    standby.wait_state("standby")


def test_a_standby_takeover_leaves_the_replicas_standalone(
    sandbox: Sandbox, orchs: dict[str, Orch]
) -> None:
    east, standby, north = orchs["east-wan-m1"], orchs["east-wan-s1"], orchs["north-wan-m1"]
    north.wait_caches("ACTIVE")
    said = north.log().count(STANDALONE)
    since = time.time()
    assert east.stop()[0] == 0
    standby.wait_state("running")
    north.wait_log(STANDALONE, said + 1)
    north.holds(inactive, "standalone (caches INACTIVE)", 3 * SYNC_S)
    assert cache_states(sandbox, "north", since) == ["INACTIVE"]
    restart(north)
    north.wait_caches("ACTIVE")

    # The master returns; the standby stands by again: another change of master, so the
    # replicas are standalone once more until the next restart.
    east.start()
    standby.wait_state("standby")
    north.wait_caches("INACTIVE")
    restart(north)
    north.wait_caches("ACTIVE")
