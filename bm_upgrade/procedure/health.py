"""The one health check of a look at the cluster.

``bm-upgrade status`` renders it, the sync-status sensor compares it with its previous look,
and the server check (the ``verify_servers`` step, and the check before the first client or
orchestrator is touched: docs/safety.md rules 5 and 6) raises on it, so the three never
disagree on what a healthy cluster is: in every stripe one ACTIVE-COORDINATOR and every other
server PASSIVE-STANDBY, one version across the servers and orchestrators, every orchestrator
running with its caches ACTIVE.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from bm_upgrade.inventory import Client, Inventory, Orchestrator, Server, Stripe
from bm_upgrade.plan import ACTIVE, STANDBY
from bm_upgrade.probes import OrchestratorStatus, ServerStatus
from bm_upgrade.procedure.seen import Seen


@dataclass(frozen=True)
class StripeHealth:
    """One stripe's part of the check: its ACTIVE, its PASSIVE-STANDBY mirrors, what is wrong.

    A value of its own because preflight tells a stripe without an ACTIVE from one whose
    mirror is on its way back, and ``status --json`` prints it per stripe.
    """

    stripe: str
    active: str | None
    standbys: list[str]
    problems: list[str]

    @property
    def healthy(self) -> bool:
        return not self.problems


def stripe_health(stripe: Stripe, statuses: list[ServerStatus]) -> StripeHealth:
    """One ACTIVE-COORDINATOR, every other server PASSIVE-STANDBY; else the problems."""
    active = [s.name for s in statuses if s.state == ACTIVE]
    standbys = [s.name for s in statuses if s.state == STANDBY]
    problems: list[str] = []
    if not active:
        problems.append(f"stripe {stripe.name} has no ACTIVE server")
    elif len(active) > 1:
        problems.append(
            f"stripe {stripe.name} has {len(active)} ACTIVE servers "
            f"({', '.join(active)}): split brain"
        )
    for status in statuses:
        if status.name in active or status.name in standbys:
            continue
        if not status.reachable:
            problems.append(f"server {status.name} on {status.host} is unreachable")
        else:
            problems.append(f"server {status.name} is {status.state}, not {STANDBY}")
    if len(stripe.servers) > 1 and not standbys:
        problems.append(f"stripe {stripe.name} has no {STANDBY} mirror")
    return StripeHealth(stripe.name, active[0] if active else None, standbys, problems)


@dataclass(frozen=True)
class Health(Mapping[str, StripeHealth]):
    """What one look found wrong. As a mapping: each stripe's verdict by ``region/stripe``.

    Attributes:
        stripes: every stripe's verdict, by ``region/stripe``.
        unmirrored: the stripes of a single server (by design; upgrading one means downtime).
        without_standby: the stripes with mirrors but none PASSIVE-STANDBY, with their
            servers in words.
        versions: per version, the servers and orchestrators running it (or, for a stopped
            server, whose kit root holds it); unknown versions are left out.
        orchestrators: per region, its orchestrators not doing their job and caches not
            ACTIVE, in words (orchestrators on unreachable hosts are left to ``unreachable``).
    """

    stripes: dict[str, StripeHealth] = field(default_factory=dict)
    unmirrored: list[str] = field(default_factory=list)
    without_standby: dict[str, str] = field(default_factory=dict)
    versions: dict[str, list[str]] = field(default_factory=dict)
    orchestrators: dict[str, list[str]] = field(default_factory=dict)

    def __getitem__(self, key: str) -> StripeHealth:
        return self.stripes[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.stripes)

    def __len__(self) -> int:
        return len(self.stripes)

    @property
    def mixed(self) -> bool:
        return len(self.versions) > 1

    def stripe_problems(self) -> list[str]:
        """Every stripe's problems, in inventory order."""
        return [p for verdict in self.stripes.values() for p in verdict.problems]


def _orchestrator_problems(status: OrchestratorStatus | None, orch: Orchestrator) -> list[str]:
    """An orchestrator doing its job: its process runs and its ``<bind>`` port listens (it has
    no status endpoint), and no sync its replication log shows begun is left unfinished."""
    if status is None:
        return []  # not looked at, or its host is unreachable (reported as such)
    if status.running is None:
        return [f"orchestrator {orch.name} could not be read ({status.error})"]
    if not status.running:
        return [f"orchestrator {orch.name} is not running"]
    problems = []
    if not status.listening:
        problems.append(f"orchestrator {orch.name} does not listen on {status.bind}")
    problems += [
        f"orchestrator {orch.name}: replica {sync.replica} of cache {sync.cache} not "
        f"synchronized (sync initiated{' at ' + sync.at if sync.at else ''})"
        for sync in status.unsynced()
    ]
    return problems


def _version(
    servers: Mapping[str, Seen],
    orchestrators: Mapping[str, OrchestratorStatus],
    node: Server | Client | Orchestrator,
) -> str | None:
    """A server's running version (or its kit root's, stopped); an orchestrator's."""
    if isinstance(node, Server):
        seen = servers.get(node.name)
        return seen.node_state.version if seen else None
    if isinstance(node, Orchestrator) and node.name in orchestrators:
        return orchestrators[node.name].version
    return None


def check(
    inventory: Inventory,
    servers: Mapping[str, Seen],
    orchestrators: Mapping[str, OrchestratorStatus],
    unreachable: Mapping[str, str],
) -> Health:
    """The health of one look at ``inventory``'s nodes: ``servers`` and ``orchestrators``
    as seen, by name, and the ``unreachable`` hosts with why. A server on an unreachable
    host counts as unreachable; clients and orchestrators not looked at count as fine."""

    def server_status(server: Server) -> ServerStatus:
        seen = servers.get(server.name)
        if seen is None:
            return ServerStatus.unreachable(server, unreachable.get(server.host))
        return seen.status

    stripes: dict[str, StripeHealth] = {}
    unmirrored: list[str] = []
    without_standby: dict[str, str] = {}
    for region, stripe in inventory.stripes():
        key = f"{region.name}/{stripe.name}"
        stripes[key] = stripe_health(stripe, [server_status(s) for s in stripe.servers])
        if len(stripe.servers) == 1:
            unmirrored.append(key)
        elif not stripes[key].standbys:
            without_standby[key] = ", ".join(
                servers[s.name].describe() if s.name in servers else f"{s.name} unreachable"
                for s in stripe.servers
            )
    orchestrator_problems: dict[str, list[str]] = {}
    for region, orch in inventory.orchestrators():
        orchestrator_problems.setdefault(region.name, []).extend(
            _orchestrator_problems(orchestrators.get(orch.name), orch)
        )
    versions: dict[str, list[str]] = {}
    for node in inventory.nodes():
        if version := _version(servers, orchestrators, node):
            versions.setdefault(version, []).append(node.name)
    return Health(
        stripes,
        unmirrored,
        without_standby,
        versions,
        {region: problems for region, problems in orchestrator_problems.items() if problems},
    )
