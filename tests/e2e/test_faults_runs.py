"""Fault-matrix rows about the run itself (README, "Fault matrix"): the maintenance window
closing mid-run, a host whose SSH host key changes mid-run and `bm-upgrade run` interrupted
(SIGINT) during a server step, two runs launched at once for one cluster, and an SSH
connection dropped in the middle of the kit's upload. Each row ends
with
:func:`tests.e2e.fault_matrix.assert_fault_row` (safety rules on the journal, 0 acknowledged
writes lost, every stripe served, one sentence naming the node and the way out).

The rows share one ``small`` sandbox (one stripe of two servers, one client writing all the
time) and run in file order; each starts from a healthy stripe, upgrades to the version the
cluster does not run (4.2.0 <-> 4.2.1) and leaves the stripe healthy again. Faults are
cleared in ``finally``. The window row comes first: with no past run in the module's Dagster
instance, the window check expects the timeouts (not a history of seconds).
"""

from __future__ import annotations

import datetime
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from bm_upgrade.defs.launch import rerun, run_upgrade
from bm_upgrade.sandbox import fault_uploads, faults
from tests.dagster import processes
from tests.e2e.conftest import E2ESandbox, e2e_sandbox
from tests.e2e.fault_matrix import ACTIVE, assert_fault_row, inject_when, stripe_states
from tests.e2e.journal_check import stops
from tests.e2e.test_faults_servers import (
    STANDBY,
    other_version,
    roles,
    running_version,
    servers,
)
from tests.e2e.test_interrupted_run import bm_upgrade, run_status

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.usefixtures("dagster_home")]


@pytest.fixture(scope="module")
def sb(dagster_home: Path) -> Iterator[E2ESandbox]:
    with e2e_sandbox("small") as sandbox:
        yield sandbox


def test_the_window_closing_mid_run_stops_before_the_next_disruptive_step(
    sb: E2ESandbox,
) -> None:
    target = other_version(sb)
    active, mirror = roles(sb)
    since = time.time()
    # A mirror's outage is expected to take 3 x 20 s, a failover 600 s more: the window,
    # closing in 5 minutes, takes the mirror's upgrade and closes before the failover's end.
    closes = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
    overrides = {
        "window_end": closes.isoformat(),
        "timeouts": {"stop_s": 20.0, "start_s": 20.0, "sync_s": 20.0, "failover_s": 600.0},
    }
    outcome = run_upgrade(sb.inventory_path, target=target, overrides=overrides)
    assert not outcome.success
    assert stops(sb.journal_path, since) == [mirror]
    assert running_version(sb, mirror) == target
    assert next(iter(stripe_states(sb).values()))[active] == ACTIVE
    assert_fault_row(
        sb,
        target=target,
        since=since,
        failure=outcome.failure,
        names=[active, "was not started", "maintenance window closes at"],
        way_out=["the next window opens"],
    )
    # Outside the window (a run by hand), a new run finishes the stripe.
    again = run_upgrade(sb.inventory_path, target=target)
    assert again.success, again.failure
    assert {running_version(sb, n) for n in servers(sb)} == {target}


def test_a_host_key_changed_mid_run_is_refused_and_the_stripe_stays_served(
    sb: E2ESandbox,
) -> None:
    target = other_version(sb)
    active, mirror = roles(sb)
    hosts = {n: s.host for n, s in servers(sb).items()}
    since = time.time()

    # The mirror upgraded and PASSIVE-STANDBY again; then the active's host is reinstalled.
    def mirror_synced(e: dict[str, Any]) -> bool:
        return bool(
            e["event"] == "server_state" and e["server"] == mirror and e["state"] == STANDBY
        )

    with inject_when(sb, mirror_synced, "host-key-change", hosts[active]) as said:
        outcome = run_upgrade(sb.inventory_path, target=target)
    assert said and said[0].startswith(f"sshd of host {hosts[active]} now offers a new host key")
    assert not outcome.success
    assert outcome.failure and "CHANGED" in outcome.failure
    assert active not in stops(sb.journal_path, since)
    assert next(iter(stripe_states(sb).values()))[active] == ACTIVE
    assert running_version(sb, mirror) == target
    assert_fault_row(
        sb,
        target=target,
        since=since,
        failure=outcome.failure,
        names=[hosts[active]],
        way_out=["bm-upgrade trust-hosts", "known_hosts"],
    )
    # The old key back (cleared on leaving the block): re-execution from failure completes.
    again = rerun(outcome.run_id)
    assert again.success, again.failure
    assert {running_version(sb, n) for n in servers(sb)} == {target}
    assert faults.active(sb.directory) == []


