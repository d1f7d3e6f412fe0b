"""The run launcher's worker health check (defs/launcher.py) on real processes: a live worker
is RUNNING, a dead one FAILED, for the tags `bm-upgrade run` records and for Dagster's own
"Started process for run" event; and dagster-daemon's run monitoring, configured by
bm_upgrade's dagster.yaml, marks the run of a killed worker failed and leaves a live one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import EngineEventData
from dagster._core.launcher import WorkerStatus

from bm_upgrade.defs.instance import INSTANCE_YAML, prepare_instance
from bm_upgrade.defs.launcher import (
    WORKER_HOST_TAG,
    WORKER_PID_TAG,
    WORKER_START_TAG,
    LocalRunLauncher,
    process_start,
    worker_tags,
)
from tests.dagster import processes

LOCATION = Path(__file__).with_name("queue_location.py")


@contextmanager
def worker() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing in for a run worker (it waits for its stdin to close)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stdin is not None
        proc.stdin.close()


def kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)  # reaped: the pid no longer names a process


def tags_of(pid: int) -> dict[str, str]:
    return {
        WORKER_HOST_TAG: socket.gethostname(),
        WORKER_PID_TAG: str(pid),
        WORKER_START_TAG: process_start(pid) or "",
    }


def started_run(inst: dg.DagsterInstance, tags: dict[str, str]) -> dg.DagsterRun:
    run = dg.DagsterRun(
        job_name="upgrade_test",
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTED,
        tags=tags,
    )
    return inst.add_run(run)


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    prepare_instance(tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


def health(inst: dg.DagsterInstance, run: dg.DagsterRun) -> WorkerStatus:
    launcher = inst.run_launcher
    assert isinstance(launcher, LocalRunLauncher)  # what bm_upgrade's dagster.yaml names
    assert launcher.supports_check_run_worker_health
    return launcher.check_run_worker_health(run).status


def test_worker_recorded_by_tags_is_running_then_failed(inst: dg.DagsterInstance) -> None:
    with worker() as proc:
        run = started_run(inst, tags_of(proc.pid))
        assert health(inst, run) == WorkerStatus.RUNNING
        kill(proc)
        assert health(inst, run) == WorkerStatus.FAILED


def test_a_reused_pid_is_not_the_worker(inst: dg.DagsterInstance) -> None:
    with worker() as proc:
        # The pid runs, but a process that started at another time than the recorded one.
        run = started_run(inst, {**tags_of(proc.pid), WORKER_START_TAG: "boot/1"})
        assert health(inst, run) == WorkerStatus.FAILED


def test_this_process_records_itself() -> None:
    tags = worker_tags()
    assert tags[WORKER_PID_TAG] == str(os.getpid())
    assert tags[WORKER_START_TAG] == process_start(os.getpid()) != ""


def test_worker_on_another_host_or_unrecorded_is_never_failed(inst: dg.DagsterInstance) -> None:
    elsewhere = {
        WORKER_HOST_TAG: "not-" + socket.gethostname(),
        WORKER_PID_TAG: "1",
        WORKER_START_TAG: "x",
    }
    assert health(inst, started_run(inst, elsewhere)) == WorkerStatus.RUNNING
    assert health(inst, started_run(inst, {})) == WorkerStatus.RUNNING


def test_worker_from_dagsters_started_process_event(inst: dg.DagsterInstance) -> None:
    with worker() as proc:
        # A UI re-execution copies the parent's tags: the event of the run's own worker wins.
        run = started_run(inst, {**tags_of(os.getpid()), WORKER_START_TAG: "boot/1"})
        inst.report_engine_event(
            f"Started process for run (pid: {proc.pid}).", run, EngineEventData.in_process(proc.pid)
        )
        assert health(inst, run) == WorkerStatus.RUNNING
        kill(proc)
        assert health(inst, run) == WorkerStatus.FAILED


@pytest.mark.slow
def test_daemon_marks_the_run_of_a_killed_worker_failed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    fast = INSTANCE_YAML.replace("poll_interval_seconds: 15", "poll_interval_seconds: 1")
    assert fast != INSTANCE_YAML
    (home / "dagster.yaml").write_text(fast)
    prepare_instance(home)
    log = home / "daemon.log"
    with worker() as dead, worker() as alive, dg.DagsterInstance.from_config(str(home)) as inst:
        gone = started_run(inst, tags_of(dead.pid))
        going = started_run(inst, tags_of(alive.pid))
        kill(dead)
        daemon = processes.start("dagster-daemon", ["run", "-f", str(LOCATION)], home, log)
        try:

            def status(run: dg.DagsterRun) -> dg.DagsterRunStatus:
                found = inst.get_run_by_id(run.run_id)
                assert found is not None
                return found.status

            processes.wait_until(
                lambda: status(gone) == dg.DagsterRunStatus.FAILURE,
                90,
                f"the daemon to mark the dead worker's run failed ({log})",
            )
            checked = log.read_text().count(f"Checking run {going.run_id}")
            processes.wait_until(
                lambda: log.read_text().count(f"Checking run {going.run_id}") > checked,
                30,
                "one more monitoring pass over the live worker's run",
            )
            assert status(going) == dg.DagsterRunStatus.STARTED
        finally:
            processes.stop(daemon)
        messages = [e.message for e in inst.all_logs(gone.run_id)]
        assert any(
            f"process {dead.pid} on {socket.gethostname()}, is gone" in m for m in messages
        ), messages
