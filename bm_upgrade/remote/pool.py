"""One connection per host, shared by every step, and a fan-out over a group of hosts.

Like fabric's ``Group``: :meth:`HostPool.fan_out` calls a function once per host in parallel
and returns a :class:`GroupResult` holding a value or an exception per host; the caller
decides whether one failed host ends the step (:meth:`GroupResult.values`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from bm_upgrade.errors import BmUpgradeError, UserError
from bm_upgrade.inventory import SshSettings
from bm_upgrade.remote.client import Connection
from bm_upgrade.remote.commands import CommandLog

T = TypeVar("T")


@dataclass
class GroupResult(Generic[T]):
    """Per host, in the order the hosts were given: a value or the error it raised."""

    results: dict[str, T] = field(default_factory=dict)
    errors: dict[str, BmUpgradeError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def values(self) -> dict[str, T]:
        """Every host's value; raises the first host's error when any failed.

        The raised error's notes list the other failed hosts.
        """
        if self.errors:
            first_host, first = next(iter(self.errors.items()))
            for host, exc in self.errors.items():
                if host != first_host:
                    first.add_note(f"also failed on {host}: {exc}")
            raise first
        return dict(self.results)


class HostPool:
    """Lazily opened connections, one per host, closed together.

    Args:
        settings: the inventory's SSH settings, used for every host.
        max_parallel: hosts worked on at once by :meth:`fan_out`.
    """

    def __init__(
        self,
        settings: SshSettings,
        *,
        max_parallel: int = 8,
        retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self.settings = settings
        self.max_parallel = max(1, max_parallel)
        self._retries = retries
        self._backoff_s = backoff_s
        self._lock = threading.Lock()
        self._connections: dict[str, Connection] = {}
        self.commands = CommandLog()
        """What every connection of the pool ran (for the evidence report)."""

    def __enter__(self) -> HostPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get(self, host: str) -> Connection:
        """The connection to ``host`` (created on first request, opened on first use)."""
        with self._lock:
            conn = self._connections.get(host)
            if conn is None:
                conn = Connection(
                    host,
                    self.settings,
                    retries=self._retries,
                    backoff_s=self._backoff_s,
                    commands=self.commands,
                )
                self._connections[host] = conn
            return conn

    def fan_out(self, hosts: Iterable[str], action: Callable[[Connection], T]) -> GroupResult[T]:
        """Run ``action(connection)`` for each distinct host in parallel.

        Errors of bm_upgrade's tree are collected per host, but for a :class:`UserError` (a
        corrupt known_hosts file): that one is no host's failure and propagates, so the
        operator sees one message to fix the file rather than every host "failed". Any other
        exception is a bug and propagates.
        """
        ordered = list(dict.fromkeys(hosts))
        outcome: GroupResult[T] = GroupResult()
        if not ordered:
            return outcome

        def one(host: str) -> tuple[str, T | BmUpgradeError]:
            try:
                return host, action(self.get(host))
            except UserError:
                raise
            except BmUpgradeError as exc:
                return host, exc

        with ThreadPoolExecutor(max_workers=min(self.max_parallel, len(ordered))) as ex:
            answers = dict(ex.map(one, ordered))
        for host in ordered:
            answer = answers[host]
            if isinstance(answer, BmUpgradeError):
                outcome.errors[host] = answer
            else:
                outcome.results[host] = answer
        return outcome

    def close(self) -> None:
        """Close every connection."""
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
        for conn in connections:
            conn.close()