def test_a_run_interrupted_during_a_server_step_ends_it_safely(
    sb: E2ESandbox, tmp_path: Path
) -> None:
    """Ctrl-C once the mirror's step has stopped it (tests/e2e/test_interrupted_run.py checks
    the command's own behaviour in detail: a second Ctrl-C, Dagster's log processes)."""
    target = other_version(sb)
    active, mirror = roles(sb)
    since = time.time()
    command = bm_upgrade(["run", "--to", target, str(sb.inventory_path)], tmp_path, "run")
    try:
        processes.wait_until(
            lambda: bool(stops(sb.journal_path, since)) or command.proc.poll() is not None,
            180,
            "the run to stop the stripe's first server",
        )
        assert command.proc.poll() is None, command.stderr[-3000:]
        os.killpg(command.proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        assert command.proc.wait(timeout=240) == 1, command.stderr[-3000:]
    finally:
        command.stop()
    failure = next(x for x in command.stderr.splitlines() if "failed: step " in x)
    run_id = command.run_id()
    assert run_status(run_id) == dg.DagsterRunStatus.FAILURE
    # The mirror's step finished it (started, synced); the active was never stopped.
    assert stops(sb.journal_path, since) == [mirror]
    assert next(iter(stripe_states(sb).values())) == {active: ACTIVE, mirror: STANDBY}
    assert_fault_row(
        sb,
        target=target,
        since=since,
        failure=failure,
        names=[
            "stripe stripe1",
            "upgrade_mirrors_east_stripe1",
            "the operator interrupted bm-upgrade (SIGINT)",
        ],
        way_out=["rerun"],
    )
    again = rerun(run_id)
    assert again.success, again.failure
    assert {running_version(sb, n) for n in servers(sb)} == {target}


def test_two_runs_launched_at_once_for_one_cluster_only_one_goes(
    sb: E2ESandbox, tmp_path: Path
) -> None:
    """Two `bm-upgrade run` side by side (tests/dagster/test_run_claim.py proves the claim
    itself on an instance without hosts): one upgrades the cluster, the other is refused
    with one sentence naming the first before its preflight, so every command in the
    journal is the winner's."""
    target = other_version(sb)
    since = time.time()
    args = ["run", "--to", target, str(sb.inventory_path)]
    commands = [bm_upgrade(args, tmp_path, f"run{i}") for i in range(2)]
    try:
        codes = [c.proc.wait(timeout=300) for c in commands]
    finally:
        for c in commands:
            c.stop()
    assert sorted(codes)[0] == 0 and sorted(codes)[1] in (1, 2), codes
    winner, loser = (commands[0], commands[1]) if codes[0] == 0 else (commands[1], commands[0])
    assert f"Every node runs {target}." in winner.stdout
    said = [
        line
        for line in loser.stderr.splitlines()
        if line.startswith((f"failed: run {winner.run_id()} ", f"error: run {winner.run_id()} "))
    ]
    assert len(said) == 1, loser.stderr[-3000:]
    assert "Traceback" not in loser.stderr
    # The loser never reached its preflight (no probe, no stop); the winner's preflight and
    # stops are in its log.
    assert "preflight: " in winner.stderr and "preflight" not in loser.stderr
    assert set(stops(sb.journal_path, since)) == set(servers(sb))
    assert {running_version(sb, n) for n in servers(sb)} == {target}
    assert_fault_row(
        sb,
        target=target,
        since=since,
        failure=said[0],
        names=[winner.run_id(), "cluster small"],
    )


def stage_kit_hosts(run_id: str) -> dict[str, str]:
    """What the run's stage_kit step did per host (its output metadata: uploaded, resumed,
    skipped)."""
    records = dg.DagsterInstance.get().get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_OUTPUT
    )
    for record in records.records:
        event = record.event_log_entry.dagster_event
        if event is not None and event.step_key == "stage_kit":
            hosts = event.step_output_data.metadata["hosts"]
            assert isinstance(hosts, dg.JsonMetadataValue)
            return dict(hosts.data or {})
    raise AssertionError(f"run {run_id} has no stage_kit output")


def test_an_ssh_connection_dropped_mid_upload_is_reopened_and_resumed(sb: E2ESandbox) -> None:
    """The mirror's host cuts the SSH connection of its next SFTP session after two 252 KiB
    writes of the kit (the sandbox's ``drop-upload`` fault): the upload opens a new
    connection, resumes from the partial file, checks the whole file's sha256 on the host
    and the run goes on to the end."""
    target = other_version(sb)
    _, mirror = roles(sb)
    host = servers(sb)[mirror].host
    since = time.time()
    with faults.injected(sb.directory, "drop-upload", host):
        outcome = run_upgrade(sb.inventory_path, target=target)
    assert outcome.success, outcome.failure
    events = [e for e in sb.journal() if float(e["t"]) >= since]
    fired = [i for i, e in enumerate(events) if e["event"] == "fault" and e["action"] == "fired"]
    assert len(fired) == 1, [events[i] for i in fired]
    assert events[fired[0]]["target"] == host
    assert 0 < events[fired[0]]["bytes"] <= fault_uploads.DEFAULT_BYTES
    staged = stage_kit_hosts(outcome.run_id)
    assert staged[host] == "resumed", staged
    assert {a for h, a in staged.items() if h != host} == {"uploaded"}, staged
    # After the drop, the kit's sha256 was checked on the host (then renamed into place).
    assert any(
        e["event"] == "command" and e["host"] == host and "-sha256" in e["command"]
        for e in events[fired[0] :]
    )
    assert {running_version(sb, n) for n in servers(sb)} == {target}
    assert_fault_row(sb, target=target, since=since)
