"""One run per cluster decided inside the run (create-then-check), and re-execution refused
when the inventory changed since the parent run; against a real Dagster instance in a
DAGSTER_HOME of its own.

The cluster's hosts are loopback addresses on a port where nothing listens: a run that gets
past the claim fails in preflight at once ("cannot be reached"), which is proof enough that it
ran its ops, and no test touches a real host.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg
import pytest
import yaml

from bm_upgrade.cli import main
from bm_upgrade.defs.execution import QUIET_CONSOLE, execute_here, reconstructable
from bm_upgrade.defs.instance import prepare_instance
from bm_upgrade.defs.launch import rerun, run_upgrade
from bm_upgrade.defs.notify import failure_of
from bm_upgrade.defs.runclaim import (
    CLUSTER_TAG,
    INVENTORY_CHANGE_TAG,
    INVENTORY_SHA_TAG,
    INVENTORY_TAG,
    inventory_sha256,
)
from tests.unit.inventories import unanswered

# Whole runs (and `bm-upgrade run` command lines) on an instance on disk: seconds each.
pytestmark = pytest.mark.slow

UNREACHABLE = "cannot be reached"


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="bm-upgrade-claim-"))
    prepare_instance(folder)  # storage created once: runs below start side by side
    monkeypatch.setenv("DAGSTER_HOME", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    """A valid inventory whose two servers nobody answers for (refused at once)."""
    return unanswered(tmp_path, "claim")


def create_run(inst: dg.DagsterInstance, path: Path) -> dg.DagsterRun:
    """A run of the inventory's job as every launcher creates one (not started yet)."""
    job = reconstructable(str(path)).get_definition()
    tags = {
        CLUSTER_TAG: "test",
        INVENTORY_TAG: str(path),
        INVENTORY_SHA_TAG: inventory_sha256(path),
    }
    return inst.create_run_for_job(job, run_config=dict(QUIET_CONSOLE), tags=tags)


def reason(events: Sequence[dg.DagsterEvent]) -> str:
    """Why a run failed: its first failed step's reason, or why its setup failed."""
    for event in events:
        if event.event_type_value == "RESOURCE_INIT_FAILURE":
            return str(event.event_specific_data)
    return failure_of(events)[1]


def execute(inst: dg.DagsterInstance, path: Path, run: dg.DagsterRun) -> tuple[str, str]:
    """Execute a created run to its end; (its status, why it failed)."""
    from dagster._core.execution.api import execute_run

    result = execute_run(reconstructable(str(path)), run, inst)
    stored = inst.get_run_by_id(run.run_id)
    assert stored is not None
    return stored.status.value, reason(result.all_events)


def test_two_runs_created_at_once_only_the_first_goes_on(home: Path, inventory: Path) -> None:
    """Both runs exist before either checks (the worst case for a read-then-launch check),
    and the one created second executes first: it stops naming the first, which then runs
    its ops; the refused run ends FAILURE, so it blocks nobody afterwards."""
    with dg.DagsterInstance.get() as inst:
        first, second = create_run(inst, inventory), create_run(inst, inventory)
        status, reason = execute(inst, inventory, second)
        assert status == "FAILURE"
        assert f"run {first.run_id} of cluster test (NOT_STARTED)" in reason
        assert "created before this one" in reason and "before touching anything" in reason
        status, reason = execute(inst, inventory, first)
        assert status == "FAILURE" and UNREACHABLE in reason, reason  # its preflight ran
        # Both ended: a new run is nobody's second.
        third = create_run(inst, inventory)
        assert UNREACHABLE in execute(inst, inventory, third)[1]


@contextmanager
def silent_hosts(inventory: Path) -> Iterator[None]:
    """The inventory's SSH port listens on every loopback address but never answers (no
    banner), so a run's preflight waits for its connect timeout and retries: seconds, long
    enough for a second run started beside it to find it going even on a loaded machine."""
    data = yaml.safe_load(inventory.read_text())
    hosts = {s["host"] for r in data["regions"] for st in r["stripes"] for s in st["servers"]}
    hosts |= {c["host"] for r in data["regions"] for c in r.get("clients", [])}
    with ExitStack() as stack:
        for host in sorted(hosts):
            sock = stack.enter_context(socket.socket())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, int(data["ssh"]["port"])))
            sock.listen(64)
        yield


def test_two_command_line_runs_at_once_only_one_runs(home: Path, inventory: Path) -> None:
    """Two `bm-upgrade run` started side by side: exactly one reaches preflight; the other
    is refused, by the quick check before its run exists (exit 2) or by the claim (exit 1),
    naming the first either way. The hosts accept connections and never answer, so the first
    run is still in its preflight when the second one starts, however slowly it starts."""
    with silent_hosts(inventory):
        ends, procs = run_side_by_side(inventory)
    reached = [i for i, (_, err) in enumerate(ends) if UNREACHABLE in err]
    assert len(reached) == 1, ends
    winner, loser = reached[0], 1 - reached[0]
    winner_id = ends[winner][0].split("run_id: ", 1)[1].split()[0]
    assert procs[loser].returncode in (1, 2)
    # The command's own one line (besides Dagster's log of the run, when it had one).
    said = [
        line
        for line in ends[loser][1].splitlines()
        if line.startswith(
            (f"failed: run {winner_id} of cluster test", f"error: run {winner_id} of cluster test")
        )
    ]
    assert said, ends[loser][1]


