"""Following a run's events as they are written, for the terminal of `bm-upgrade run`,
`rerun` and `demo`.

A thread reads the run's new event records from the instance (``get_records_for_run`` from a
cursor, every :data:`POLL_S` seconds: the same on SQLite and PostgreSQL, and whichever
executor runs the steps, in this process or in processes of their own), turns each into a
:class:`~bm_upgrade.progress_state.Happening` and hands the state to a
:class:`~bm_upgrade.progress_terminal.ProgressDisplay`. The time left comes from the
cluster's predicted step times (:mod:`bm_upgrade.defs.prediction`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import dagster as dg

from bm_upgrade.defs.config import RunSettings, checked_config
from bm_upgrade.defs.prediction import Prediction, predict
from bm_upgrade.errors import UserError
from bm_upgrade.inventory import Inventory
from bm_upgrade.inventory_checks import stripe_nodes
from bm_upgrade.progress_state import (
    Happening,
    Kind,
    RunState,
    StepProgress,
    StripeProgress,
    advance,
    finish,
    ordered,
)
from bm_upgrade.progress_terminal import ProgressDisplay

POLL_S = 0.5
"""Seconds between two reads of the run's new events (and two redraws)."""
_BATCH = 1000

_KINDS: dict[dg.DagsterEventType, Kind] = {
    dg.DagsterEventType.RUN_START: "run_start",
    dg.DagsterEventType.STEP_START: "start",
    dg.DagsterEventType.STEP_RESTARTED: "start",
    dg.DagsterEventType.STEP_UP_FOR_RETRY: "retry",
    dg.DagsterEventType.STEP_SUCCESS: "success",
    dg.DagsterEventType.STEP_FAILURE: "failure",
    dg.DagsterEventType.STEP_SKIPPED: "skipped",
    dg.DagsterEventType.RUN_SUCCESS: "run_end",
    dg.DagsterEventType.RUN_FAILURE: "run_end",
    dg.DagsterEventType.RUN_CANCELED: "run_end",
}


def happenings(entries: Iterator[dg.EventLogEntry]) -> Iterator[Happening]:
    """The events the progress shows: step and run changes, and log lines."""
    for entry in entries:
        event = entry.dagster_event
        if event is None:
            yield Happening(
                "log", entry.timestamp, entry.step_key, entry.user_message, int(entry.level)
            )
            continue
        kind = _KINDS.get(event.event_type)
        if kind is not None:
            yield Happening(kind, entry.timestamp, entry.step_key)


def stripes_of(inventory: Inventory) -> list[StripeProgress]:
    """Every stripe of the inventory with its servers and its two steps."""
    stripes = []
    for region, stripe in inventory.stripes():
        mirrors, failover = stripe_nodes(region.name, stripe.name)
        servers = tuple(server.name for server in stripe.servers)
        stripes.append(StripeProgress(f"{region.name}/{stripe.name}", servers, mirrors, failover))
    return stripes


def prediction_for(
    inst: dg.DagsterInstance, inventory: Inventory, run_config: dict[str, Any]
) -> Prediction | None:
    """The predicted step times of a run with ``run_config`` (None when the config has no
    preflight config of this version of bm_upgrade; the run itself then says why)."""
    config = run_config.get("ops", {}).get("preflight", {}).get("config")
    if not isinstance(config, dict):
        return None
    try:
        settings = RunSettings.from_config(checked_config(config, fix="-"), inventory)
        return predict(inst, inventory, settings.options)
    except UserError:
        return None  # the run's preflight says what is wrong with its config


def _done_before(stripe: StripeProgress, keys: list[str]) -> int:
    """The stripe's servers done by an earlier run, when this one (a re-execution) does not
    run all its steps: those steps succeeded then."""
    if stripe.mirrors_step in keys:
        return 0
    return stripe.total - 1 if stripe.failover_step in keys else stripe.total


