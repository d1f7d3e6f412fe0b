"""Executing the upgrade job from this process and reading how the run ended: the run's id as
soon as it exists, a stop asked of this process passed on to the run, and the first failed
step's one sentence.

Used by `bm-upgrade run` (:mod:`bm_upgrade.defs.launch`) and `bm-upgrade rerun`
(:mod:`bm_upgrade.defs.rerun`); both execute here rather than through the run queue, so both
first check that no other run of the cluster is queued or going.
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from bm_upgrade.defs.jobs import runs_going
from bm_upgrade.defs.launcher import worker_tags
from bm_upgrade.defs.notify import failure_of
from bm_upgrade.defs.progress import RunWatch
from bm_upgrade.defs.runclaim import inventory_sha256
from bm_upgrade.defs.stopping import stop_tag
from bm_upgrade.errors import UserError
from bm_upgrade.procedure import halt

INVOCATION_TAG = "bm_upgrade/invocation"
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
"""The console shows the steps' progress (INFO), not Dagster's per-event DEBUG lines (what
`bm-upgrade run --verbose` shows)."""
SILENT_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""Dagster's console shows nothing but CRITICAL lines: the command shows the run's progress
itself (defs/progress.py), and the warnings of its steps."""


def console_config(verbose: bool) -> dict[str, Any]:
    """The run config of Dagster's console logger: its lines with ``verbose``, else none."""
    return QUIET_CONSOLE if verbose else SILENT_CONSOLE


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: its id, success, the report (when it got that far), the failure."""

    run_id: str
    success: bool
    report: str | None
    failure: str | None


def reconstructable(inventory_path: str) -> Any:
    """The job of one inventory file, rebuildable in every process Dagster starts."""
    return dg.build_reconstructable_job(
        "bm_upgrade.defs.jobs", "job_for_inventory", reconstructable_args=(inventory_path,)
    )


def _failure(result: dg.JobExecutionResult) -> str | None:
    """The first failed step's one-sentence reason (or why the run could not start its steps),
    without Dagster's wrapping."""
    if result.success:
        return None
    step, reason = failure_of(result.all_events)
    return reason if step is None else f"step {step} failed: {reason}"


def execute_here(
    job: Any,
    inst: dg.DagsterInstance,
    run_config: dict[str, Any],
    tags: dict[str, str],
    *,
    on_run_id: Callable[[str], None] | None,
    reexecution: dg.ReexecutionOptions | None = None,
    watch: RunWatch | None = None,
) -> RunOutcome:
    """Execute in a thread while this one reports the run id as soon as the run exists,
    then has ``watch`` follow the run until it ends.

    The run's tags record this process as its worker, so that a run whose process was
    killed is recognised (``rerun``, the daemon's run monitoring: defs/launcher.py).
    """
    invocation = uuid.uuid4().hex
    tags = {**tags, **worker_tags(), INVOCATION_TAG: invocation}
    halt.reset()  # a stop requested during an earlier run of this process is not this run's
    box: dict[str, Any] = {}
    in_process = job.get_definition().executor_def is dg.in_process_executor

    def work() -> None:
        if in_process:
            # Processes started here (Dagster's mirrors of the step's log to the terminal)
            # inherit this thread's blocked signals: a Ctrl-C then reaches only this process,
            # whose main thread asks the run to finish safely (cli.py). Not SIGTERM: Dagster
            # stops those mirrors with it. Step processes of the multiprocess executor keep
            # SIGINT: they handle it themselves (defs/stopping.py).
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with dg.execute_job(
                job, inst, run_config=run_config, tags=tags, reexecution_options=reexecution
            ) as result:
                box["result"] = result
                box["report"] = result.output_for_node("report") if result.success else None
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=work, name="bm-upgrade-run", daemon=True)
    thread.start()
    run_id: str | None = None
    announced = stop_tagged = False
    try:
        while thread.is_alive():
            if run_id is None:
                runs = inst.get_runs(
                    filters=dg.RunsFilter(tags={INVOCATION_TAG: invocation}), limit=1
                )
                run_id = runs[0].run_id if runs else None
            if run_id is not None and not announced:
                if on_run_id:
                    on_run_id(run_id)
                if watch:
                    watch.follow(inst, run_id)
                announced = True
            requested = halt.stop_reason()
            if run_id is not None and requested is not None and not stop_tagged:
                # Step processes (multiprocess executor) do not share this process's halt:
                # the run's tag tells them (defs/stopping.py).
                inst.add_run_tags(run_id, stop_tag(run_id, requested))
                stop_tagged = True
            thread.join(0.2)
        if "error" in box:
            raise box["error"]
        result: dg.JobExecutionResult = box["result"]
        if not announced:
            if on_run_id:
                on_run_id(result.run_id)
            if watch:
                watch.follow(inst, result.run_id)
    finally:
        if watch:
            watch.finish()
    return RunOutcome(result.run_id, result.success, box["report"], _failure(result))


def one_run_per_cluster(inst: dg.DagsterInstance, cluster: str) -> None:
    """A run from the command line does not pass through the run queue (it executes here):
    refuse it while another run of the cluster is queued or going, as the queue would wait.
    A quick message only: two launches at the same moment both pass it, and the runs' own
    claim (defs/runclaim.py) lets the first created go on."""
    going = runs_going(inst, cluster)
    if going:
        raise UserError(
            f"run {going[0].run_id} of cluster {cluster} has not ended "
            f"({going[0].status.value}); one run per cluster at a time: wait for "
            "it to end (or cancel it in the UI), then run again"
        )


def read_inventory_sha256(path: str) -> str:
    """The inventory file's sha256 (the run's tag).

    Raises:
        UserError: the file cannot be read.
    """
    try:
        return inventory_sha256(path)
    except OSError as exc:
        raise UserError(f"inventory {path} cannot be read ({exc}); restore it") from exc
