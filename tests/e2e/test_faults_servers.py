"""Fault-matrix rows for servers and kits (README, "Fault matrix"): each a sandbox fault
(``bm-upgrade sandbox fault``) struck before or during an upgrade through the Dagster job,
each ending with :func:`tests.e2e.fault_matrix.assert_fault_row` (safety rules on the journal,
0 acknowledged writes lost, every stripe served, one sentence naming the node and the way out).

The rows share one ``small`` sandbox (one stripe of two servers, one client writing all the
time) and run in file order; each starts from a healthy stripe, upgrades to the version the
cluster does not run (4.2.0 <-> 4.2.1), and leaves the stripe healthy again. Faults are
cleared in ``finally``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bm_upgrade.defs.launch import RunOutcome, rerun, run_upgrade
from bm_upgrade.inventory import Server
from bm_upgrade.procedure.install import start_server
from bm_upgrade.procedure.records import StepRecorder
from bm_upgrade.procedure.servers import ServerOps
from bm_upgrade.remote import HostPool
from bm_upgrade.sandbox import faults
from tests.e2e.conftest import E2ESandbox, e2e_sandbox
from tests.e2e.fault_matrix import ACTIVE, assert_fault_row, inject_when, stripe_states
from tests.e2e.journal_check import stops

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.usefixtures("dagster_home")]

STANDBY = "PASSIVE-STANDBY"
FAST = {"timeouts": {"start_s": 4.0, "sync_s": 4.0, "failover_s": 6.0}}
"""Small timeouts: a fault row waits for a bound, not for the defaults."""


@pytest.fixture(scope="module")
def sb(dagster_home: Path) -> Iterator[E2ESandbox]:
    with e2e_sandbox("small") as sandbox:
        yield sandbox


def servers(sb: E2ESandbox) -> dict[str, Server]:
    return {s.name: s for s in sb.inventory.regions[0].stripes[0].servers}


def roles(sb: E2ESandbox) -> tuple[str, str]:
    """(the ACTIVE, the mirror) of the one stripe, as the sandbox's REST stats say."""
    states = next(iter(stripe_states(sb).values()))
    active = next(n for n, s in states.items() if s == ACTIVE)
    return active, next(n for n in states if n != active)


def running_version(sb: E2ESandbox, name: str) -> str | None:
    """The version a server's process was last started on (the sandbox's journal)."""
    starts = [
        e
        for e in sb.journal()
        if e["event"] == "server_process" and e["server"] == name and e["action"] == "start"
    ]
    return str(starts[-1]["version"]) if starts else None


def other_version(sb: E2ESandbox) -> str:
    """The version of the two the active does not run: the row's target."""
    active, _ = roles(sb)
    return "4.2.1" if running_version(sb, active) == "4.2.0" else "4.2.0"


