"""`bm-upgrade status`: every server's role, state and version per region and stripe, the
clients, the orchestrators, and warnings. Exit 0 when healthy, 1 when degraded."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from bm_upgrade.inventory import Inventory, load_inventory
from bm_upgrade.probes import (
    UNKNOWN,
    ClientStatus,
    OrchestratorStatus,
    ServerStatus,
    StripeHealth,
    probe_client,
    probe_orchestrator,
    probe_server_rest,
    probe_server_ssh,
    stripe_health,
)
from bm_upgrade.remote import Connection, HostPool

T = TypeVar("T")
_PROBE_TIMEOUT_S = 10.0


@dataclass
class StripeReport:
    name: str
    health: StripeHealth
    servers: list[ServerStatus]


@dataclass
class RegionReport:
    name: str
    stripes: list[StripeReport] = field(default_factory=list)
    clients: list[ClientStatus] = field(default_factory=list)
    orchestrators: list[OrchestratorStatus] = field(default_factory=list)


@dataclass
class ClusterStatus:
    """What `status` found; healthy when there is no warning."""

    cluster: str
    target_version: str
    probe_via: str
    regions: list[RegionReport]
    warnings: list[str]

    @property
    def healthy(self) -> bool:
        return not self.warnings

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for region, report in zip(data["regions"], self.regions, strict=True):
            for stripe, stripe_report in zip(region["stripes"], report.stripes, strict=True):
                stripe["healthy"] = stripe_report.health.healthy
        data["healthy"] = self.healthy
        return data


def _parallel(items: list[T], probe: Callable[[T], Any]) -> list[Any]:
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(items))) as ex:
        return list(ex.map(probe, items))


def _per_host(
    pool: HostPool, hosts: list[str], unreachable: dict[str, str], action: Callable[[Connection], T]
) -> dict[str, T]:
    """Run ``action`` once per reachable host; record the hosts that fail."""
    todo = [h for h in dict.fromkeys(hosts) if h not in unreachable]
    outcome = pool.fan_out(todo, action)
    for host, exc in outcome.errors.items():
        unreachable[host] = str(exc)
    return outcome.results


def collect_status(inventory: Inventory, pool: HostPool) -> ClusterStatus:
    """Probe every node of the inventory (servers via REST or SSH per ``probe_via``)."""
    unreachable: dict[str, str] = {}
    servers = [server for _, _, server in inventory.servers()]
    if inventory.probe_via == "rest":
        statuses = _parallel(servers, lambda s: probe_server_rest(s, _PROBE_TIMEOUT_S))
    else:

        def probe_host(conn: Connection) -> list[ServerStatus]:
            conn.open()
            return [
                probe_server_ssh(conn, s, _PROBE_TIMEOUT_S) for s in servers if s.host == conn.host
            ]

        by_host = _per_host(pool, [s.host for s in servers], unreachable, probe_host)
        found = {st.name: st for sts in by_host.values() for st in sts}
        statuses = [
            found.get(s.name)
            or ServerStatus(
                s.name,
                s.host,
                UNKNOWN,
                UNKNOWN,
                UNKNOWN,
                None,
                False,
                error=unreachable.get(s.host),
            )
            for s in servers
        ]
    by_name: dict[str, ServerStatus] = {st.name: st for st in statuses}

    clients = [c for r in inventory.regions for c in r.clients]
    client_by_host = _per_host(
        pool,
        [c.host for c in clients],
        unreachable,
        lambda conn: [
            probe_client(conn.open(), c, _PROBE_TIMEOUT_S) for c in clients if c.host == conn.host
        ],
    )
    client_found = {cs.name: cs for css in client_by_host.values() for cs in css}

    orchs = [o for r in inventory.regions for o in r.orchestrators]
    orch_by_host = _per_host(
        pool,
        [o.host for o in orchs],
        unreachable,
        lambda conn: [probe_orchestrator(conn.open(), o) for o in orchs if o.host == conn.host],
    )
    orch_found = {os_.name: os_ for oss in orch_by_host.values() for os_ in oss}

    warnings: list[str] = []
    regions: list[RegionReport] = []
    for region in inventory.regions:
        report = RegionReport(region.name)
        for stripe in region.stripes:
            sts = [by_name[s.name] for s in stripe.servers]
            health = stripe_health(stripe, sts)
            warnings += [f"{region.name}/{p}" for p in health.problems]
            if len(stripe.servers) == 1:
                warnings.append(
                    f"{region.name}/stripe {stripe.name} has no mirror: upgrading it means downtime"
                )
            report.stripes.append(StripeReport(stripe.name, health, sts))
        report.clients = [
            client_found.get(c.name)
            or ClientStatus(
                c.name, c.host, None, None, reachable=False, error=unreachable.get(c.host)
            )
            for c in region.clients
        ]
        report.orchestrators = [
            orch_found.get(o.name)
            or OrchestratorStatus(o.name, o.host, reachable=False, error=unreachable.get(o.host))
            for o in region.orchestrators
        ]
        for orch in report.orchestrators:
            if orch.host not in unreachable and orch.state not in {"running", "standby"}:
                warnings.append(
                    f"{region.name}/orchestrator {orch.name} is {orch.state or 'not answering'}"
                )
            for cache in orch.caches:
                if cache.state != "ACTIVE":
                    warnings.append(
                        f"{region.name}/orchestrator {orch.name}: cache "
                        f"{cache.name} is {cache.state}"
                    )
        regions.append(report)

    warnings += _version_warnings(regions)
    warnings += [f"host {host} is unreachable: {why}" for host, why in unreachable.items()]
    return ClusterStatus(
        inventory.cluster, inventory.target_version, inventory.probe_via, regions, warnings
    )


def _version_warnings(regions: list[RegionReport]) -> list[str]:
    versions: dict[str, list[str]] = {}
    for region in regions:
        for stripe in region.stripes:
            for st in stripe.servers:
                if st.version:
                    versions.setdefault(st.version, []).append(st.name)
        for orch in region.orchestrators:
            if orch.version:
                versions.setdefault(orch.version, []).append(orch.name)
    if len(versions) <= 1:
        return []
    parts = [f"{v} ({', '.join(names)})" for v, names in sorted(versions.items())]
    return ["mixed versions: " + "; ".join(parts)]


def render_text(status: ClusterStatus) -> str:
    """The human-readable report."""
    lines = [
        f"cluster {status.cluster} (target {status.target_version}, probed via {status.probe_via})"
    ]
    for region in status.regions:
        lines.append(f"region {region.name}")
        for stripe in region.stripes:
            verdict = "healthy" if stripe.health.healthy else "DEGRADED"
            lines.append(f"  stripe {stripe.name}: {verdict}")
            for st in stripe.servers:
                lines.append(
                    f"    {st.name:<16} {st.host:<22} {st.role:<8} {st.state:<22} "
                    f"{st.version or '-'}"
                )
        if region.clients:
            lines.append("  clients")
        for cl in region.clients:
            state = (
                "unreachable"
                if not cl.reachable
                else "unknown"
                if cl.running is None
                else "running"
                if cl.running
                else "stopped"
            )
            lines.append(f"    {cl.name:<16} {cl.host:<22} {state:<8} {cl.jar_version or '-'}")
        if region.orchestrators:
            lines.append("  orchestrators")
        for orch in region.orchestrators:
            caches = ", ".join(f"{c.name}={c.state}" for c in orch.caches) or "-"
            lines.append(
                f"    {orch.name:<16} {orch.host:<22} {orch.role or '-':<8} "
                f"{orch.state or 'not answering':<14} {orch.version or '-'} "
                f"caches: {caches}"
            )
    if status.warnings:
        lines.append("warnings:")
        lines += [f"  - {w}" for w in status.warnings]
    lines.append(
        "status: healthy"
        if status.healthy
        else f"status: DEGRADED ({len(status.warnings)} warning(s))"
    )
    return "\n".join(lines)


def run_status(inventory_path: str, as_json: bool) -> int:
    """The `status` command: print the report; 0 healthy, 1 degraded.

    Raises:
        InventoryError: the inventory is invalid (the CLI exits 2).
    """
    inventory = load_inventory(inventory_path)
    with HostPool(inventory.ssh, retries=2, backoff_s=0.2) as pool:
        status = collect_status(inventory, pool)
    print(json.dumps(status.as_dict(), indent=2) if as_json else render_text(status))
    return 0 if status.healthy else 1