def run_side_by_side(
    inventory: Path,
) -> tuple[list[tuple[str, str]], list[subprocess.Popen[str]]]:
    """Two `bm-upgrade run` of ``inventory`` started at once; their (stdout, stderr)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bm_upgrade.cli", "run", str(inventory)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        ends = [proc.communicate(timeout=180) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return ends, procs


def test_a_run_created_later_stops_for_one_going_elsewhere(home: Path, inventory: Path) -> None:
    """A run of the cluster that another process (the daemon's run worker, another
    `bm-upgrade run`) is executing was first: a run executed here stops naming it; another
    cluster's run is no obstacle."""
    with dg.DagsterInstance.get() as inst:
        other = dg.DagsterRun(
            job_name="upgrade_other",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags={CLUSTER_TAG: "other"},
        )
        inst.add_run(other)
        going = create_run(inst, inventory)
        inst.run_storage.handle_run_event(
            going.run_id,
            dg.DagsterEvent(
                event_type_value=dg.DagsterEventType.RUN_START.value, job_name=going.job_name
            ),
        )
        later = create_run(inst, inventory)
        status, reason = execute(inst, inventory, later)
        assert status == "FAILURE"
        assert f"run {going.run_id} of cluster test (STARTED)" in reason


def fail_in_preflight(path: Path) -> str:
    """`bm-upgrade run`'s path to a run that fails in preflight (nobody answers): its id."""
    outcome = run_upgrade(path)
    assert not outcome.success and outcome.failure and UNREACHABLE in outcome.failure
    return outcome.run_id


def test_rerun_refused_when_the_inventory_changed_unless_accepted(
    home: Path, inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = fail_in_preflight(inventory)
    data = yaml.safe_load(inventory.read_text())
    data["ssh"]["connect_timeout_s"] = 1.5
    inventory.write_text(yaml.safe_dump(data))
    now = inventory_sha256(inventory)

    assert main(["rerun", parent]) == 2
    err = capsys.readouterr().err
    assert f"{inventory} changed since run {parent}" in err and "Traceback" not in err
    assert f"`bm-upgrade rerun {parent} --inventory-changed`" in err
    with dg.DagsterInstance.get() as inst:
        assert [r.run_id for r in inst.get_runs()] == [parent]  # no run created
        # A re-execution from elsewhere (the UI's button) is refused by the run itself.
        with dg.execute_job(
            reconstructable(str(inventory)),
            inst,
            reexecution_options=dg.ReexecutionOptions.from_failure(parent, inst),
        ) as result:
            why = reason(result.all_events)
        assert f"changed since run {parent}" in why
        assert f"{INVENTORY_CHANGE_TAG}={now}" in why

    assert main(["rerun", parent, "--inventory-changed"]) == 1
    captured = capsys.readouterr()
    assert UNREACHABLE in captured.err  # accepted: it got as far as preflight's SSH
    child = captured.out.split("run_id: ", 1)[1].split()[0]
    with dg.DagsterInstance.get() as inst:
        run = inst.get_run_by_id(child)
        assert run is not None and run.parent_run_id == parent
        assert run.tags[INVENTORY_SHA_TAG] == now and run.tags[INVENTORY_CHANGE_TAG] == now


def test_rerun_of_an_unchanged_inventory_needs_no_flag(home: Path, inventory: Path) -> None:
    parent = fail_in_preflight(inventory)
    outcome = rerun(parent)
    assert outcome.failure and UNREACHABLE in outcome.failure


def test_a_lost_claim_is_one_sentence_on_the_command_line(home: Path, inventory: Path) -> None:
    """What `bm-upgrade run` shows when its run loses the claim (another launcher's run
    was created between its quick check and its own run): the sentence, no traceback."""
    with dg.DagsterInstance.get() as inst:
        first = create_run(inst, inventory)
        tags = {
            CLUSTER_TAG: "test",
            INVENTORY_TAG: str(inventory),
            INVENTORY_SHA_TAG: inventory_sha256(inventory),
        }
        outcome = execute_here(
            reconstructable(str(inventory)), inst, dict(QUIET_CONSOLE), tags, on_run_id=None
        )
        lost = [e.dagster_event for e in inst.all_logs(outcome.run_id) if e.dagster_event]
    assert not outcome.success and outcome.failure
    assert outcome.failure.startswith(
        f"run {first.run_id} of cluster test (NOT_STARTED) was created before this one"
    )
    # The failure notification says the same, not "failed before any step ran".
    assert failure_of(lost) == (None, outcome.failure)
