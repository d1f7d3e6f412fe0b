"""Whether a run's worker process is still alive on this host, for Dagster's run monitoring
(dagster-daemon) and for `bm-upgrade rerun` of a run whose process was killed.

Dagster's :class:`~dagster.DefaultRunLauncher` cannot tell (``supports_check_run_worker_health``
is False), so with run monitoring on, a run whose worker died stays STARTED forever and the
one-run-per-cluster rule refuses every later run of that cluster. :class:`LocalRunLauncher`
launches as the default one does and answers the health check from the worker's process:

- a run launched by the daemon or the webserver: the pid of Dagster's engine event "Started
  process for run (pid: N)" (its ``pid`` metadata), the event's time guarding against a
  reused pid (the process must have started before the event);
- otherwise, a run started by `bm-upgrade run` or `rerun` (executed in that process, which
  stores no such event): the tags :func:`worker_tags` recorded at launch (host, pid, and the
  process's start time, which guards against a reused pid).

A worker on another host, or a run without either record, is reported RUNNING: this host
cannot tell, and a wrong "failed" would let a second run start beside a live one.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

WORKER_HOST_TAG = "bm_upgrade/worker_host"
WORKER_PID_TAG = "bm_upgrade/worker_pid"
WORKER_START_TAG = "bm_upgrade/worker_start"
STARTED_PROCESS = "Started process for run (pid: "
"""The start of the engine event a run worker started by Dagster stores first."""
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
CLOCK_SLACK_S = 2.0
"""A process's start time from /proc is known to the second (the boot time's precision)."""


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def process_start(pid: int) -> str | None:
    """An identity of process ``pid`` on this host, ``<boot id>/<start in clock ticks since
    boot>``, or None when no such process runs (an exited, unreaped zombie is gone)."""
    fields = _stat(pid)
    if fields is None or len(fields) < 20 or fields[0] in {"Z", "X", "x"}:
        return None
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        boot = "?"
    return f"{boot}/{fields[19]}"


def _started_at(pid: int) -> float | None:
    """When process ``pid`` started (unix seconds), or None when it does not run."""
    fields = _stat(pid)
    if fields is None or len(fields) < 20 or fields[0] in {"Z", "X", "x"}:
        return None
    try:
        with open("/proc/stat", encoding="ascii") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def worker_tags() -> dict[str, str]:
    """Tags that record this process as the run's worker (``bm-upgrade run`` and ``rerun``)."""
    pid = os.getpid()
    return {
        WORKER_HOST_TAG: socket.gethostname(),
        WORKER_PID_TAG: str(pid),
        WORKER_START_TAG: process_start(pid) or "",
    }


@dataclass(frozen=True)
class WorkerState:
    """What this host knows of a run's worker: ``gone`` True/False, or None (cannot tell)."""

    gone: bool | None
    text: str


def _from_tags(tags: Mapping[str, str]) -> WorkerState | None:
    host, pid = tags.get(WORKER_HOST_TAG), tags.get(WORKER_PID_TAG, "")
    if host is None or not pid.isdigit():
        return None
    where = f"process {pid} on {host}"
    if host != socket.gethostname():
        return WorkerState(None, f"its worker is {where}, which this host cannot see")
    start = process_start(int(pid))
    if start is None or start != tags.get(WORKER_START_TAG, start):
        return WorkerState(True, f"its worker, {where}, is gone")
    return WorkerState(False, f"its worker, {where}, is running")


def _engine_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[int, float] | None:
    """The pid and time of the run's last "Started process for run" event, if any."""
    found = None
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event is None or not (event.message or "").startswith(STARTED_PROCESS):
            continue
        metadata: Mapping[str, Any] = event.engine_event_data.metadata or {}
        value = metadata.get("pid")
        text = str(getattr(value, "value", value))
        if text.isdigit():
            found = (int(text), entry.timestamp)
    return found