class RunWatch:
    """Follows one run on a display, from :meth:`follow` (the run exists) to :meth:`finish`
    (it ended)."""

    def __init__(
        self,
        display: ProgressDisplay,
        stripes: list[StripeProgress],
        prediction: Prediction | None,
        poll_s: float = POLL_S,
    ) -> None:
        self.display = display
        self._stripes = stripes
        self._prediction = prediction
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inst: dg.DagsterInstance | None = None
        self._run_id = ""
        self._cursor: str | None = None
        self.state: RunState | None = None
        self.reads = 0
        self.busy_s = 0.0
        """CPU seconds the following thread spent reading events and drawing (what following
        costs the process that runs the steps)."""

    @classmethod
    def of(
        cls,
        display: ProgressDisplay,
        inst: dg.DagsterInstance,
        inventory: Inventory,
        run_config: dict[str, Any],
    ) -> RunWatch:
        """The watch of a run of ``inventory``'s job with ``run_config`` (a dry run shows no
        stripe bars: it upgrades no server)."""
        config = run_config.get("ops", {}).get("preflight", {}).get("config", {})
        dry_run = isinstance(config, dict) and bool(config.get("dry_run"))
        return cls(
            display,
            [] if dry_run else stripes_of(inventory),
            prediction_for(inst, inventory, run_config),
        )

    def follow(self, inst: dg.DagsterInstance, run_id: str) -> None:
        """Start showing the run (it exists in ``inst``). The run goes on whatever happens
        here: a run that cannot be read is one notice, and no progress."""
        if self._thread is not None:
            return
        try:
            self.state = self._first_state(inst, run_id)
        except Exception as exc:  # the upgrade goes on without its progress shown
            self.display.notice(f"progress: cannot read run {run_id} ({exc}); not shown")
            return
        self._inst, self._run_id = inst, run_id
        self.display.begin(self.state)
        self._thread = threading.Thread(target=self._loop, name="bm-upgrade-progress", daemon=True)
        self._thread.start()

    def _first_state(self, inst: dg.DagsterInstance, run_id: str) -> RunState:
        """The run's steps (those it executes, a re-execution's only), all waiting."""
        run = inst.get_run_by_id(run_id)
        if run is None:
            raise LookupError("no such run in the instance")
        keys: list[str] = []
        if run.execution_plan_snapshot_id:
            plan = inst.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
            keys = list(plan.step_keys_to_execute)
        stripes = [
            replace(s, floor=_done_before(s, keys))
            for s in self._stripes
            if s.mirrors_step in keys or s.failover_step in keys
        ]
        title = f"run {run_id[:8]}"
        if run.parent_run_id:
            title += f" (re-execution of {run.parent_run_id[:8]})"
        prediction = self._prediction
        return RunState(
            title=title,
            steps=tuple(StepProgress(k) for k in ordered(keys, stripes)),
            stripes=tuple(stripes),
            expected=dict(prediction.steps) if prediction else {},
            basis=prediction.basis if prediction else "",
            at_most=prediction is not None and not prediction.from_history,
            overlap=_overlap(prediction),
        )

    def finish(self) -> None:
        """The run's execution returned: read its last events, show how it ended."""
        if self.state is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._read()
        except Exception as exc:  # the run's outcome is shown anyway, by the command
            self.display.notice(f"progress: cannot read the run's last events ({exc})")
        now = time.time()
        if self.state.ended is None:  # execution stopped without the run's end event
            self.state = finish(self.state, now)
        self.display.end(self.state, now)

    def _loop(self) -> None:
        failed_reads = 0
        while not self._stop.wait(self.poll_s):
            started = time.thread_time()
            try:
                self._read()
            except Exception as exc:  # the upgrade goes on without its progress shown
                failed_reads += 1
                if failed_reads == 1:
                    self.display.notice(f"progress: cannot read the run's events ({exc})")
            assert self.state is not None
            self.display.tick(self.state, time.time())
            self.busy_s += time.thread_time() - started

    def _read(self) -> None:
        """Every event written since the last read, applied in order."""
        assert self._inst is not None and self.state is not None
        while True:
            batch = self._inst.get_records_for_run(self._run_id, cursor=self._cursor, limit=_BATCH)
            self.reads += 1
            self._cursor = batch.cursor
            for happening in happenings(r.event_log_entry for r in batch.records):
                before = self.state
                self.state, warnings = advance(before, happening)
                if self.state is not before or warnings:
                    self.display.changed(before, self.state, warnings, time.time())
            if not batch.has_more:
                return


def _overlap(prediction: Prediction | None) -> float:
    """The predicted wall time over the sum of the steps' predicted times (1 when nothing
    runs side by side, or without a prediction)."""
    work = sum(prediction.steps.values()) if prediction else 0.0
    if prediction is None or work <= 0.0 or prediction.total_s <= 0.0:
        return 1.0
    return min(1.0, prediction.total_s / work)
