"""The cluster's version matrix (every node, where it is, its version and state) from one look,
and its two checks: every node on one version; every stripe with a PASSIVE-STANDBY mirror.

The sync-status sensor, every run's report and the checks run from the UI all judge a
:class:`~bm_upgrade.procedure.observe.ClusterView` here, so they never disagree. The nodes are
those the look covered: the sensor's look leaves the clients out (reading their jars costs an
SSH command per client host every minute), a run's report and ``bm-upgrade status`` read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bm_upgrade.plan import STANDBY
from bm_upgrade.procedure.observe import ClusterView

ONE_VERSION = "one_version"
STANDBY_PER_STRIPE = "standby_per_stripe"
CHECK_DESCRIPTIONS = {
    ONE_VERSION: "Every node on one version: every server and orchestrator (and every client "
    "when the look read them) runs the same version; a node whose host could not be "
    "reached fails it.",
    STANDBY_PER_STRIPE: "Every stripe has a PASSIVE-STANDBY mirror: a failure of any "
    "ACTIVE now would be taken over without losing service.",
}


@dataclass(frozen=True)
class MatrixNode:
    """One node of the matrix: ``kind`` server, client or orchestrator; ``where`` its
    ``region/stripe`` or region; ``version`` None when unknown."""

    kind: str
    where: str
    node: str
    version: str | None
    state: str


@dataclass(frozen=True)
class MatrixCheck:
    """One check's verdict on one look.

    Attributes:
        name: :data:`ONE_VERSION` or :data:`STANDBY_PER_STRIPE`.
        passed: the check holds.
        summary: one sentence saying why.
        details: JSON-able facts behind it (versions and their nodes, the stripes lacking).
        warn_only: failed only by what the inventory itself says (a stripe of one server),
            or while an upgrade run is going (mixed versions are its nature then).
    """

    name: str
    passed: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    warn_only: bool = False


def matrix(view: ClusterView) -> list[MatrixNode]:
    """Every node of the view's inventory the look covered, in inventory order: servers, then
    clients (when read), then orchestrators; one on an unreachable host reads
    ``unreachable``."""
    shown = view.as_dict()
    rows: list[MatrixNode] = []
    for region, stripe, server in view.inventory.servers():
        seen = shown["servers"].get(server.name)
        rows.append(
            MatrixNode(
                "server",
                f"{region.name}/{stripe.name}",
                server.name,
                seen["version"] if seen else None,
                seen["state"] if seen else "unreachable",
            )
        )
    for region, client in view.inventory.clients():
        c = view.clients.get(client.name)
        if c is not None:
            running = {True: "running", False: "stopped", None: "unknown"}[c.running]
            rows.append(MatrixNode("client", region.name, client.name, c.jar_version, running))
        elif client.host in view.unreachable:
            rows.append(MatrixNode("client", region.name, client.name, None, "unreachable"))
    for region, orch in view.inventory.orchestrators():
        o = view.orchestrators.get(orch.name)
        if o is not None:
            state = f"{o.state or 'unknown'} ({orch.role})"
            rows.append(MatrixNode("orchestrator", region.name, orch.name, o.version, state))
        elif orch.host in view.unreachable:
            state = f"unreachable ({orch.role})"
            rows.append(MatrixNode("orchestrator", region.name, orch.name, None, state))
    return rows


def one_version(view: ClusterView, *, upgrading: bool = False) -> MatrixCheck:
    """Every node the look covered on one version (``upgrading``: a run is going, so a mix
    is expected and the failure only a warning)."""
    versions: dict[str, list[str]] = {}
    unknown: list[str] = []
    for row in matrix(view):
        if row.version is None:
            unknown.append(row.node)
        else:
            versions.setdefault(row.version, []).append(row.node)
    details: dict[str, Any] = {"versions": versions, "unknown": unknown}
    if len(versions) == 1 and not unknown:
        (version,) = versions
        return MatrixCheck(ONE_VERSION, True, f"every node runs {version}", details)
    parts = [f"{v} on {', '.join(nodes)}" for v, nodes in sorted(versions.items())]
    if unknown:
        parts.append(f"unknown on {', '.join(unknown)}")
    mixed = "mixed versions" if len(versions) > 1 else "not every version known"
    summary = f"{mixed}: " + "; ".join(parts)
    if upgrading:
        summary += " (an upgrade run is going)"
    return MatrixCheck(ONE_VERSION, False, summary, details, warn_only=upgrading)


def standby_per_stripe(view: ClusterView) -> MatrixCheck:
    """Every stripe has a PASSIVE-STANDBY mirror; a stripe of one server (the inventory's
    choice) fails it as a warning only."""
    lacking: dict[str, str] = {}
    single: list[str] = []
    standbys: dict[str, list[str]] = {}
    for key, verdict in view.health.items():
        standbys[key] = list(verdict.standbys)
        if key in view.health.unmirrored:
            single.append(key)
        elif not verdict.standbys:
            lacking[key] = view.health.without_standby.get(key, "no mirror answered")
    details: dict[str, Any] = {"standbys": standbys, "without_standby": lacking, "single": single}
    if not lacking and not single:
        return MatrixCheck(
            STANDBY_PER_STRIPE, True, f"every stripe has a {STANDBY} mirror", details
        )
    parts = [f"{key} ({what})" for key, what in lacking.items()]
    parts += [f"{key} (one server, no mirror in the inventory)" for key in single]
    summary = f"without a {STANDBY} mirror: " + "; ".join(parts)
    return MatrixCheck(STANDBY_PER_STRIPE, False, summary, details, warn_only=not lacking)


def checks(view: ClusterView, *, upgrading: bool = False) -> list[MatrixCheck]:
    """Both checks on one look."""
    return [one_version(view, upgrading=upgrading), standby_per_stripe(view)]
