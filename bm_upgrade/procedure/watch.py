"""Watching sync status between runs: what changed since the last look, and which alerts
start or end, from one :class:`~bm_upgrade.procedure.observe.ClusterView` at a time: its
JSON form is what is remembered, its health check (:mod:`bm_upgrade.procedure.health`) what
is alerted on.

The memory of the previous look (:class:`WatchMemory`) is plain JSON, so the Dagster sensor
keeps it as its cursor: a change or an alert is reported once, when it happens, not at every
look. Alerts:
- a stripe with mirrors has had no PASSIVE-STANDBY for longer than a threshold;
- the servers or orchestrators run mixed versions while no upgrade run is going.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from bm_upgrade.inventory import Client
from bm_upgrade.procedure.observe import ClusterView

UNREACHABLE: dict[str, Any] = {"state": "unreachable", "version": None}
"""A node of the inventory whose host the look could not reach."""


def nodes_seen(view: ClusterView) -> dict[str, dict[str, Any]]:
    """Every server and orchestrator of the view's inventory as :meth:`ClusterView.as_dict` shows
    it (the sensor's memory is that JSON form of the view); one whose host could not be
    reached reads :data:`UNREACHABLE`."""
    shown = view.as_dict()
    nodes = shown["servers"] | shown["orchestrators"]
    return {
        node.name: nodes.get(node.name, UNREACHABLE)
        for node in view.inventory.nodes()
        if not isinstance(node, Client)
    }


@dataclass
class WatchMemory:
    """What the previous look left: every node as seen (:func:`nodes_seen`), since when each
    stripe has lacked a standby (unix seconds), and the alerts in force (key -> message)."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    no_standby_since: dict[str, float] = field(default_factory=dict)
    alerts: dict[str, str] = field(default_factory=dict)

    def to_cursor(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_cursor(cls, cursor: str | None) -> WatchMemory:
        """The memory a cursor holds (a missing or unreadable one: a first look)."""
        if not cursor:
            return cls()
        try:
            data: dict[str, Any] = json.loads(cursor)
            return cls(
                dict(data["nodes"]),
                {k: float(v) for k, v in data["no_standby_since"].items()},
                dict(data["alerts"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return cls()


@dataclass
class WatchResult:
    """One look: the new memory, what changed (one line a node), alerts raised and ended."""

    memory: WatchMemory
    changes: list[str]
    raised: list[str]
    ended: list[str]


def _describe(node: dict[str, Any] | None) -> str:
    if node is None:
        return "not seen"
    parts = [node.get("state") or "unknown", node.get("version") or "unknown version"]
    if node.get("role"):
        parts.insert(0, str(node["role"]))
    if node.get("caches"):
        parts.append("caches " + ", ".join(f"{k}={v}" for k, v in node["caches"].items()))
    return " ".join(parts)


def watch_step(
    memory: WatchMemory,
    view: ClusterView,
    now: float,
    *,
    upgrading: bool,
    no_standby_alert_s: float,
) -> WatchResult:
    """Compare one look with the previous one; decide which alerts start and end."""
    cluster = view.inventory.cluster
    nodes = nodes_seen(view)
    changes = [
        f"{name}: {_describe(memory.nodes.get(name))} -> {_describe(node)}"
        for name, node in nodes.items()
        if memory.nodes.get(name) != node
    ]
    missing = view.health.without_standby
    since = {key: memory.no_standby_since.get(key, now) for key in missing}
    wanted: dict[str, str] = {}
    for key, what in missing.items():
        if now - since[key] >= no_standby_alert_s:
            wanted[f"no-standby:{key}"] = (
                f"stripe {key} of {cluster} has had no PASSIVE-STANDBY mirror for "
                f"{now - since[key]:.0f} s ({what}); a failure of its ACTIVE now loses "
                "service: check it with `bm-upgrade status` and start or resync the mirror"
            )
    if view.health.mixed and not upgrading:
        versions = ", ".join(sorted(view.health.versions))
        wanted["mixed-versions"] = (
            f"{cluster} runs mixed versions ({versions}) and no upgrade run is going: finish "
            "the upgrade (re-execute the failed run) or roll back"
        )
    if upgrading and "mixed-versions" in memory.alerts:
        wanted["mixed-versions"] = memory.alerts["mixed-versions"]  # a run is finishing it
    raised = [message for key, message in wanted.items() if key not in memory.alerts]
    ended = [f"ended: {message}" for key, message in memory.alerts.items() if key not in wanted]
    return WatchResult(WatchMemory(nodes, since, wanted), changes, raised, ended)
