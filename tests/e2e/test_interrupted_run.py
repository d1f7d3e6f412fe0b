"""`bm-upgrade run` interrupted in the middle of a stripe step, on a real sandbox.

Ctrl-C (SIGINT to the command's process group): the step finishes its current action, starts
no new stop, the run ends FAILURE (not STARTED forever) and the command exits 1; `rerun`
completes the upgrade. kill -9: the run is left STARTED with nobody executing it; `rerun`
sees that its process is gone, marks it failed, says so and completes the upgrade. Each test
has a sandbox of its own; every process is stopped by its PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.dagster import processes
from tests.e2e.conftest import E2ESandbox, e2e_sandbox
from tests.e2e.journal_check import stops, violations

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("dagster_home")]
TOPOLOGIES = Path(__file__).parent / "topologies"


def with_policy(sandbox: E2ESandbox, **policy: object) -> Path:
    """A copy of the sandbox's inventory with policy changes."""
    data = yaml.safe_load(sandbox.inventory_path.read_text())
    data.setdefault("policy", {}).update(policy)
    path = sandbox.directory / "inventory-variant.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def sandbox() -> Iterator[E2ESandbox]:
    with e2e_sandbox("small") as sb:
        yield sb


def test_no_leftover_check_sees_a_process_of_the_instance(dagster_home: Path) -> None:
    """The leftover check below is able to fail."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", str(dagster_home)],
        stdin=subprocess.PIPE,
    )
    try:
        # Its command line shows in /proc once the child has exec'ed: wait for it.
        processes.wait_until(
            lambda: bool(leftovers(dagster_home)), 30, "the process to show in the leftover check"
        )
        assert any(str(proc.pid) == line.split(":")[0] for line in leftovers(dagster_home))
    finally:
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stdin is not None
        proc.stdin.close()
    assert not leftovers(dagster_home)


@dataclass
class Command:
    """A `bm-upgrade` command running in a session of its own, its output in files."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    @property
    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def run_id(self) -> str:
        line = next(x for x in self.stdout.splitlines() if x.startswith("run_id: "))
        return line.removeprefix("run_id: ").strip()

    def stop(self) -> None:
        processes.stop(self.proc)


def bm_upgrade(args: list[str], folder: Path, name: str) -> Command:
    out, err = folder / f"{name}.out", folder / f"{name}.err"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bm_upgrade.cli", *args],
            stdout=o,
            stderr=e,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Command(proc, out, err)


def run_until_the_first_stop(sandbox: E2ESandbox, folder: Path) -> tuple[Command, float]:
    """`bm-upgrade run` started and seen to stop a server of the stripe (from the journal)."""
    since = time.time()
    command = bm_upgrade(["run", str(sandbox.inventory_path)], folder, "run")
    processes.wait_until(
        lambda: bool(stops(sandbox.journal_path, since)) or command.proc.poll() is not None,
        180,
        "the run to stop the stripe's first server",
    )
    assert command.proc.poll() is None, command.stderr[-3000:]
    return command, since