def wait_state(sb: E2ESandbox, name: str, state: str, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if next(iter(stripe_states(sb).values())).get(name) == state:
            return True
        time.sleep(0.1)
    return False


def on_host(host: str, word: str) -> Any:
    """A journal matcher: a command on ``host`` holding ``word``."""
    return lambda e: e["event"] == "command" and e["host"] == host and word in e["command"]


def complete(sb: E2ESandbox, outcome: RunOutcome, *, new_run: bool = False) -> RunOutcome:
    """Finish what a failed row left: a re-execution from failure, or a new run (which stages
    the kit again)."""
    target = other_version(sb) if new_run else None
    again = run_upgrade(sb.inventory_path, target=target) if new_run else rerun(outcome.run_id)
    assert again.success, again.failure
    return again


def test_a_mislabelled_kit_is_refused_before_any_stop(sb: E2ESandbox) -> None:
    target = other_version(sb)
    since = time.time()
    try:
        said = faults.inject(sb.directory, "mislabelled-kit", target)
        reports = said.split("is now ")[1].split("'s")[0]
        outcome = run_upgrade(sb.inventory_path, target=target)
    finally:
        faults.clear(sb.directory, target)
    assert not outcome.success
    assert outcome.failure and "stage_kit" in outcome.failure
    assert f"is {reports}, not {target}" in outcome.failure
    assert stops(sb.journal_path, since) == []
    assert_fault_row(
        sb,
        target=target,
        since=since,
        failure=outcome.failure,
        names=[next(iter(servers(sb).values())).host],
        way_out=["check kits[] in the inventory"],
    )


def test_disk_full_during_an_unpack_restarts_the_mirror_on_its_old_kit(sb: E2ESandbox) -> None:
    target = other_version(sb)
    active, mirror = roles(sb)
    before = running_version(sb, mirror)
    node = servers(sb)[mirror]
    since = time.time()
    try:
        faults.inject(sb.directory, "disk-full", node.host)
        outcome = run_upgrade(sb.inventory_path, target=target)
        assert not outcome.success
        assert outcome.failure and "No space left on device" in outcome.failure
        # The old kit untouched and running again; the work folder gone.
        assert wait_state(sb, mirror, STANDBY)
        assert running_version(sb, mirror) == before
        assert not Path(node.kit_root.work_dir(mirror)).exists()
        assert active not in stops(sb.journal_path, since)
    finally:
        faults.clear(sb.directory, node.host)
    complete(sb, outcome)
    assert {running_version(sb, n) for n in servers(sb)} == {target}
    assert_fault_row(
        sb,
        target=target,
        since=since,
        failure=outcome.failure,
        names=[mirror, node.host, f"started again on its untouched {before} kit"],
        way_out=["make room on"],
    )


def test_a_server_in_a_restart_loop_is_bounded_by_the_start_timeout(sb: E2ESandbox) -> None:
    target = other_version(sb)
    active, mirror = roles(sb)
    since = time.time()
    try:
        faults.inject(sb.directory, "restart-loop", target)
        outcome = run_upgrade(sb.inventory_path, target=target, overrides=FAST)
        assert not outcome.success
        loops = [
            e
            for e in sb.journal(since)
            if e["event"] == "server_process" and e["server"] == mirror and e.get("exit_code") == 11
        ]
        assert len(loops) >= 2, "the mirror was not in a restart loop"
        assert active not in stops(sb.journal_path, since)
        assert next(iter(stripe_states(sb).values()))[active] == ACTIVE
    finally:
        faults.clear(sb.directory, target)
    # Cleared: the start script's next relaunch starts, and the mirror syncs.
    assert wait_state(sb, mirror, STANDBY)
    complete(sb, outcome)
    assert_fault_row(
        sb,
        target=target,
        since=since,
        failure=outcome.failure,
        names=[mirror, "did not start", f"stripe still served by {active}"],
        way_out=["fix the cause, then rerun"],
    )


def failover_refused_for_a_corrupted_kit(sb: E2ESandbox) -> tuple[RunOutcome, str, str, str]:
    """A run whose active's host gets its staged kit corrupted while the mirror starts on the
    new kit: the mirror is upgraded, the active is not stopped. Returns (the run, its
    target, the active, the mirror)."""
    target = other_version(sb)
    active, mirror = roles(sb)
    hosts = {n: s.host for n, s in servers(sb).items()}
    with inject_when(
        sb, on_host(hosts[mirror], "start-tc-server.sh"), "corrupt-staged-kit", hosts[active]
    ) as said:
        outcome = run_upgrade(sb.inventory_path, target=target)
    assert said, "the fault was never injected"
    assert not outcome.success
    return outcome, target, active, mirror


def test_a_staged_kit_corrupted_on_a_host_is_caught_before_its_stop(sb: E2ESandbox) -> None:
    since = time.time()
    outcome, target, active, mirror = failover_refused_for_a_corrupted_kit(sb)
    assert outcome.failure and "failover_east_stripe1" in outcome.failure
    assert stops(sb.journal_path, since) == [mirror], "the active was stopped"
    assert running_version(sb, mirror) == target
    assert_fault_row(
        sb,
        target=target,
        since=since,
        failure=outcome.failure,
        names=[active, "sha256", "was not stopped"],
        way_out=["run the upgrade again"],
    )
    # A new run stages the kit again and completes.
    complete(sb, outcome, new_run=True)
    assert {running_version(sb, n) for n in servers(sb)} == {target}
    assert_fault_row(sb, target=target, since=since)


def test_a_partitioned_mirror_leaves_standby_and_the_active_is_never_stopped(
    sb: E2ESandbox,
) -> None:
    since = time.time()
    # The mirror already on the target, the active not yet: the failover is what is left.
    _, target, active, mirror = failover_refused_for_a_corrupted_kit(sb)
    assert wait_state(sb, mirror, STANDBY)
    partitioned = time.time()
    try:
        faults.inject(sb.directory, "partition", mirror)
        assert wait_state(sb, mirror, "PASSIVE-UNINITIALIZED")
        failed = run_upgrade(sb.inventory_path, target=target, overrides=FAST)
        assert not failed.success
        assert active not in stops(sb.journal_path, partitioned)
        left = [
            e
            for e in sb.journal(partitioned)
            if e["event"] == "server_state" and e["server"] == mirror
        ]
        assert left and left[0]["state"] != STANDBY
    finally:
        faults.clear(sb.directory, mirror)
    assert wait_state(sb, mirror, STANDBY)
    complete(sb, failed)
    assert {running_version(sb, n) for n in servers(sb)} == {target}
    assert_fault_row(
        sb,
        target=target,
        since=since,
        failure=failed.failure,
        names=[mirror, STANDBY],
        way_out=["rerun"],
    )


def test_the_new_active_killed_while_the_old_one_is_upgraded(sb: E2ESandbox) -> None:
    target = other_version(sb)
    old, new = roles(sb)
    host = servers(sb)[old].host
    since = time.time()
    stopped: list[bool] = []

    def old_one_unpacking(e: dict[str, Any]) -> bool:
        if e["event"] == "server_state" and e["server"] == old and e["state"] == "STOP-STATE":
            stopped.append(True)
        return bool(stopped) and on_host(host, "tar -xzf")(e)

    with inject_when(sb, old_one_unpacking, "kill", new) as said:
        outcome = run_upgrade(sb.inventory_path, target=target, overrides=FAST)
    assert said, "the new active was never killed"
    assert not outcome.success
    assert outcome.failure and f"start {new} first" in outcome.failure
    assert set(next(iter(stripe_states(sb).values())).values()) == {"down"}
    # What the sentence says: start the last active first; it recovers from disk.
    with HostPool(sb.inventory.ssh) as pool:
        ctx = ServerOps.create(sb.inventory, pool, target=target)
        start_server(ctx, servers(sb)[new], StepRecorder(new, "start"))
    assert wait_state(sb, new, ACTIVE)
    complete(sb, outcome)
    assert {running_version(sb, n) for n in servers(sb)} == {target}
    assert_fault_row(
        sb,
        target=target,
        since=since,
        failure=outcome.failure,
        names=[old, new],
        way_out=[f"start {new} first"],
    )
