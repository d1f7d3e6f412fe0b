"""What a run's connections ran on each host: the commands' own lines, for the evidence report.

A :class:`CommandLog` is shared by the connections of one :class:`~bm_upgrade.remote.HostPool`;
each command a connection runs is added with its exit status, each upload with its target.
A step takes a :meth:`CommandLog.mark` before it starts and reads :meth:`CommandLog.since`
when it ends, so the commands are the step's own although the pool outlives it.

What is kept is the command line alone, with any URL's secrets taken out
(:func:`~bm_upgrade.redact.redact_urls`): a secret a command needs (a server's management
password) goes on the command's standard input (``quoting.WithInput``), never into its line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bm_upgrade.redact import redact_urls

MAX_KEPT = 20_000
"""Commands kept per log: far above a run's distinct commands (a wait's repeated probes are
counted, not kept apart, by :func:`per_host`); a bound on memory should a step loop."""


@dataclass(frozen=True)
class CommandRun:
    """One command a connection ran (or one upload, whose line starts with ``sftp put``).

    Attributes:
        host: where it ran.
        line: the command line, without its standard input.
        exit_code: its exit status; None when it had none (a timeout, a lost connection).
        at: unix time it ended.
    """

    host: str
    line: str
    exit_code: int | None
    at: float


class CommandLog:
    """The commands of one pool's connections, in the order they ended; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: list[CommandRun] = []
        self._dropped = 0

    def add(self, host: str, line: str, exit_code: int | None) -> None:
        run = CommandRun(host, redact_urls(line), exit_code, time.time())
        with self._lock:
            if len(self._runs) >= MAX_KEPT:
                self._runs.pop(0)
                self._dropped += 1
            self._runs.append(run)

    def mark(self) -> int:
        """A position to read from later (:meth:`since`)."""
        with self._lock:
            return self._dropped + len(self._runs)

    def since(self, mark: int) -> list[CommandRun]:
        """The commands added after ``mark`` (those still kept)."""
        with self._lock:
            start = max(0, mark - self._dropped)
            return list(self._runs[start:])


def per_host(runs: Iterable[CommandRun]) -> dict[str, list[dict[str, Any]]]:
    """Per host, each distinct command once, in the order first run, with how many times it
    ran and how many of those ended non-zero or without an exit status (a wait's probe runs
    the same line many times): JSON-able, as a step's metadata keeps it."""
    hosts: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        lines = hosts.setdefault(run.host, {})
        entry = lines.get(run.line)
        if entry is None:
            entry = lines[run.line] = {"command": run.line, "count": 0, "failed": 0}
            entry["first"] = round(run.at, 3)
        entry["count"] += 1
        entry["failed"] += run.exit_code != 0
    return {host: list(lines.values()) for host, lines in hosts.items()}