def leftovers(home: Path) -> list[str]:
    """Processes whose command line names a file of the instance (Dagster's log mirrors)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(home) in line:
            found.append(f"{proc.name}: {line}")
    return found


def run_status(run_id: str) -> dg.DagsterRunStatus:
    run = dg.DagsterInstance.get().get_run_by_id(run_id)
    assert run is not None
    return run.status


def rerun_completes(sandbox: E2ESandbox, run_id: str, folder: Path) -> Command:
    again = bm_upgrade(["rerun", run_id], folder, "rerun")
    try:
        assert again.proc.wait(timeout=300) == 0, again.stderr[-3000:]
    finally:
        again.stop()
    assert "Every node runs 4.2.1." in again.stdout
    assert run_status(again.run_id()) == dg.DagsterRunStatus.SUCCESS
    assert sandbox.verify()["lost"] == 0
    return again


def test_ctrl_c_finishes_the_step_safely_and_rerun_completes(
    sandbox: E2ESandbox, tmp_path: Path, dagster_home: Path
) -> None:
    command, since = run_until_the_first_stop(sandbox, tmp_path)
    try:
        os.killpg(command.proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        processes.wait_until(
            lambda: "SIGINT received" in command.stderr,
            30,
            "the command to say it is finishing safely",
        )
        handled = time.time()
        os.killpg(command.proc.pid, signal.SIGINT)  # a second Ctrl-C hurries nothing
        assert command.proc.wait(timeout=240) == 1, command.stderr[-3000:]
    finally:
        command.stop()
    ended = time.time()
    err = command.stderr
    # Dagster's mirrors of the step's log did not outlive the command.
    processes.wait_until(lambda: not leftovers(dagster_home), 30, "no leftover processes")
    assert "SIGINT received: finishing the current step safely" in err
    assert "SIGINT received: still finishing the current step safely" in err
    # The mirror in progress was finished by its step, which then ended naming the stop.
    assert "failed: step upgrade_mirrors_east_stripe1 failed: " in err
    assert "the operator interrupted bm-upgrade (SIGINT)" in err
    assert "Traceback" not in err
    run_id = command.run_id()
    assert run_status(run_id) == dg.DagsterRunStatus.FAILURE
    # No stripe lost both servers, nothing was stopped once the signal was handled.
    assert (
        violations(sandbox.journal_path, sandbox.inventory, "4.2.1", since=since, until=ended) == []
    )
    assert stops(sandbox.journal_path, handled) == []
    rerun_completes(sandbox, run_id, tmp_path)
    # The re-execution starts from the failed step: the journal is checked from the run's
    # start (its probes and staging) to the rerun's end.
    assert (
        violations(sandbox.journal_path, sandbox.inventory, "4.2.1", since=since, until=time.time())
        == []
    )


def test_run_killed_with_sigkill_is_recognised_by_rerun(
    sandbox: E2ESandbox, tmp_path: Path
) -> None:
    command, since = run_until_the_first_stop(sandbox, tmp_path)
    pid = command.proc.pid
    os.killpg(pid, signal.SIGKILL)
    command.proc.wait(timeout=30)
    run_id = command.run_id()
    assert run_status(run_id) == dg.DagsterRunStatus.STARTED  # nobody left to say otherwise
    again = rerun_completes(sandbox, run_id, tmp_path)
    assert f"run {run_id} was left STARTED but its worker, process {pid} on " in again.stderr
    assert "is gone (killed?): marked it FAILURE" in again.stderr
    assert run_status(run_id) == dg.DagsterRunStatus.FAILURE
    assert (
        violations(sandbox.journal_path, sandbox.inventory, "4.2.1", since=since, until=time.time())
        == []
    )


def test_sigterm_to_the_command_alone_stops_the_step_processes_too(tmp_path: Path) -> None:
    """SIGTERM to the `bm-upgrade run` process only (as `kill PID` or a service manager
    sends it), while stripes run side by side in step processes of their own (which the
    signal does not reach): the command tags the run, every step process sees the tag before
    its next stop, the run ends FAILURE, no stripe lost both servers, and rerun completes."""
    with e2e_sandbox(str(TOPOLOGIES / "halt3.yaml")) as sandbox:
        variant = with_policy(sandbox, parallel_stripes=2)
        since = time.time()
        command = bm_upgrade(["run", str(variant)], tmp_path, "run")
        try:
            processes.wait_until(
                lambda: bool(stops(sandbox.journal_path, since)) or command.proc.poll() is not None,
                180,
                "the run to stop a stripe's first server",
            )
            assert command.proc.poll() is None, command.stderr[-3000:]
            os.kill(command.proc.pid, signal.SIGTERM)  # the command alone, not its group
            processes.wait_until(
                lambda: "SIGTERM received" in command.stderr,
                30,
                "the command to say it is finishing safely",
            )
            tagged = time.time()
            assert command.proc.wait(timeout=240) == 1, command.stderr[-3000:]
        finally:
            command.stop()
        ended = time.time()
        err = command.stderr
        assert "the operator interrupted bm-upgrade (SIGTERM)" in err
        assert "Traceback" not in err
        run_id = command.run_id()
        assert run_status(run_id) == dg.DagsterRunStatus.FAILURE
        assert (
            violations(sandbox.journal_path, sandbox.inventory, "4.2.1", since=since, until=ended)
            == []
        )
        # A step process checks the tag right before each stop; one that checked just
        # before the tag was written may still stop its server (then finishes it safely).
        assert stops(sandbox.journal_path, tagged + 1.0) == []
        rerun_completes(sandbox, run_id, tmp_path)
