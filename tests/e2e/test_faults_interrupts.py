"""Fault matrix row: `bm-upgrade run` interrupted (SIGINT, Ctrl-C) at each kind of step.

One upgrade of the shipped ``wan`` sandbox (two regions of one stripe, a client and a master +
standby orchestrator each, clients writing throughout), interrupted four times: first the
`run` command while it stages the kit, then each `rerun` that takes over, while it fails a
stripe over, while it restarts a client and while it cycles the WAN orchestrators. After
each Ctrl-C the step ends safely, the run is marked FAILURE, the command exits 1 with one
sentence naming the step and saying to rerun, and :func:`assert_fault_row` holds (safety rules
on the journal, 0 acknowledged writes lost, every stripe served). The last `rerun` completes
the upgrade. Interrupting a server's mirror step is the row in test_faults_runs.py; the
command's own handling (a second Ctrl-C, SIGTERM, kill -9) is test_interrupted_run.py's.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from bm_upgrade.inventory.kitroot import STAGING_DIR_NAME
from tests.dagster import processes
from tests.e2e.conftest import E2ESandbox, e2e_sandbox
from tests.e2e.fault_matrix import assert_fault_row
from tests.e2e.journal_check import stops
from tests.e2e.test_interrupted_run import Command, bm_upgrade, run_status

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.usefixtures("dagster_home")]

TARGET = "4.2.1"


@dataclass(frozen=True)
class Moment:
    """When to press Ctrl-C: once ``strikes`` (the sandbox, when the command started) holds,
    and what the interrupted run's failure must name."""

    kind: str
    strikes: Callable[[E2ESandbox, float], bool]
    names: tuple[str, ...]


def _journaled(matches: Callable[[dict[str, Any]], bool]) -> Callable[[E2ESandbox, float], bool]:
    def strikes(sb: E2ESandbox, since: float) -> bool:
        return any(float(e["t"]) >= since and matches(e) for e in sb.journal())

    return strikes


def _active_stopped(sb: E2ESandbox, since: float) -> bool:
    # The first stripe's mirror first (its mirrors step), then its active (its failover).
    return len(stops(sb.journal_path, since)) >= 2


MOMENTS = [
    Moment(
        "stage_kit",
        _journaled(lambda e: e["event"] == "command" and STAGING_DIR_NAME in e["command"]),
        # Staging changes nothing a node runs on: it finishes, and the next step, the first
        # stripe's mirrors, does not start its stop.
        ("upgrade_mirrors_", "not started", "nothing was changed by this step"),
    ),
    Moment("failover", _active_stopped, ("failover_",)),
    Moment(
        "restart_clients",
        _journaled(lambda e: e["event"] == "client_process" and e["action"] == "stop"),
        ("restart_clients_",),
    ),
    Moment(
        "wan_cycle",
        _journaled(lambda e: e["event"] == "orchestrator_state" and e["state"] == "stopped"),
        # The cycle is one unit (every orchestrator started again on one version): it ends,
        # and the run ends before its report.
        ("step report", "report not started"),
    ),
]


def orchestrator_versions(sb: E2ESandbox) -> set[str]:
    """The versions the orchestrators' last states were journaled with."""
    last: dict[str, dict[str, Any]] = {}
    for e in sb.journal():
        if e["event"] == "orchestrator_state":
            last[e["orchestrator"]] = e
    assert {e["state"] for e in last.values()} <= {"running", "standby"}, last
    return {str(e["version"]) for e in last.values()}


@pytest.fixture(scope="module")
def wan() -> Iterator[E2ESandbox]:
    with e2e_sandbox("wan") as sb:
        yield sb


def interrupt(sb: E2ESandbox, command: Command, moment: Moment, since: float) -> str:
    """Ctrl-C to ``command`` at ``moment``; returns its one-line failure."""
    try:
        processes.wait_until(
            lambda: moment.strikes(sb, since) or command.proc.poll() is not None,
            240,
            f"the run to reach its {moment.kind} step",
        )
        assert command.proc.poll() is None, command.stderr[-3000:]
        os.killpg(command.proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        assert command.proc.wait(timeout=240) == 1, command.stderr[-3000:]
    finally:
        command.stop()
    err = command.stderr
    assert "Traceback" not in err, err[-3000:]
    failures = [x for x in err.splitlines() if "failed: step " in x]
    assert failures, err[-3000:]
    return failures[-1]


def test_ctrl_c_at_each_kind_of_step_ends_it_safely_and_rerun_completes(
    wan: E2ESandbox, tmp_path: Path
) -> None:
    command = bm_upgrade(["run", "--to", TARGET, str(wan.inventory_path)], tmp_path, "run")
    # The journal's safety rules are checked from the first command on (a rerun goes on
    # from the probes and the staging its first run did).
    start = since = time.time()
    for moment in MOMENTS:
        failure = interrupt(wan, command, moment, since)
        run_id = command.run_id()
        assert run_status(run_id) == dg.DagsterRunStatus.FAILURE, moment.kind
        if moment.kind == "stage_kit":
            assert stops(wan.journal_path, since) == []
        if moment.kind == "wan_cycle":
            assert orchestrator_versions(wan) == {TARGET}
        assert_fault_row(
            wan,
            target=TARGET,
            since=start,
            failure=failure,
            names=[*moment.names, "the operator interrupted bm-upgrade (SIGINT)"],
            way_out=["rerun"],
        )
        since = time.time()
        command = bm_upgrade(["rerun", run_id], tmp_path, f"rerun-after-{moment.kind}")
    try:
        assert command.proc.wait(timeout=300) == 0, command.stderr[-3000:]
    finally:
        command.stop()
    assert f"Every node runs {TARGET}." in command.stdout
    assert run_status(command.run_id()) == dg.DagsterRunStatus.SUCCESS
    assert_fault_row(wan, target=TARGET, since=start)
