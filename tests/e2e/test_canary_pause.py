"""Canary and approval, pause, and Dagster's terminate, end to end on one sandbox of two
stripes (east/stripe1, east/stripe2) and a client writing throughout.

The tests share the sandbox and run in file order, each upgrading to the version the one
before left behind the other (4.2.1, 4.2.0, ...), so each has work to do. Runs execute the
job as `bm-upgrade run` and `rerun` do (``run_upgrade``, ``rerun``: Dagster's execute_job), in
a thread of the test, and the operator's commands go through the command line's own entry
point (``bm_upgrade.cli.main``), so no test pays a Python start per command:

1. canary east/stripe2 upgraded first; the gate waits (a running step whose log says how to
   decide) with nothing else touched; approved through the ``approve_canary`` job (Dagster's
   execute_job, as a run worker executes it): the run completes;
2. rejected with `bm-upgrade reject`: the run ends, the canary rolled back, nothing else
   touched;
3. no decision within ``timeouts.approval_s``: the run ends safely; `bm-upgrade approve` on the
   timed-out run, then `bm-upgrade rerun`, whose gate passes at once: completes;
4. `bm-upgrade pause` mid-stripe: that stripe finishes, the other never starts, the run ends
   FAILURE saying it was paused and by whom; `rerun` completes;
5. Dagster's terminate (the run coordinator's ``cancel_run``, what the UI's Terminate calls)
   mid-stripe: the stripe in progress finishes safely, nothing stops after, every stripe
   served.

Every test ends with :func:`tests.e2e.fault_matrix.assert_fault_row`: the journal's safety
rules, 0 acknowledged writes lost, every stripe served by one ACTIVE.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from bm_upgrade import cli
from bm_upgrade.defs.approval import APPROVAL_AT_TAG, APPROVAL_BY_TAG, APPROVAL_TAG, GATE
from bm_upgrade.defs.execution import RunOutcome
from bm_upgrade.defs.instance import prepare_instance
from bm_upgrade.defs.launch import rerun, run_upgrade
from bm_upgrade.defs.run_control import StepState, step_state
from bm_upgrade.defs.runclaim import CLUSTER_TAG
from tests.dagster import processes
from tests.e2e.conftest import E2ESandbox, e2e_sandbox
from tests.e2e.fault_matrix import assert_fault_row
from tests.e2e.journal_check import read, stops

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("dagster_home")]

TOPOLOGY = Path(__file__).parent / "topologies" / "canary.yaml"
CANARY = "east/stripe2"
CANARY_SERVERS = {"east-s2-a", "east-s2-b"}


@pytest.fixture(scope="module")
def sandbox(dagster_home: Path) -> Iterator[E2ESandbox]:
    # The storage created once: runs (in threads) and the test read the instance at once.
    prepare_instance(dagster_home)
    with e2e_sandbox(str(TOPOLOGY)) as sb:
        yield sb


def variant(sb: E2ESandbox, name: str, **policy: Any) -> Path:
    """A copy of the sandbox's inventory with ``policy`` changes (``timeouts`` merged); no
    failback and no backups, which these tests do not look at (fewer stops, less time)."""
    data = yaml.safe_load(sb.inventory_path.read_text(encoding="utf-8"))
    timeouts = {**data["policy"].get("timeouts", {}), **policy.pop("timeouts", {})}
    data["policy"].update(
        {"failback": False, "backup_before_upgrade": False, **policy, "timeouts": timeouts}
    )
    path = sb.directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def canary_inventory(sb: E2ESandbox, approval_s: float = 120) -> Path:
    return variant(sb, f"canary-{approval_s:g}", canary=CANARY, timeouts={"approval_s": approval_s})


@dataclass
class Running:
    """A run executed in a thread of the test, as `bm-upgrade run` and `rerun` execute it."""

    thread: threading.Thread
    ids: list[str] = field(default_factory=list)
    outcome: list[RunOutcome] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        processes.wait_until(lambda: bool(self.ids) or not self.thread.is_alive(), 120, "a run id")
        assert self.ids, self.error
        return self.ids[0]

    def alive(self) -> bool:
        return self.thread.is_alive()

    def result(self, timeout: float = 300) -> RunOutcome:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run did not end"
        assert not self.error, self.error
        return self.outcome[0]


def launch(work: Callable[[Callable[[str], None]], RunOutcome]) -> Running:
    """``work(on_run_id)`` (``run_upgrade`` or ``rerun``) in a thread."""
    holder: list[Running] = []

    def target() -> None:
        running = holder[0]
        try:
            running.outcome.append(work(running.ids.append))
        except BaseException as exc:  # shown by Running.result
            running.error.append(exc)

    running = Running(threading.Thread(target=target, name="upgrade-run", daemon=True))
    holder.append(running)
    running.thread.start()
    return running


def upgrade(path: Path, target: str) -> Running:
    # No Dagster console lines: the operator's commands' output is read from the same
    # captured stderr while the run goes on in its thread.
    return launch(lambda ids: run_upgrade(path, target=target, on_run_id=ids, verbose=False))


def command(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> str:
    """A `bm-upgrade` command run through its entry point: its one line of output."""
    capsys.readouterr()
    assert cli.main(list(args)) == code
    captured = capsys.readouterr()
    said = captured.out if code == 0 else captured.err
    assert len(said.strip().splitlines()) == 1 and "Traceback" not in said, said
    return said.strip()


def versions(sb: E2ESandbox) -> dict[str, str]:
    """Each server's version, as the sandbox last journaled it."""
    found: dict[str, str] = {}
    for event in read(sb.journal_path):
        if event["event"] == "server_state" and event.get("version"):
            found[event["server"]] = event["version"]
    return found