def _grpc_host(run: dg.DagsterRun) -> str | None:
    """The code server's host the run was launched through (DefaultRunLauncher's tag)."""
    import json

    from dagster._core.storage.tags import GRPC_INFO_TAG

    try:
        info = json.loads(run.tags.get(GRPC_INFO_TAG, "{}"))
    except ValueError:
        return None
    host = info.get("host") if isinstance(info, dict) else None
    return host if isinstance(host, str) else None


def worker_state(instance: dg.DagsterInstance, run: dg.DagsterRun) -> WorkerState:
    """Whether the process executing ``run`` is gone, from this host's point of view."""
    # The engine event first: a re-execution launched from the UI copies the parent run's
    # tags, so a run with that event may carry the worker tags of another process.
    started = _engine_pid(instance, run)
    if started is None:
        return _from_tags(run.tags) or WorkerState(None, "it records no worker process")
    pid, at = started
    host = _grpc_host(run)
    if host is not None and host not in LOCAL_HOSTS | {socket.gethostname()}:
        return WorkerState(
            None,
            f"its worker is process {pid} behind the code server on "
            f"{host}, which this host cannot see",
        )
    began = _started_at(pid)
    # A pid reused by a later process started after the worker's "Started process" event.
    if began is None or began > at + CLOCK_SLACK_S:
        return WorkerState(True, f"its worker, process {pid} on this host, is gone")
    return WorkerState(False, f"its worker, process {pid} on this host, is running")


_ENDED = (
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.STEP_SKIPPED,
)


def unfinished_steps(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The steps of ``run_id`` that started and never ended (what its worker was doing)."""
    started: dict[str, None] = {}
    ended: set[str] = set()
    for kind in (dg.DagsterEventType.STEP_START, *_ENDED):
        for record in instance.get_records_for_run(run_id, of_type=kind).records:
            event = record.event_log_entry.dagster_event
            if event is None or event.step_key is None:
                continue
            if kind is dg.DagsterEventType.STEP_START:
                started[event.step_key] = None
            else:
                ended.add(event.step_key)
    return [step for step in started if step not in ended]


def worker_gone_sentence(instance: dg.DagsterInstance, run: dg.DagsterRun, why: str) -> str:
    """Run monitoring's one sentence for a run whose worker is gone: which steps it left
    unfinished and the way out."""
    steps = unfinished_steps(instance, run.run_id)
    doing = (
        f"step {', '.join(steps)} had started and not finished"
        if steps
        else "no step was in progress"
    )
    return (
        f"{why}: {doing}, so the cluster is as the killed worker left it; look with "
        f"`bm-upgrade status`, then re-execute run {run.run_id} from failure "
        f"(`bm-upgrade rerun {run.run_id}`, or Re-execute from failure in the UI): it looks "
        "at every node first and completes what the step left undone"
    )


class LocalRunLauncher(dg.DefaultRunLauncher):
    """Dagster's default launcher, plus a run worker health check for workers on this host,
    and a terminate for runs of `bm-upgrade run` and `rerun` (see :meth:`terminate`)."""

    def terminate(self, run_id: str) -> bool:
        """Terminate a run (the UI's Terminate). A run executed by `bm-upgrade run` or
        `rerun` has no code server to ask: it is marked CANCELING, which its steps read
        before every disruptive action (defs/stopping.py), so the step in progress finishes
        what it is doing and no new disruptive work starts; the run then ends CANCELED."""
        from dagster._core.storage.tags import GRPC_INFO_TAG

        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished or GRPC_INFO_TAG in run.tags:
            return bool(super().terminate(run_id))  # type: ignore[no-untyped-call]
        if WORKER_PID_TAG not in run.tags:
            return bool(super().terminate(run_id))  # type: ignore[no-untyped-call]
        self._instance.report_run_canceling(
            run,
            message="Terminate asked of a run executed by bm-upgrade: its steps start no new "
            "disruptive work, the step in progress finishes safely, then the run ends",
        )
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        state = worker_state(self._instance, run)
        if state.gone:
            return CheckRunHealthResult(
                WorkerStatus.FAILED, worker_gone_sentence(self._instance, run, state.text)
            )
        # Alive, or this host cannot tell: never fail a run that may still be going.
        return CheckRunHealthResult(WorkerStatus.RUNNING, state.text)
