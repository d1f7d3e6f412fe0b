"""WAN orchestrators of a two-region sandbox (east master, west replica with reconnectResync,
a master and a standby orchestrator in each), driven over SSH with start-wan.sh / stop-wan.sh:
stop-order effects, version mismatch, license refusal. Every test leaves the baseline (masters
running, standbys standing by, west's replica caches ACTIVE) as it found it."""

from __future__ import annotations

import datetime
import http.client
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bm_upgrade.sandbox import kits, license, logins

from .conftest import Sandbox
from .wan_helpers import (
    Orch,
    cache_states,
    journal,
    orchestrator_states,
    orchestrators,
    wait_stopped,
    wan_sandbox,
)

TOPOLOGY = """\
name: wan
version: 4.2.0
kits: [4.2.0, 4.2.1]
persistent: false
regions:
  - {name: east, wan_role: master, stripes: 1, mirrors: 0, clients: 0,
     orchestrators: {master: 1, standby: 1}}
  - {name: west, wan_role: replica, stripes: 1, mirrors: 0, clients: 0,
     orchestrators: {master: 1, standby: 1}}
timing: {start_s: 0.1, election_s: 0.5, sync_s: 0.5}
"""
SYNC_S = 0.5


@pytest.fixture(scope="module")
def sandbox(sandbox_tmp: Path) -> Iterator[Sandbox]:
    with wan_sandbox(sandbox_tmp, "sandbox-wan", TOPOLOGY) as sb:
        yield sb


@pytest.fixture(scope="module")
def orchs(sandbox: Sandbox) -> Iterator[dict[str, Orch]]:
    names = ("east-wan-m1", "east-wan-s1", "west-wan-m1", "west-wan-s1")
    with orchestrators(sandbox, names) as found:
        yield found


@pytest.fixture
def baseline(orchs: dict[str, Orch]) -> Iterator[dict[str, Orch]]:
    """Hand the test a healthy WAN; restore it afterwards (masters first, then standbys)."""
    _restore(orchs)
    yield orchs
    _restore(orchs)


def _restore(orchs: dict[str, Orch]) -> None:
    for name in ("east-wan-m1", "west-wan-m1", "east-wan-s1", "west-wan-s1"):
        orch = orchs[name]
        if orch.status() is None:
            orch.start()
        orch.wait_state("running" if orch.role == "master" else "standby")
    orchs["west-wan-m1"].wait_caches("ACTIVE")


def test_up_runs_masters_with_standbys_and_active_replicas(
    sandbox: Sandbox, baseline: dict[str, Orch]
) -> None:
    east, west = baseline["east-wan-m1"].status(), baseline["west-wan-m1"].status()
    assert east == {
        "name": "east-wan-m1",
        "role": "master",
        "state": "running",
        "version": "4.2.0",
        "region": "east",
        "caches": [{"name": "orders", "state": "ACTIVE"}, {"name": "sessions", "state": "ACTIVE"}],
    }
    assert west is not None and west["region"] == "west"
    assert baseline["east-wan-s1"].status() == {
        "name": "east-wan-s1",
        "role": "standby",
        "state": "standby",
        "version": "4.2.0",
        "region": "east",
        "caches": [],
    }
    # The inventory `up` wrote says the same.
    from bm_upgrade.inventory import load_inventory

    inventory = load_inventory(sandbox.inventory)
    assert inventory.wan_master_region == "east"
    entry = next(o for r in inventory.regions for o in r.orchestrators if o.name == "west-wan-m1")
    assert entry.role == "master" and entry.wan_xml == str(baseline["west-wan-m1"].wan_xml)


def test_bind_accepts_connections_but_serves_no_http_status(baseline: dict[str, Orch]) -> None:
    """A real orchestrator's <bind> is its replication port: a listen check, nothing more."""
    for orch in baseline.values():
        with socket.create_connection((orch.host, orch.port), timeout=2.0):
            pass  # it listens, standbys too
        conn = http.client.HTTPConnection(orch.host, orch.port, timeout=2.0)
        with pytest.raises((http.client.HTTPException, OSError)):
            conn.request("GET", "/wan/status")
            conn.getresponse()
        conn.close()
    assert "wan/status" not in Path(kits.KIT_FILES / "server" / "lib" / "tcwan.py").read_text()


