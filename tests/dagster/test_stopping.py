"""defs/stopping.py on a real SQLite instance and with real signals: the earlier failure a step
reads from its run's event log (only this run's, never its own or a parent run's), what one
look costs, and SIGINT/SIGTERM turned into a requested stop inside a step."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import dagster as dg
import pytest

from bm_upgrade.defs.stopping import (
    STOP_TAG,
    earlier_failure,
    requested_stop,
    signals_request_stop,
    stop_tag,
)
from bm_upgrade.procedure import halt

BOOM_ENV = "BM_UPGRADE_TEST_BOOM"
SENTENCE = "tsa-w1b did not reach PASSIVE-STANDBY within 3 s; stripe still served by tsa-w1a"


@dg.op
def boom() -> None:
    if os.environ.get(BOOM_ENV) == "1":
        raise dg.Failure(description=SENTENCE + ".")


@dg.op
def fine() -> None:
    pass


@dg.job(executor_def=dg.in_process_executor)
def two_steps() -> None:
    boom()
    fine()


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.local_temp(str(tmp_path)) as inst:
        yield inst


def run(instance: dg.DagsterInstance, *, fail: bool, parent: str | None = None) -> str:
    os.environ[BOOM_ENV] = "1" if fail else "0"
    try:
        options = dg.ReexecutionOptions.from_failure(parent, instance) if parent else None
        with dg.execute_job(
            dg.reconstructable(two_steps), instance, reexecution_options=options
        ) as result:
            assert result.success is not fail
            return result.run_id
    finally:
        os.environ.pop(BOOM_ENV, None)


def test_an_earlier_failure_of_this_run_only(instance: dg.DagsterInstance) -> None:
    failed = run(instance, fail=True)
    assert earlier_failure(instance, failed, "fine") == (
        f"step boom of this run failed ({SENTENCE}); fix that, then re-execute from failure"
    )
    assert earlier_failure(instance, failed, "boom") is None, "its own failure"
    # The re-execution of the failed run: the parent's failure does not count.
    child = run(instance, fail=False, parent=failed)
    assert earlier_failure(instance, child, "fine") is None
    assert earlier_failure(instance, run(instance, fail=False), "fine") is None


def test_a_stop_tag_counts_only_for_the_run_it_names(instance: dg.DagsterInstance) -> None:
    """`bm-upgrade run` tags its run when it is interrupted, so that step processes stop too;
    a re-execution launched from the UI copies its parent's tags, and must not inherit it."""
    parent = run(instance, fail=True)
    assert requested_stop(instance, parent) is None
    instance.add_run_tags(parent, stop_tag(parent, "the operator interrupted bm-upgrade (SIGTERM)"))
    assert requested_stop(instance, parent) == "the operator interrupted bm-upgrade (SIGTERM)"
    child = run(instance, fail=False, parent=parent)
    parent_run = instance.get_run_by_id(parent)
    assert parent_run is not None
    instance.add_run_tags(child, {STOP_TAG: parent_run.tags[STOP_TAG]})
    assert requested_stop(instance, child) is None, "a copied tag names the parent"
    instance.add_run_tags(child, {STOP_TAG: "not json"})
    assert requested_stop(instance, child) is None


@pytest.fixture
def previous_handlers() -> Iterator[list[int]]:
    """Handlers of the test's own for SIGINT and SIGTERM, recording what reaches them; halt
    reset; everything restored after."""
    seen: list[int] = []

    def record(signum: int, _frame: FrameType | None) -> None:
        seen.append(signum)

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in saved:
        signal.signal(sig, record)
    halt.reset()
    try:
        yield seen
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        halt.reset()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_in_a_step_requests_a_stop_then_reaches_the_previous_handler(
    previous_handlers: list[int], signum: int
) -> None:
    with signals_request_stop("upgrade_mirrors_east_stripe1"):
        signal.raise_signal(signum)
        # Still running: the procedure finishes its server and refuses the next stop.
        assert previous_handlers == []
        reason = halt.stop_reason()
    assert reason == (
        f"interrupted (step upgrade_mirrors_east_stripe1's process received "
        f"{signal.Signals(signum).name}: Ctrl-C, SIGTERM or a terminate of the "
        "run)"
    )
    assert previous_handlers == [signum], "handed on once the step ended"
    signal.raise_signal(signal.SIGINT)
    assert previous_handlers == [signum, signal.SIGINT], "previous handlers restored"


def test_a_step_that_failed_keeps_its_own_error(previous_handlers: list[int]) -> None:
    with (
        pytest.raises(RuntimeError, match="refused"),
        signals_request_stop("upgrade_mirrors_east_stripe1"),
    ):
        signal.raise_signal(signal.SIGINT)
        raise RuntimeError("next stop refused")
    assert previous_handlers == []
    assert halt.stop_reason() is not None


def test_outside_the_main_thread_nothing_changes(previous_handlers: list[int]) -> None:
    before = signal.getsignal(signal.SIGINT)
    inside: list[object] = []

    def step() -> None:
        with signals_request_stop("upgrade_mirrors_east_stripe1"):
            inside.append(signal.getsignal(signal.SIGINT))

    worker = threading.Thread(target=step)
    worker.start()
    worker.join()
    assert inside == [before]
