"""`bm-upgrade status`: every server's role, state and version per region and stripe, the
clients, the orchestrators, and warnings. Exit 0 when healthy, 1 when degraded.

It renders one look at the cluster (:func:`~bm_upgrade.procedure.observe.observe_cluster`)
and that look's health check, the same the sync-status sensor and the upgrade's server checks
read: nothing here decides what is healthy.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from bm_upgrade.inventory import load_inventory
from bm_upgrade.probes import ClientStatus, OrchestratorStatus
from bm_upgrade.procedure.observe import ClusterView, observe_cluster
from bm_upgrade.remote import HostPool


def warnings(view: ClusterView) -> list[str]:
    """The look's health check in words, one line a problem (empty: healthy)."""
    inventory, health = view.inventory, view.health
    lines: list[str] = []
    for region, stripe in inventory.stripes():
        key = f"{region.name}/{stripe.name}"
        lines += [f"{region.name}/{problem}" for problem in health[key].problems]
        if key in health.unmirrored:
            lines.append(
                f"{region.name}/stripe {stripe.name} has no mirror: upgrading it means downtime"
            )
    lines += [
        f"{region}/{p}" for region, problems in health.orchestrators.items() for p in problems
    ]
    if health.mixed:
        parts = [f"{v} ({', '.join(names)})" for v, names in sorted(health.versions.items())]
        lines.append("mixed versions: " + "; ".join(parts))
    lines += [f"host {host} is unreachable: {why}" for host, why in view.unreachable.items()]
    return lines


def status_report(view: ClusterView) -> dict[str, Any]:
    """What ``status --json`` prints: per region its stripes (verdict, servers), clients and
    orchestrators; the warnings; ``healthy`` when there is none. A node on an unreachable
    host is shown unreachable, with its host's reason."""
    inventory = view.inventory
    regions: dict[str, dict[str, Any]] = {
        region.name: {"name": region.name, "stripes": [], "clients": [], "orchestrators": []}
        for region in inventory.regions
    }
    for region, stripe in inventory.stripes():
        verdict = view.health[f"{region.name}/{stripe.name}"]
        regions[region.name]["stripes"].append(
            {
                "name": stripe.name,
                "health": asdict(verdict),
                "servers": [asdict(view.server_status(server)) for server in stripe.servers],
                "healthy": verdict.healthy,
            }
        )
    for region, client in inventory.clients():
        seen = view.clients.get(client.name)
        regions[region.name]["clients"].append(
            asdict(seen or ClientStatus.unknown(client, view.unreachable.get(client.host)))
        )
    for region, orch in inventory.orchestrators():
        status = view.orchestrators.get(orch.name) or OrchestratorStatus(
            orch.name, orch.host, error=view.unreachable.get(orch.host)
        )
        regions[region.name]["orchestrators"].append(
            asdict(status) | {"role": orch.role, "state": status.state, "up": status.up}
        )
    found = warnings(view)
    return {
        "cluster": inventory.cluster,
        "target_version": inventory.target_version,
        "probe_via": inventory.probe_via,
        "regions": list(regions.values()),
        "warnings": found,
        "healthy": not found,
    }


def _client_state(client: dict[str, Any]) -> str:
    if not client["reachable"]:
        return "unreachable"
    if client["running"] is None:
        return "unknown"
    return "running" if client["running"] else "stopped"


def _replication(orch: dict[str, Any]) -> str:
    """What an orchestrator's replication log says of the replicas it synchronized (a master
    region's) or of its own syncs (a replica region's), last event each."""
    said = [
        f"{s['replica']}/{s['cache']} {'synchronized' if s['synchronized'] else 'syncing'}"
        if s["side"] == "master"
        else f"{s['cache']} sync from {s['master']} started"
        for s in orch["syncs"]
    ]
    return "log: " + (", ".join(said) or "no sync seen")


def _row(node: dict[str, Any], third: str, rest: str) -> str:
    """One node's line: its name, host and a short third column aligned, then ``rest``."""
    return f"    {node['name']:<16} {node['host']:<22} {third:<8} {rest}"


def render_text(report: dict[str, Any]) -> str:
    """The human-readable form of :func:`status_report`."""
    lines = [
        f"cluster {report['cluster']} (target {report['target_version']}, "
        f"probed via {report['probe_via']})"
    ]
    for region in report["regions"]:
        lines.append(f"region {region['name']}")
        for stripe in region["stripes"]:
            verdict = "healthy" if stripe["healthy"] else "DEGRADED"
            lines.append(f"  stripe {stripe['name']}: {verdict}")
            lines += [
                _row(st, st["role"], f"{st['state']:<22} {st['version'] or '-'}")
                for st in stripe["servers"]
            ]
        if region["clients"]:
            lines.append("  clients")
        lines += [_row(cl, _client_state(cl), cl["jar_version"] or "-") for cl in region["clients"]]
        if region["orchestrators"]:
            lines.append("  orchestrators")
        for orch in region["orchestrators"]:
            state = f"{orch['state']:<14} {orch['version'] or '-'}"
            lines.append(_row(orch, orch["role"], f"{state} {_replication(orch)}"))
    if report["warnings"]:
        lines.append("warnings:")
        lines += [f"  - {w}" for w in report["warnings"]]
    lines.append(
        "status: healthy"
        if report["healthy"]
        else f"status: DEGRADED ({len(report['warnings'])} warning(s))"
    )
    return "\n".join(lines)


def run_status(inventory_path: str, as_json: bool) -> int:
    """The `status` command: print the report; 0 healthy, 1 degraded.

    Raises:
        InventoryError: the inventory is invalid (the CLI exits 2).
    """
    inventory = load_inventory(inventory_path)
    with HostPool(inventory.ssh, retries=2, backoff_s=0.2) as pool:
        report = status_report(observe_cluster(inventory, pool))
    print(json.dumps(report, indent=2) if as_json else render_text(report))
    return 0 if report["healthy"] else 1
