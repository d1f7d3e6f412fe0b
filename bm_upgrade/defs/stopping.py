"""When a step of a run starts no new disruptive work, seen from Dagster's side (docs/safety.md
rules 11 and 12; the procedure's side is ``procedure/halt.py``).

- :func:`failure_check`: the ``halted`` callback the procedure asks before every disruptive
  action. It reads the run's :data:`STOP_TAG` (a stop the operator asked of the whole run),
  then the run's STEP_FAILURE events from the instance's event log: every step
  stores its own events there, in process (``parallel_stripes`` 1) as in the multiprocess
  executor's step processes, so a step sees its siblings' failures as soon as they are
  stored. Only this run's events count: a re-execution's parent failures are the reason it
  was started. One look is one query of the run's events, small beside the stop it precedes
  (``bench/bench_stopping.py`` prints what it costs).
- :func:`signals_request_stop`: inside a step's process (the multiprocess executor, or a run
  worker started by the UI), SIGINT and SIGTERM ask the procedure to stop at the next
  disruptive action instead of raising in the middle of one: Dagster delivers both a Ctrl-C
  and the UI's "terminate" to the step as SIGINT (``dagster._utils.interrupts``), and an
  exception raised between stopping an active and seeing its successor take over could
  leave a stripe without its server.

What a stop request does, by where the op runs:

- multiprocess executor (``parallel_stripes`` > 1): a Ctrl-C reaches every step process (one
  process group); the UI's terminate reaches the run worker, whose executor stops launching
  steps and asks each step process to stop (SIGINT) and waits for them. Each stripe step
  finishes the server it is on (started, confirmed) and fails naming the interrupt at its
  next stop; every other stripe step then finds that failure.
- in-process executor in a run worker (a run launched from the UI): the op runs in the main
  thread, so the same holds for the step in progress; the steps after it find its failure.
- in-process executor of ``bm-upgrade run``: the op runs in a worker thread; the CLI's own
  handlers ask for the stop (``halt.request_stop``).

A process killed without warning (SIGKILL, a lost machine) gives its step no chance: the next
run or re-execution finds the stripe as it was left and completes it (docs/safety.md rule 11).
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import dagster as dg

from bm_upgrade.defs.pausing import is_pause
from bm_upgrade.procedure import halt

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def failure_reason(event: dg.DagsterEvent) -> str:
    """A failed step's one-sentence reason, without Dagster's wrapping."""
    data = event.step_failure_data
    if data.user_failure_data and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    while error is not None and error.cause is not None:
        error = error.cause  # the user's exception, under Dagster's wrapper
    return error.message.strip() if error else "unknown error"


def earlier_failure(instance: dg.DagsterInstance, run_id: str, step_key: str) -> str | None:
    """The sentence that stops new disruptive work: the first failed step of the run
    ``run_id`` other than ``step_key`` itself, or None when no other step failed."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or event.step_key == step_key or is_pause(event):
            continue  # a pause lets the stripes in progress finish (defs/pausing.py)
        reason = failure_reason(event).rstrip(".")
        return (
            f"step {event.step_key} of this run failed ({reason}); fix that, then "
            "re-execute from failure"
        )
    return None


STOP_TAG = "bm_upgrade/stop_requested"
"""A run tag: why the whole run was asked to start no new disruptive work (``bm-upgrade run``
sets it on SIGINT/SIGTERM, so that step processes of the multiprocess executor, which a
signal to the command's own pid does not reach, stop too)."""


def stop_tag(run_id: str, reason: str) -> dict[str, str]:
    """The run tag that asks the run ``run_id`` to stop. It names the run: the UI copies a
    parent run's tags to its re-execution, which must not inherit the stop."""
    return {STOP_TAG: json.dumps({"run_id": run_id, "reason": reason})}


TERMINATED = (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED)
"""Statuses Dagster's terminate gives a run (the UI's Terminate, ``cancel_run``), also when
it cannot reach the run's process and only marks the run (a `bm-upgrade run` process, or
"force termination")."""


def requested_stop(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """Why the run ``run_id`` was asked to stop (its :data:`STOP_TAG`), or None. A run
    terminated through Dagster counts as asked to stop too: once the instance marks it
    CANCELING or CANCELED, another run of its cluster may start, so this one must start no
    new disruptive work whether or not the terminate reached its process."""
    run = instance.get_run_by_id(run_id)
    if run is not None and run.status in TERMINATED:
        return f"the run was terminated ({run.status.value}) through Dagster"
    value = run.tags.get(STOP_TAG) if run is not None else None
    try:
        asked = json.loads(value) if value else None
    except ValueError:
        return None
    if not isinstance(asked, dict) or asked.get("run_id") != run_id:
        return None
    return str(asked.get("reason") or "a stop was requested")


def failure_check(
    context: dg.OpExecutionContext, continue_on_failure: bool
) -> Callable[[], str | None]:
    """The step's ``halted`` callback: a stop asked of the whole run, then (unless the run's
    policy lets other stripes go on) an earlier failed step of the run."""
    instance, run_id = context.instance, context.run_id
    step_key = context.get_step_execution_context().step.key

    def halted() -> str | None:
        asked = requested_stop(instance, run_id)
        if asked is not None:
            return (
                f"{asked}; nothing was changed by this step; rerun (or re-execute from "
                "failure) to go on"
            )
        if continue_on_failure:
            return None
        return earlier_failure(instance, run_id, step_key)

    return halted


@contextmanager
def signals_request_stop(step_key: str) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM ask the procedure to stop at its next disruptive
    action (:func:`halt.request_stop`) instead of raising; the previous handlers come back on
    leaving.

    Only in a process's main thread, where Python runs signal handlers: there the op runs in a
    step process of the multiprocess executor, or in a run worker. In the in-process executor
    of ``bm-upgrade run`` the op runs in a worker thread and the CLI's main thread handles
    the signals: nothing is changed here then.

    A signal received while the block ran is handed to the previous handler once the block
    has ended without an error (Dagster's handler then ends the step as interrupted and the
    executor stops launching steps). When the block raised (the procedure refused its next
    disruptive action, naming the interrupt), that error is the step's outcome.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        if not received:
            halt.request_stop(
                f"interrupted (step {step_key}'s process received "
                f"{signal.Signals(signum).name}: Ctrl-C, SIGTERM or a terminate of the run)"
            )
        received.append(signum)

    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, request_stop)
    failed = True
    try:
        yield
        failed = False
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
        if received and not failed:
            before = previous[received[0]]
            if callable(before):
                before(received[0], None)
            elif before == signal.SIG_DFL:
                signal.raise_signal(received[0])
