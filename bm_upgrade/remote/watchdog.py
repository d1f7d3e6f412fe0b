"""A deadline for the paramiko calls that wait without one.

paramiko waits without a bound for the answer to a channel request (``exec_command``,
``invoke_subsystem``) and, in a transport write, for room in a full TCP send buffer. On a host
that stopped answering (frozen, or a link gone dead without a reset) such a call hangs for as
long as the kernel keeps the connection. A :class:`Watchdog` calls ``on_expiry`` (closing the
channel or the transport, which releases the blocked call with an error) once ``limit_s``
seconds pass without :meth:`Watchdog.progress`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Watchdog:
    """Calls ``on_expiry`` once when ``limit_s`` pass without progress, until the ``with``
    block ends.

    Args:
        limit_s: seconds allowed between two calls of :meth:`progress` (or the start).
        on_expiry: closes whatever the guarded call is blocked on; its errors are logged.
    """

    def __init__(self, limit_s: float, on_expiry: Callable[[], object]) -> None:
        self.limit_s = limit_s
        self._on_expiry = on_expiry
        self._last = time.monotonic()
        self._done = threading.Event()
        self._fired = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="bm-upgrade-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._last = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()

    @property
    def fired(self) -> bool:
        """The limit passed and ``on_expiry`` was called."""
        return self._fired.is_set()

    def progress(self) -> None:
        """The guarded work moved on: the limit counts from now."""
        self._last = time.monotonic()

    def _watch(self) -> None:
        while True:
            remaining = self._last + self.limit_s - time.monotonic()
            if remaining <= 0:
                break
            if self._done.wait(remaining):
                return
        if self._done.is_set():
            return
        self._fired.set()
        try:
            self._on_expiry()
        except Exception:  # a best-effort close of something already broken
            log.debug(
                "watchdog: closing after %.1f s without progress failed",
                self.limit_s,
                exc_info=True,
            )