def stopped_since(sb: E2ESandbox, since: float) -> set[str]:
    return set(stops(sb.journal_path, since))


def wait_at_gate(running: Running) -> None:
    """Until the run's approval gate waits (its step started, not ended)."""
    instance = dg.DagsterInstance.get()
    run_id = running.run_id
    processes.wait_until(
        lambda: step_state(instance, run_id, GATE) is StepState.RUNNING or not running.alive(),
        180,
        "the run to wait at its approval gate",
        interval=0.5,
    )
    assert running.alive(), running.outcome


def wait_first_stop(sb: E2ESandbox, running: Running, since: float) -> None:
    processes.wait_until(
        lambda: bool(stops(sb.journal_path, since)) or not running.alive(),
        180,
        "the run to stop the first stripe's first server",
        interval=0.1,
    )
    assert running.alive(), running.outcome


def run_status(run_id: str) -> dg.DagsterRunStatus:
    run = dg.DagsterInstance.get().get_run_by_id(run_id)
    assert run is not None
    return run.status


def test_a_canary_waits_for_its_approval_then_the_run_completes(sandbox: E2ESandbox) -> None:
    inventory = canary_inventory(sandbox)
    since = time.time()
    running = upgrade(inventory, "4.2.1")
    wait_at_gate(running)
    run_id = running.run_id
    instance = dg.DagsterInstance.get()
    # Only the canary's servers were touched, and it is done.
    assert stopped_since(sandbox, since) == CANARY_SERVERS
    assert {s for s, v in versions(sandbox).items() if v == "4.2.1"} == CANARY_SERVERS
    # The waiting step's log says how to decide.
    said = [e.user_message for e in instance.all_logs(run_id) if e.step_key == GATE]
    assert any(f"bm-upgrade approve {run_id}" in m and "approve_canary" in m for m in said), said
    # Approved the UI's way: the approve_canary job, executed by Dagster.
    job = dg.build_reconstructable_job(
        "bm_upgrade.defs.control_jobs",
        "approve_job_for_inventory",
        reconstructable_args=(str(inventory),),
    )
    config = {"run_id": run_id, "decision": "approved", "by": "alice", "note": "canary ok"}
    with dg.execute_job(
        job, instance, run_config={"ops": {"record_decision": {"config": config}}}
    ) as result:
        assert result.success
        assert CLUSTER_TAG not in result.dagster_run.tags  # never queued behind the run
    outcome = running.result()
    assert outcome.success, outcome.failure
    run = instance.get_run_by_id(run_id)
    assert run is not None
    assert (run.tags[APPROVAL_TAG], run.tags[APPROVAL_BY_TAG]) == ("approved", "alice")
    # The gate's output metadata says who decided and when.
    (output,) = [
        e
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT)
        if e.step_key == GATE
    ]
    assert output.dagster_event is not None
    shown = {k: str(v.value) for k, v in output.dagster_event.step_output_data.metadata.items()}
    assert (shown["decision"], shown["by"], shown["note"]) == ("approved", "alice", "canary ok")
    assert shown["at"] == run.tags[APPROVAL_AT_TAG]
    # The other stripe started after the approval (recorded to the second).
    approved_at = datetime.datetime.fromisoformat(shown["at"]).timestamp()
    others = [
        e["t"]
        for e in read(sandbox.journal_path)
        if e["event"] == "server_process" and e["t"] >= since and e["server"] not in CANARY_SERVERS
    ]
    assert others and min(others) >= approved_at
    assert set(versions(sandbox).values()) == {"4.2.1"}
    assert_fault_row(sandbox, target="4.2.1", since=since)


