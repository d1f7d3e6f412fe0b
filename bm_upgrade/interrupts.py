"""Ctrl-C and SIGTERM on `bm-upgrade run` and `rerun`: finish the current step safely.

The job runs in a thread of the command's process (``defs/launch.py``) while the main thread
waits for it. Raising there on a signal would end the process in the middle of a step, maybe
between stopping an active and seeing its successor take over, and leave the run STARTED for
good. Instead the first SIGINT or SIGTERM asks the procedure to start no new disruptive work
(:func:`bm_upgrade.procedure.halt.request_stop`): the step in progress finishes its current
action (a stopped server is restarted and confirmed), the next disruptive action ends its step
safely, Dagster marks the run FAILURE, and the command exits 1 as for any failed step.
A second signal changes nothing; SIGKILL abandons the run (`bm-upgrade rerun RUN_ID` then sees
that its process is gone and marks it failed).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, TextIO

from bm_upgrade.procedure import halt

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class FinishSafelyOnSignals:
    """A ``with`` block in which SIGINT and SIGTERM request a safe stop of the run instead of
    raising; the previous handlers come back after it. Outside the main thread (where Python
    cannot handle signals) it does nothing."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._given = out
        self._out: TextIO = out or sys.stderr
        self._previous: dict[int, Any] = {}
        self.received: list[str] = []

    def reason(self) -> str:
        return f"the operator interrupted bm-upgrade ({self.received[0]})"

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if len(self.received) == 1:
            halt.request_stop(self.reason())
            print(
                f"{name} received: finishing the current step safely (nothing new is "
                "stopped; a stopped server is restarted first), then the run ends as "
                "failed",
                file=self._out,
                flush=True,
            )
        else:
            print(
                f"{name} received: still finishing the current step safely; SIGKILL "
                "abandons the run (then `bm-upgrade rerun RUN_ID` marks it failed and goes "
                "on)",
                file=self._out,
                flush=True,
            )

    def on_run_id(self, announce: Callable[[str], None]) -> Callable[[str], None]:
        """``announce`` for the run id, which also repeats a stop requested before the run
        existed (the run starts by forgetting earlier stops of this process)."""

        def started(run_id: str) -> None:
            if self.received:
                halt.request_stop(self.reason())
            announce(run_id)

        return started

    def __enter__(self) -> FinishSafelyOnSignals:
        if self._given is None:
            # A copy of the terminal's stderr: while a step runs, Dagster points fd 2 at the
            # step's log file and mirrors it with a `tail` process, which the Ctrl-C kills.
            try:
                self._out = os.fdopen(os.dup(sys.stderr.fileno()), "w", encoding="utf-8")
            except (OSError, ValueError, AttributeError):
                self._out = sys.stderr
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, before in self._previous.items():
            signal.signal(sig, before)
        self._previous.clear()
        if self._out is not sys.stderr and self._out is not self._given:
            self._out.close()