MASTER_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO \[[^]]+\] FullScanMasterSynchronizer - "
    r"Master '(?P<master>[^']+)' (?P<what>initiated sync protocol for replica|successfully "
    r"synchronized replica) '(?P<replica>[^']+)' (?:and|for) cache '(?P<cache>[^']+)'$"
)
REPLICA_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO \[replica-sync-\d+\] "
    r"FullScanReplicaSynchronizer - Replica got SYNC_START request from master '(?P<master>[^']+)' "
    r"for cache '(?P<cache>[^']+)'$"
)


def test_a_resync_is_written_in_the_guides_replication_log_lines(
    baseline: dict[str, Orch],
) -> None:
    """West's master restarts: east's master logs the sync it initiated and completed for each
    cache, west logs each SYNC_START, in the folder of wan.xml's <logs>, as the WAN Replication
    User Guide ("Working with the Replication Logs") shows them."""
    east, west = baseline["east-wan-m1"], baseline["west-wan-m1"]
    east_before, west_before = len(east.replication_lines()), len(west.replication_lines())
    assert west.stop()[0] == 0
    west.wait_state(None)
    baseline["west-wan-s1"].wait_state("running")
    baseline["west-wan-s1"].wait_caches("ACTIVE")
    west.start()
    west.wait_state("running")
    west.wait_caches("ACTIVE")
    master, replica = f"{east.host}:{east.port}", f"{west.host}:{west.port}"
    caches = [
        "__tc_clustered-ehcache|__DEFAULT__|orders",
        "__tc_clustered-ehcache|__DEFAULT__|sessions",
    ]
    deadline = time.monotonic() + 5.0
    while True:
        said = [
            m.groupdict()
            for m in map(MASTER_LINE.match, east.replication_lines()[east_before:])
            if m
        ]
        mine = [s for s in said if s["replica"] == replica]
        if len([s for s in mine if s["what"].startswith("successfully")]) == 2:
            break
        assert time.monotonic() < deadline, mine
        time.sleep(0.05)
    assert [(s["master"], s["what"].split()[0], s["cache"]) for s in mine] == [
        (master, "initiated", caches[0]),
        (master, "initiated", caches[1]),
        (master, "successfully", caches[0]),
        (master, "successfully", caches[1]),
    ]
    starts = [
        m.groupdict() for m in map(REPLICA_LINE.match, west.replication_lines()[west_before:]) if m
    ]
    assert starts == [{"master": master, "cache": c} for c in caches]
    assert west.replication_log.parent == west.wan_xml.parent.parent / "logs" / "wan"
    assert f"<wan:logs>{west.replication_log.parent}</wan:logs>" in west.wan_xml.read_text()


def test_masters_stopped_first_standbys_take_over_and_replicas_resync(
    sandbox: Sandbox, baseline: dict[str, Orch]
) -> None:
    since = time.time()
    code, out = baseline["east-wan-m1"].stop()
    assert (code, out.strip()) == (0, "Stop success. Response code 200")
    baseline["east-wan-m1"].wait_state(None)
    baseline["east-wan-s1"].wait_state("running")
    baseline["east-wan-s1"].wait_caches("ACTIVE")
    baseline["west-wan-m1"].wait_caches("ACTIVE")
    # West lost its master region's orchestrator, then resynced from the standby.
    assert cache_states(sandbox, "west", since) == ["INACTIVE", "RESYNCING", "ACTIVE"]
    assert "Taking over as the serving orchestrator of region east" in baseline["east-wan-s1"].log()
    states = orchestrator_states(sandbox, since)
    assert states.index(("east-wan-m1", "stopped")) < states.index(("east-wan-s1", "running"))

    # West's own master stops: its standby takes over and its caches resync again.
    since = time.time()
    assert baseline["west-wan-m1"].stop()[0] == 0
    baseline["west-wan-s1"].wait_state("running")
    baseline["west-wan-s1"].wait_caches("ACTIVE")
    assert cache_states(sandbox, "west", since) == ["INACTIVE", "RESYNCING", "ACTIVE"]
    assert ("west-wan-s1", "running") in orchestrator_states(sandbox, since)