def test_a_rejected_canary_ends_the_run_with_nothing_else_touched(
    sandbox: E2ESandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    since = time.time()
    running = upgrade(canary_inventory(sandbox), "4.2.0")
    run_id = running.run_id
    early = command(capsys, "approve", run_id, code=2)
    assert early.startswith(f"error: run {run_id} has no gate waiting for a decision")
    wait_at_gate(running)
    said = command(capsys, "reject", run_id, "--by", "bob", "--note", "errors on the canary")
    assert said.startswith(f"run {run_id}: canary rejected by bob at ")
    outcome = running.result()
    failure = outcome.failure or ""
    assert failure.startswith(f"step {GATE} failed: canary stripe {CANARY} was rejected by bob")
    assert "(errors on the canary)" in failure and "no other stripe was touched" in failure
    assert run_status(run_id) == dg.DagsterRunStatus.FAILURE
    assert stopped_since(sandbox, since) == CANARY_SERVERS
    assert {s for s, v in versions(sandbox).items() if v == "4.2.0"} == CANARY_SERVERS
    again = command(capsys, "reject", run_id, code=2)
    assert again.startswith(f"error: run {run_id}'s canary was already rejected by bob at ")
    unknown = command(capsys, "approve", "no-such-run", code=2)
    assert unknown.startswith("error: no run 'no-such-run' in the Dagster instance")
    assert_fault_row(
        sandbox,
        target="4.2.0",
        since=since,
        failure=failure,
        names=[CANARY, "bob"],
        way_out=["roll the canary back", "re-execute from failure"],
    )


def test_an_approval_timeout_ends_safely_then_approve_and_rerun_completes(
    sandbox: E2ESandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    since = time.time()
    running = upgrade(canary_inventory(sandbox, approval_s=2), "4.2.0")
    run_id = running.run_id
    failure = running.result().failure or ""
    assert failure.startswith(
        f"step {GATE} failed: no decision on canary stripe {CANARY} within "
        "timeouts.approval_s (2 s)"
    )
    assert stopped_since(sandbox, since) == set()  # the canary was on 4.2.0 already
    assert_fault_row(
        sandbox,
        target="4.2.0",
        since=since,
        failure=failure,
        names=[CANARY],
        way_out=[f"bm-upgrade approve {run_id}"],
    )
    said = command(capsys, "approve", run_id, "--by", "carol")
    assert "recorded for its re-execution" in said and f"bm-upgrade rerun {run_id}" in said
    again = launch(lambda ids: rerun(run_id, on_run_id=ids, verbose=False))
    outcome = again.result()
    assert outcome.success, outcome.failure
    instance = dg.DagsterInstance.get()
    resumed = instance.get_run_by_id(outcome.run_id)
    assert resumed is not None and resumed.parent_run_id == run_id
    # The approval made on the timed-out run, carried onto the run that went on.
    assert (resumed.tags[APPROVAL_TAG], resumed.tags[APPROVAL_BY_TAG]) == ("approved", "carol")
    assert set(versions(sandbox).values()) == {"4.2.0"}
    assert_fault_row(sandbox, target="4.2.0", since=since)


def test_a_pause_lets_the_stripe_in_progress_finish_then_rerun_resumes(
    sandbox: E2ESandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    since = time.time()
    running = upgrade(variant(sandbox, "plain"), "4.2.1")
    run_id = running.run_id
    wait_first_stop(sandbox, running, since)
    said = command(capsys, "pause", run_id, "--by", "dave")
    assert said.startswith(f"run {run_id}: pause asked by dave at ")
    failure = running.result().failure or ""
    assert "paused at the operator's request (by dave, at " in failure
    assert f"bm-upgrade rerun {run_id}" in failure
    assert run_status(run_id) == dg.DagsterRunStatus.FAILURE
    # The stripe started before the pause finished (both servers on the target); the other
    # was never touched.
    touched = stopped_since(sandbox, since)
    now = versions(sandbox)
    stripes = {
        f"{r.name}/{s.name}": {v.name for v in s.servers} for r, s in sandbox.inventory.stripes()
    }
    done = [key for key, servers in stripes.items() if servers & touched]
    untouched = [key for key, servers in stripes.items() if not servers & touched]
    assert done and untouched, (done, untouched)
    for key in done:
        assert {now[s] for s in stripes[key]} == {"4.2.1"}, key
    for key in untouched:
        assert {now[s] for s in stripes[key]} == {"4.2.0"}, key
    assert_fault_row(sandbox, target="4.2.1", since=since, failure=failure, names=["dave"])
    outcome = launch(lambda ids: rerun(run_id, on_run_id=ids, verbose=False)).result()
    assert outcome.success, outcome.failure  # the re-execution does not inherit the pause
    assert set(versions(sandbox).values()) == {"4.2.1"}
    assert_fault_row(sandbox, target="4.2.1", since=since)


def test_dagster_terminate_mid_stripe_leaves_every_stripe_served(sandbox: E2ESandbox) -> None:
    since = time.time()
    running = upgrade(variant(sandbox, "plain"), "4.2.0")
    run_id = running.run_id
    wait_first_stop(sandbox, running, since)
    # What the UI's Terminate (GraphQL terminateRun) calls.
    assert dg.DagsterInstance.get().run_coordinator.cancel_run(run_id)
    terminated = time.time()
    failure = running.result().failure or ""
    assert "the run was terminated (CANCELING) through Dagster" in failure
    assert run_status(run_id) == dg.DagsterRunStatus.CANCELED
    # A step checks right before each stop: one that checked just before the terminate may
    # still stop its server (then finishes it safely); nothing stops after that.
    assert stops(sandbox.journal_path, terminated + 1.0) == []
    assert_fault_row(
        sandbox, target="4.2.0", since=since, failure=failure, way_out=["re-execute from failure"]
    )
