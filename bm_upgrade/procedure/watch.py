"""Watching sync status between runs: what changed since the last look, and which alerts
start or end, from one :class:`~bm_upgrade.procedure.observe.ClusterView` at a time.

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

from bm_upgrade.inventory import Inventory
from bm_upgrade.procedure.observe import ClusterView, observe_cluster
from bm_upgrade.remote import HostPool


def observe_for_watch(inventory: Inventory, pool: HostPool) -> ClusterView:
    """Every server and orchestrator, as cheaply as a look every few seconds allows.

    A server that answers its probe is taken at its word (state, version); only one that
    does not is looked at over SSH (process list, installed kit). So with REST probes a healthy
    cluster costs no SSH session for its servers. Probes run side by side.
    """
    return observe_cluster(inventory, pool, clients=False)


NodeLook = dict[str, str | None]
"""One node as seen: ``state``, ``version`` (and ``role`` for an orchestrator)."""


def looks(inventory: Inventory, view: ClusterView) -> dict[str, NodeLook]:
    """Every server and orchestrator of the inventory as ``view`` saw it; a node whose host
    could not be reached reads ``unreachable``."""
    out: dict[str, NodeLook] = {}
    for region, stripe, server in inventory.servers():
        seen = view.servers.get(server.name)
        if seen is None:
            out[server.name] = {
                "stripe": f"{region.name}/{stripe.name}",
                "state": "unreachable",
                "version": None,
            }
            continue
        state = (
            seen.status.state
            if seen.status.reachable
            else ("starting" if seen.alive else "stopped")
        )
        out[server.name] = {
            "stripe": f"{region.name}/{stripe.name}",
            "state": state,
            "version": seen.node_state.version,
        }
    for region in inventory.regions:
        for orch in region.orchestrators:
            status = view.orchestrators.get(orch.name)
            if status is None:
                out[orch.name] = {"state": "unreachable", "role": orch.role, "version": None}
            else:
                out[orch.name] = {
                    "state": status.state if status.reachable else "stopped",
                    "role": status.role or orch.role,
                    "version": status.version,
                }
    return out


@dataclass
class WatchMemory:
    """What the previous look left: every node's look, since when each stripe has lacked a
    standby (unix seconds), and the alerts in force (key -> message)."""

    nodes: dict[str, NodeLook] = field(default_factory=dict)
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


def _describe(look: NodeLook | None) -> str:
    if look is None:
        return "not seen"
    parts = [look.get("state") or "unknown", look.get("version") or "unknown version"]
    if look.get("role"):
        parts.insert(0, str(look["role"]))
    return " ".join(parts)


def stripes_without_standby(inventory: Inventory, view: ClusterView) -> dict[str, str]:
    """Stripes that have mirrors but no PASSIVE-STANDBY now, with what their servers are."""
    out: dict[str, str] = {}
    for region in inventory.regions:
        for stripe in region.stripes:
            if len(stripe.servers) < 2:
                continue  # no mirror by design: nothing to lose
            key = f"{region.name}/{stripe.name}"
            health = view.health.get(key)
            if health is None or not health.standbys:
                states = [
                    view.servers[s.name].describe()
                    if s.name in view.servers
                    else f"{s.name} unreachable"
                    for s in stripe.servers
                ]
                out[key] = ", ".join(states)
    return out


def watch_step(
    memory: WatchMemory,
    inventory: Inventory,
    view: ClusterView,
    now: float,
    *,
    upgrading: bool,
    no_standby_alert_s: float,
) -> WatchResult:
    """Compare one look with the previous one; decide which alerts start and end."""
    nodes = looks(inventory, view)
    changes = [
        f"{name}: {_describe(memory.nodes.get(name))} -> {_describe(look)}"
        for name, look in nodes.items()
        if memory.nodes.get(name) != look
    ]
    missing = stripes_without_standby(inventory, view)
    since = {key: memory.no_standby_since.get(key, now) for key in missing}
    wanted: dict[str, str] = {}
    for key, what in missing.items():
        if now - since[key] >= no_standby_alert_s:
            wanted[f"no-standby:{key}"] = (
                f"stripe {key} of {inventory.cluster} has had no PASSIVE-STANDBY mirror for "
                f"{now - since[key]:.0f} s ({what}); a failure of its ACTIVE now loses "
                "service: check it with `bm-upgrade status` and start or resync the mirror"
            )
    versions = sorted({look["version"] or "unknown" for look in nodes.values()})
    if len(versions) > 1 and not upgrading:
        wanted["mixed-versions"] = (
            f"{inventory.cluster} runs mixed versions ({', '.join(versions)}) and no upgrade "
            "run is going: finish the upgrade (re-execute the failed run) or roll back"
        )
    if upgrading and "mixed-versions" in memory.alerts:
        wanted["mixed-versions"] = memory.alerts["mixed-versions"]  # a run is finishing it
    raised = [message for key, message in wanted.items() if key not in memory.alerts]
    ended = [f"ended: {message}" for key, message in memory.alerts.items() if key not in wanted]
    return WatchResult(WatchMemory(nodes, since, wanted), changes, raised, ended)