def test_standbys_stopped_first_no_takeover_then_master_region_first(
    sandbox: Sandbox, baseline: dict[str, Orch]
) -> None:
    since = time.time()
    for name in ("east-wan-s1", "west-wan-s1", "east-wan-m1", "west-wan-m1"):
        assert baseline[name].stop()[0] == 0
        baseline[name].wait_state(None)
    # Each journaled "stopped" as its last act: no takeover or resync can come after.
    wait_stopped(sandbox, ("east-wan-s1", "west-wan-s1", "east-wan-m1", "west-wan-m1"), since)
    states = orchestrator_states(sandbox, since)
    assert not [s for s in states if s[1] == "running"]
    # West's replicas went INACTIVE once, when east's master left; nobody resynced them.
    assert cache_states(sandbox, "west", since) == ["INACTIVE"]

    # Start: masters (the master region first), then standbys. East serves at once; west
    # then resyncs.
    since = time.time()
    baseline["east-wan-m1"].start()
    baseline["east-wan-m1"].wait_caches("ACTIVE")
    baseline["west-wan-m1"].start()
    resync = baseline["west-wan-m1"].wait_caches("ACTIVE")
    assert resync >= SYNC_S
    assert cache_states(sandbox, "west", since) == ["RESYNCING", "ACTIVE"]
    for name in ("east-wan-s1", "west-wan-s1"):
        baseline[name].start()
        baseline[name].wait_state("standby")


def test_a_killed_master_is_taken_over_like_a_stopped_one(
    sandbox: Sandbox, baseline: dict[str, Orch]
) -> None:
    from bm_upgrade.cli import main

    since = time.time()
    assert main(["sandbox", "fault", "--dir", str(sandbox.directory), "kill", "east-wan-m1"]) == 0
    baseline["east-wan-s1"].wait_state("running")
    baseline["west-wan-m1"].wait_caches("ACTIVE")
    assert ("east-wan-m1", "stopped") in orchestrator_states(sandbox, since)
    assert cache_states(sandbox, "west", since)[-2:] == ["RESYNCING", "ACTIVE"]
    # A master that comes back takes over again; its standby stands by.
    baseline["east-wan-m1"].start()
    baseline["east-wan-s1"].wait_state("standby")

    # Killing the replica region's serving orchestrator: its caches are journaled INACTIVE
    # for it, then its standby takes over and resyncs them.
    baseline["west-wan-m1"].wait_caches("ACTIVE")
    since = time.time()
    assert main(["sandbox", "fault", "--dir", str(sandbox.directory), "kill", "west-wan-m1"]) == 0
    baseline["west-wan-s1"].wait_state("running")
    baseline["west-wan-s1"].wait_caches("ACTIVE")
    assert cache_states(sandbox, "west", since) == ["INACTIVE", "RESYNCING", "ACTIVE"]


def _kit(sandbox: Sandbox, orch: Orch, version: str, name: str) -> Path:
    """Unpack the ``version`` kit beside the orchestrator's (with the sandbox's license)."""
    root = orch.kit.parent / name
    if not root.exists():
        kits.unpack_kit(sandbox.directory / "kits" / f"bigmemory-max-{version}.tar.gz", root)
        shutil.copyfile(
            sandbox.directory / "terracotta-license.key", root / license.LICENSE_FILE_NAME
        )
        logins.give_to_user(root, sandbox.user)
    return root


