"""The node state changes a run sees while it works: a mirror leaving PASSIVE-STANDBY and
coming back, an ACTIVE stopping, a takeover.

The sync-status sensor looks once a minute, so a mirror that is away for less than that never
shows in its history. The server steps look many times a second while they wait; every look
goes through :class:`StatusTracker`, which remembers each server's last (state, version, role)
and hands a :class:`StatusChange` to the step's sink only when one of them changed. The first
sight of a server is the tracker's starting point, not a change.

States are the sensor's words (:meth:`~bm_upgrade.procedure.observe.ClusterView.as_dict`): the
probed state of a server that answers, else ``stopped`` (no process of it on its host) or
``starting`` (a process runs, not answering yet). A probe that gets no answer alone says
neither, so it changes nothing until the host's process list tells which.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bm_upgrade.plan import ACTIVE

STOPPED = "stopped"
STARTING = "starting"


def role_of(state: str) -> str | None:
    """``active`` or ``passive`` from a server's state; None while it does not answer."""
    if state == ACTIVE:
        return "active"
    if state.startswith("PASSIVE"):
        return "passive"
    return None


@dataclass(frozen=True)
class NodeLook:
    """A server as one look saw it."""

    state: str
    version: str | None

    @property
    def role(self) -> str | None:
        return role_of(self.state)

    def describe(self) -> str:
        """As the sensor's change lines say it: ``PASSIVE-STANDBY 4.2.1``."""
        return f"{self.state} {self.version or 'unknown version'}"


@dataclass(frozen=True)
class StatusChange:
    """One change of a server's state, version or role, as a step saw it.

    Attributes:
        node: the server.
        stripe: ``region/stripe``.
        before: what the previous look saw.
        after: what this look saw.
        at: unix time of the look.
    """

    node: str
    stripe: str
    before: NodeLook
    after: NodeLook
    at: float

    def line(self) -> str:
        """``node: before -> after``, the sensor's form of a change."""
        return f"{self.node}: {self.before.describe()} -> {self.after.describe()}"


StatusSink = Callable[[StatusChange], None]
"""Where a step's changes go (the op records each as an observation of the cluster's
sync-status asset)."""


class StatusTracker:
    """Each server's last look; hands the changes to ``sink``. Thread-safe."""

    def __init__(self, sink: StatusSink) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._last: dict[str, NodeLook] = {}

    def saw(self, node: str, stripe: str, state: str, version: str | None) -> None:
        """A look at ``node``: recorded, and handed on when it differs from the last one.

        A look without a version (a server that does not answer) keeps the version last seen:
        a stopped server's kit is only read when the step looks at the whole stripe.
        """
        with self._lock:
            before = self._last.get(node)
            after = NodeLook(state, version or (before.version if before else None))
            self._last[node] = after
            if before is None or before == after:
                return
            self._sink(StatusChange(node, stripe, before, after, time.time()))

    def saw_silent(self, node: str, stripe: str, alive: bool, installed: str | None = None) -> None:
        """A server that did not answer its probe, whether a process of it runs, and the
        kit its kit root holds when that was read: ``stopped``, else ``starting`` unless it
        was last seen answering (a server shutting down, whose process has not exited yet,
        is not starting)."""
        with self._lock:
            before = self._last.get(node)
        if alive and (before is None or before.role is not None):
            return
        self.saw(node, stripe, STARTING if alive else STOPPED, installed)
