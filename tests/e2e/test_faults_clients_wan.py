"""Fault matrix rows for clients and WAN orchestrators (issue 14), each through the Dagster
job against the shipped ``wan`` sandbox (two regions of one stripe, a client and a master +
standby orchestrator each), clients writing throughout.

The module shares one sandbox; its tests run in file order and each goes on from where the
last one left the cluster (the first run upgrades the servers to 4.2.1, so the later rows
start at the clients or the orchestrators):

1. a client's stop command hangs: the client step's timeout ends it; the client keeps
   running on its 4.2.0 jars; the failure names it and the way out;
2. a client does not start on the 4.2.1 jars: they are rolled back, it is started on its
   4.2.0 ones, named;
3. an orchestrator refuses to start (its license reads as one without WAN): the failure
   reports the other orchestrators' state; no server is stopped;
4. a replica orchestrator that never resyncs: a bounded wait (``orchestrator_s``) names the
   replica region's caches and orchestrators; cleared, a rerun completes.

Every row ends with :func:`tests.e2e.fault_matrix.assert_fault_row` (safety rules on the
journal, 0 acknowledged writes lost, every stripe served, one sentence); faults are cleared
in ``finally``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bm_upgrade.defs.launch import rerun, run_upgrade
from bm_upgrade.inventory import Client, Orchestrator
from bm_upgrade.probes import probe_client
from bm_upgrade.remote import HostPool
from bm_upgrade.sandbox import faults, processes
from tests.e2e.conftest import E2ESandbox, e2e_sandbox
from tests.e2e.fault_matrix import assert_fault_row

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.usefixtures("dagster_home")]

TARGET = "4.2.1"
CLIENT_S = 3.0
ORCHESTRATOR_S = 5.0
TIMEOUTS = {"timeouts": {"client_s": CLIENT_S, "orchestrator_s": ORCHESTRATOR_S}}


@pytest.fixture(scope="module")
def wan() -> Iterator[E2ESandbox]:
    with e2e_sandbox("wan") as sb:
        yield sb


def east_client(sb: E2ESandbox) -> Client:
    return sb.inventory.regions[0].clients[0]


def orchestrator(sb: E2ESandbox, region: str, role: str) -> Orchestrator:
    return next(o for r, o in sb.inventory.orchestrators() if r.name == region and o.role == role)


def client_state(sb: E2ESandbox, client: Client) -> tuple[bool | None, str | None]:
    with HostPool(sb.inventory.ssh) as pool:
        status = probe_client(pool.get(client.host), client)
    return status.running, status.jar_version


def lib_jars(client: Client) -> list[str]:
    return sorted(p.name for p in Path(client.lib_dir).iterdir() if p.suffix == ".jar")


def hold_stops(sb: E2ESandbox) -> list[int]:
    """Live ``app.py hold-stop`` processes of the sandbox (a hanging stop command)."""
    found = []
    for pid in processes.processes_mentioning(sb.directory):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"hold-stop" in args:
            found.append(pid)
    return found


def events(sb: E2ESandbox, since: float, kind: str, **match: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in sb.journal(since)
        if e["event"] == kind and all(e.get(k) == v for k, v in match.items())
    ]


def server_stops(sb: E2ESandbox, since: float) -> list[str]:
    """Commands since ``since`` that stop a server, and servers that exited."""
    stops = [e["command"] for e in events(sb, since, "command") if "stop-tc-server" in e["command"]]
    return stops + [e["server"] for e in events(sb, since, "server_process", action="exit")]


def test_a_client_stop_that_hangs_leaves_the_client_on_its_old_jars(wan: E2ESandbox) -> None:
    client = east_client(wan)
    since = time.time()
    try:
        faults.inject(wan.directory, "client-stop-hangs", client.name)
        outcome = run_upgrade(wan.inventory_path, target=TARGET, overrides=TIMEOUTS)
    finally:
        faults.clear(wan.directory, client.name)
    assert not outcome.success
    failure = outcome.failure or ""
    assert f"the stop command of client {client.name} on host {client.host} did not finish " in (
        failure
    )
    assert f"client {client.name} still runs on its 4.2.0 jars, untouched" in failure
    assert client_state(wan, client) == (True, "4.2.0")
    assert events(wan, since, "client_process", client=client.name, action="stop") == []
    # The hung stop command died with the step's timeout: nothing of it is left.
    assert hold_stops(wan) == []
    # The servers were upgraded first; the orchestrators were never reached.
    assert events(wan, since, "orchestrator_state") == []
    assert_fault_row(
        wan,
        target=TARGET,
        since=since,
        failure=failure,
        names=[client.name, client.host],
        way_out=["make the stop command work, then rerun"],
    )


def test_a_client_that_does_not_start_on_the_new_jars_is_started_on_its_old_ones(
    wan: E2ESandbox,
) -> None:
    client = east_client(wan)
    since = time.time()
    try:
        said = faults.inject(wan.directory, "client-start-fails", client.name)
        assert said.endswith("on any client library but 4.2.0")
        outcome = run_upgrade(wan.inventory_path, target=TARGET, overrides=TIMEOUTS)
    finally:
        faults.clear(wan.directory, client.name)
    assert not outcome.success
    failure = outcome.failure or ""
    assert f"client {client.name} on host {client.host} did not run on the 4.2.1 jars" in failure
    assert f"its 4.2.0 jars were put back and client {client.name} was started on them" in (failure)
    assert client_state(wan, client) == (True, "4.2.0")
    assert lib_jars(client) == ["ehcache-ee-2.10.0.jar", "terracotta-toolkit-runtime-ee-4.2.0.jar"]
    runs = [
        (e["action"], e["version"], e.get("exit_code"))
        for e in events(wan, since, "client_process", client=client.name)
    ]
    assert runs == [
        ("stop", "4.2.0", 0),
        ("start", "4.2.1", None),
        ("stop", "4.2.1", 2),
        ("start", "4.2.0", None),
    ]
    assert server_stops(wan, since) == []
    assert_fault_row(
        wan,
        target=TARGET,
        since=since,
        failure=failure,
        names=[client.name],
        way_out=["why it does not start on the 4.2.1 jars, then rerun"],
    )


def test_an_orchestrator_that_refuses_to_start_reports_the_others(wan: E2ESandbox) -> None:
    refuses = orchestrator(wan, "west", "master")
    since = time.time()
    try:
        faults.inject(wan.directory, "license-without-wan", refuses.name)
        outcome = run_upgrade(wan.inventory_path, target=TARGET, overrides=TIMEOUTS)
    finally:
        faults.clear(wan.directory, refuses.name)
    assert not outcome.success
    failure = outcome.failure or ""
    assert f"orchestrator {refuses.name} on {refuses.host} did not come up on 4.2.1" in failure
    east_m, east_s = orchestrator(wan, "east", "master"), orchestrator(wan, "east", "standby")
    west_s = orchestrator(wan, "west", "standby")
    assert (
        f"the other orchestrators now: {east_m.name} up on 4.2.1, {east_s.name} stopped "
        f"(kit 4.2.1), {west_s.name} stopped (kit 4.2.1); no server was touched"
    ) in failure
    failed = events(wan, since, "orchestrator_state", orchestrator=refuses.name, state="failed")
    assert [e["reason"] for e in failed] == [
        f"License key {Path(refuses.install_dir) / 'terracotta-license.key'} does not carry "
        "the WAN capability"
    ]
    # The client finished first (the fault of row 2 is gone); no server stopped in this run.
    assert client_state(wan, east_client(wan)) == (True, TARGET)
    assert server_stops(wan, since) == []
    assert_fault_row(
        wan,
        target=TARGET,
        since=since,
        failure=failure,
        names=[refuses.name, east_m.name, west_s.name],
        way_out=["then rerun"],
    )


def test_a_replica_that_never_resyncs_is_named_after_a_bounded_wait(wan: E2ESandbox) -> None:
    replica = orchestrator(wan, "west", "master")
    since = time.time()
    try:
        faults.inject(wan.directory, "no-resync", replica.name)
        started = time.monotonic()
        outcome = run_upgrade(wan.inventory_path, target=TARGET, overrides=TIMEOUTS)
        took = time.monotonic() - started
        caches = events(wan, since, "replica_cache", region="west")
        assert caches and {e["state"] for e in caches} == {"RESYNCING"}
    finally:
        faults.clear(wan.directory, replica.name)
    assert not outcome.success
    failure = outcome.failure or ""
    west_s = orchestrator(wan, "west", "standby")
    assert (
        f"the replica caches west/orders, west/sessions did not resync within {ORCHESTRATOR_S:g} s"
    ) in failure
    assert f"check the replication logs of {replica.name}, {west_s.name}, then rerun" in failure
    assert took > ORCHESTRATOR_S  # it waited its bound, then gave up (no timing asserted)
    assert server_stops(wan, since) == []
    assert_fault_row(
        wan,
        target=TARGET,
        since=since,
        failure=failure,
        names=["west/orders", replica.name],
        way_out=["then rerun"],
    )
    # Cleared, the resync ends; re-execution from the failure completes the upgrade.
    again = rerun(outcome.run_id)
    assert again.success, again.failure
    states = events(wan, since, "replica_cache", region="west")
    assert states[-1]["state"] == "ACTIVE"
    assert_fault_row(wan, target=TARGET, since=since)