def test_orchestrators_of_different_versions_do_not_connect(
    sandbox: Sandbox, baseline: dict[str, Orch]
) -> None:
    west, east = baseline["west-wan-m1"], baseline["east-wan-m1"]
    for name in ("west-wan-s1", "west-wan-m1"):  # standby first: no takeover
        assert baseline[name].stop()[0] == 0
        baseline[name].wait_state(None)
    refusal = (
        "Refusing to connect to orchestrator east-wan-m1 (version 4.2.0): all "
        "orchestrators must run the same version (this one runs 4.2.1)"
    )
    refused_before = west.log().count(refusal)
    since = time.time()
    west.start(_kit(sandbox, west, "4.2.1", "bigmemory-max-4.2.1"))
    # The refusal is logged at the poll that saw east's master: the point where a resync
    # would have started.
    west.wait_log(refusal, refused_before + 1)
    west.wait_caches("INACTIVE")
    status = west.status()
    assert status is not None and status["version"] == "4.2.1"
    assert {c["state"] for c in status["caches"]} == {"INACTIVE"}
    assert cache_states(sandbox, "west", since) == ["INACTIVE"]

    # The master region on the same version: they connect, and west resyncs.
    for name in ("east-wan-s1", "east-wan-m1"):
        assert baseline[name].stop()[0] == 0
        baseline[name].wait_state(None)
    east.start(_kit(sandbox, east, "4.2.1", "bigmemory-max-4.2.1"))
    east.wait_state("running")
    west.wait_caches("ACTIVE")
    for orch in (west, east):  # back to 4.2.0 for the next tests
        assert orch.stop()[0] == 0
        orch.wait_state(None)


def test_an_orchestrator_refuses_to_start_without_a_wan_license(
    sandbox: Sandbox, baseline: dict[str, Orch]
) -> None:
    standby = baseline["east-wan-s1"]
    assert standby.stop()[0] == 0
    standby.wait_state(None)
    kit = _kit(sandbox, standby, "4.2.0", "bigmemory-max-nowan")
    key = kit / license.LICENSE_FILE_NAME
    text = key.read_text(encoding="utf-8")
    try:
        license.write_license(
            key,
            expiry=datetime.date.today() + datetime.timedelta(days=365),
            capabilities=("ehcache", "ehcache offheap", "TMC"),
        )
        code, out = standby.start_foreground(kit)
        assert code == 2, out
        assert f"FATAL - License key {key} does not carry the WAN capability" in out
        events = [
            e
            for e in journal(sandbox)
            if e["event"] == "orchestrator_state" and e["state"] == "failed"
        ]
        assert events and "WAN capability" in events[-1]["reason"]
        key.unlink()
        code, out = standby.start_foreground(kit)
        assert code == 2 and "License key not found" in out
    finally:
        key.write_text(text, encoding="utf-8")
    assert standby.status() is None


def _fault(sandbox: Sandbox, *args: str) -> int:
    from bm_upgrade.cli import main

    return main(["sandbox", "fault", "--dir", str(sandbox.directory), *args])


def test_orchestrator_faults_crash_on_start_expired_license_slow_stop(
    sandbox: Sandbox, baseline: dict[str, Orch], capsys: pytest.CaptureFixture[str]
) -> None:
    standby = baseline["east-wan-s1"]
    assert standby.stop()[0] == 0
    standby.wait_state(None)
    assert _fault(sandbox, "crash-on-start", standby.name) == 0
    code, out = standby.start_foreground(standby.kit)
    assert code == 2 and "crashed at start (sandbox fault crash-on-start)" in out
    assert _fault(sandbox, "--clear", standby.name) == 0

    assert _fault(sandbox, "expired-license", standby.name) == 0
    code, out = standby.start_foreground(standby.kit)
    assert code == 2 and "Your Terracotta license has expired on 2015-01-01" in out
    assert _fault(sandbox, "--clear", standby.name) == 0
    standby.start()
    standby.wait_state("standby")

    assert _fault(sandbox, "slow-stop", standby.name, "--seconds", "1") == 0
    start = time.monotonic()
    assert standby.stop()[0] == 0
    assert (standby.status() or {}).get("state") == "standby"  # still draining
    standby.wait_state(None)
    assert time.monotonic() - start >= 1.0
    assert _fault(sandbox, "--clear") == 0
    kinds = [(e["kind"], e["action"]) for e in journal(sandbox) if e["event"] == "fault"]
    for kind in ("crash-on-start", "expired-license", "slow-stop"):
        assert (kind, "inject") in kinds and (kind, "clear") in kinds
    capsys.readouterr()
