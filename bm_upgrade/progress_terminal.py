"""Writing a run's progress to the terminal: a block redrawn in place on a terminal, plain
lines on anything else (a pipe, a file, CI, `make demo | tee`).

The lines come from :mod:`bm_upgrade.progress_view`. They go to a copy of the terminal's
stderr taken before the run: while a step runs, Dagster points file descriptor 2 at the
step's log file (and mirrors that file to the terminal by a ``tail`` process), and the
progress belongs to the command, not to the step's log.

One thread draws (the one following the run's events); notices from elsewhere (a signal
handler saying that the run will finish safely, :mod:`bm_upgrade.interrupts`) are queued and
written by that thread above the block, or written at once while nothing is drawn.
"""

from __future__ import annotations

import io
import os
import queue
import sys
import threading
from collections.abc import Sequence
from typing import TextIO, cast

from bm_upgrade import progress_view as view
from bm_upgrade.progress_state import RunState

_UP_AND_CLEAR = "\r\x1b[{n}A\x1b[J"


class ProgressDisplay:
    """Shows one run's progress at a time.

    Args:
        out: where to write (a copy of stderr's file descriptor when it has one).
        live: redraw a block in place (a terminal) rather than write plain lines.
        colour: colour the steps' states (a terminal without NO_COLOR).
    """

    def __init__(self, out: TextIO, *, live: bool, colour: bool = False) -> None:
        self._out = out
        self.live = live
        self.colour = colour and live
        self._notices: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._following = False
        self._drawn = 0  # lines of the block on screen, below the cursor's line

    @classmethod
    def for_stderr(cls, *, verbose: bool = False) -> ProgressDisplay:
        """On the process's stderr: live on a terminal (plain with ``verbose``, whose Dagster
        lines would scroll under the block, or with TERM=dumb), else plain lines."""
        try:
            out: TextIO = os.fdopen(
                os.dup(sys.stderr.fileno()), "w", encoding="utf-8", errors="replace"
            )
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            out = sys.stderr  # not a file (a test's capture)
        tty = out.isatty() and os.environ.get("TERM", "") != "dumb"
        live = tty and not verbose
        return cls(out, live=live, colour=live and not os.environ.get("NO_COLOR"))

    # -- from the thread that follows the run ------------------------------------------

    def begin(self, state: RunState) -> None:
        with self._lock:
            self._following = True
            self._write([*self._pending(), *view.opening(state)])

    def changed(
        self, before: RunState, after: RunState, warnings: Sequence[str], now: float
    ) -> None:
        """Steps changed state (plain: a line each; live: the next draw shows it), or
        warnings came (written above the block, or in their place among the lines)."""
        for warning in warnings:
            self._notices.put(f"warning: {warning}")
        if not self.live:
            with self._lock:
                self._write([*self._pending(), *view.changes(before, after, now)])

    def tick(self, state: RunState, now: float) -> None:
        """Time passed: queued notices written, the block redrawn below them."""
        with self._lock:
            self._write(self._pending(), block=self._block(state, now) if self.live else None)

    def end(self, state: RunState, now: float) -> None:
        """The run ended: the block drawn a last time (it stays), then the closing line."""
        with self._lock:
            block = self._block(state, now) if self.live else None
            self._write(self._pending(), block=block)
            self._drawn = 0
            self._write([view.closing(state, now)])
            self._following = False
        self._flush_notices()

    # -- from anywhere ---------------------------------------------------------------------

    def notice(self, text: str) -> None:
        """A line of the command's own: above the block while a run is followed."""
        self._notices.put(text)
        if not self._following:
            self._flush_notices()

    def notice_stream(self) -> TextIO:
        """A text stream whose lines become notices (for ``print(..., file=...)``)."""
        # A TextIOBase with write and flush: all that print() and the signal handler use.
        return cast(TextIO, _NoticeStream(self))

    def close(self) -> None:
        if self._out is not sys.stderr:
            self._out.close()

    # -- drawing ---------------------------------------------------------------------------

    def _flush_notices(self) -> None:
        # A signal handler may run this while its thread holds the lock (in end()): the
        # notice then waits for end()'s own call, after the lock is released.
        if self._lock.acquire(blocking=False):
            try:
                self._write(self._pending())
            finally:
                self._lock.release()

    def _pending(self) -> list[str]:
        lines = []
        while True:
            try:
                lines.append(self._notices.get_nowait())
            except queue.Empty:
                return lines

    def _block(self, state: RunState, now: float) -> list[str]:
        try:
            size = os.get_terminal_size(self._out.fileno())
            width, height = size.columns, size.lines
        except (OSError, ValueError, io.UnsupportedOperation):
            width, height = 100, 40
        return view.live_block(state, now, width=width - 1, height=height - 1, colour=self.colour)

    def _write(self, lines: Sequence[str], *, block: Sequence[str] | None = None) -> None:
        """``lines`` for good, then ``block`` in place of the one drawn before (if any), in
        one write so that the terminal never shows the block half drawn."""
        text = "".join(f"{line}\n" for line in lines)
        if block is not None:
            erase = _UP_AND_CLEAR.format(n=self._drawn) if self._drawn else ""
            text = erase + text + "".join(f"{line}\n" for line in block)
            self._drawn = len(block)
        elif text and self._drawn:
            # Written with a block on screen but without redrawing it: it stays where
            # it is, above these lines.
            self._drawn = 0
        if text:
            self._out.write(text)
            self._out.flush()


class _NoticeStream(io.TextIOBase):
    """Text written here becomes the display's notices, a line each."""

    def __init__(self, display: ProgressDisplay) -> None:
        super().__init__()
        self._display = display
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._display.notice(line)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._display.notice(self._partial)
            self._partial = ""
