"""One look at the whole cluster: every server, client and orchestrator, as the plan needs it.

Preflight, verify, dry runs and the report all start from :func:`observe_cluster`; the server
steps look again, stripe by stripe, before every step (:mod:`bm_upgrade.procedure.waits`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bm_upgrade.errors import RemoteError, StepFailed
from bm_upgrade.inventory import Inventory, Server
from bm_upgrade.plan import NodeState
from bm_upgrade.probes import (
    ClientStatus,
    OrchestratorStatus,
    StripeHealth,
    probe_client,
    probe_orchestrator,
    stripe_health,
)
from bm_upgrade.procedure.waits import Seen, Watch
from bm_upgrade.remote import HostPool


@dataclass
class ClusterView:
    """What was seen of every node at one moment.

    Attributes:
        servers: per server name, probe + process + installed kit.
        clients: per client name.
        orchestrators: per orchestrator name.
        health: per ``region/stripe``, whether it has one ACTIVE and standby mirrors.
        unreachable: per host, why it could not be reached.
    """

    servers: dict[str, Seen] = field(default_factory=dict)
    clients: dict[str, ClientStatus] = field(default_factory=dict)
    orchestrators: dict[str, OrchestratorStatus] = field(default_factory=dict)
    health: dict[str, StripeHealth] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)

    def node_states(self) -> dict[str, NodeState]:
        """The observed state per node, as :func:`bm_upgrade.plan.make_plan` takes it."""
        states = {name: seen.node_state for name, seen in self.servers.items()}
        for name, client in self.clients.items():
            if client.reachable:
                states[name] = NodeState(client.running is not False, client.jar_version)
        for name, orch in self.orchestrators.items():
            if orch.reachable:
                states[name] = NodeState(True, orch.version)
            elif orch.error and orch.state == "stopped":
                states[name] = NodeState(False, None)
        return states

    def versions(self) -> dict[str, str | None]:
        """Node name -> version, for the report's version matrix."""
        return {name: state.version for name, state in self.node_states().items()}

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able summary (for metadata and reports)."""
        return {
            "servers": {
                name: {
                    "state": seen.status.state if seen.status.reachable else None,
                    "running": seen.running,
                    "version": seen.node_state.version,
                }
                for name, seen in self.servers.items()
            },
            "clients": {
                name: {"running": c.running, "version": c.jar_version, "reachable": c.reachable}
                for name, c in self.clients.items()
            },
            "orchestrators": {
                name: {
                    "state": o.state,
                    "role": o.role,
                    "version": o.version,
                    "caches": {c.name: c.state for c in o.caches},
                }
                for name, o in self.orchestrators.items()
            },
            "unhealthy": {key: h.problems for key, h in self.health.items() if not h.healthy},
            "unreachable": dict(self.unreachable),
        }


def unreachable_hosts(pool: HostPool, hosts: list[str]) -> dict[str, str]:
    """Every host of ``hosts`` that could not be reached, with the reason (empty: all
    reachable)."""
    result = pool.fan_out(hosts, lambda conn: conn.run("true", timeout=30.0))
    return {host: str(error) for host, error in result.errors.items()}


def _hosts_of(
    inventory: Inventory, *, servers: bool, clients: bool, orchestrators: bool
) -> list[str]:
    hosts: list[str] = []
    for region in inventory.regions:
        if servers:
            hosts += [s.host for stripe in region.stripes for s in stripe.servers]
        if clients:
            hosts += [c.host for c in region.clients]
        if orchestrators:
            hosts += [o.host for o in region.orchestrators]
    return list(dict.fromkeys(hosts))


PARALLEL = 8
"""Nodes looked at side by side (threads: the probes wait on the network, not the CPU)."""


def observe_cluster(
    inventory: Inventory,
    pool: HostPool,
    *,
    servers: bool = True,
    clients: bool = True,
    orchestrators: bool = True,
    reach_all: bool = False,
) -> ClusterView:
    """Probe every node of the cluster (or only the kinds asked for), side by side.

    A server answering its probe with its version is taken at its word (no SSH command, see
    :meth:`~bm_upgrade.procedure.waits.Watch.observe_servers`); a host that had to be asked
    over SSH and could not be reached goes to ``unreachable``. With ``reach_all`` every host
    of the kinds asked for is first checked over SSH (preflight: every host reachable), and
    nodes on unreachable hosts are not probed.
    """
    view = ClusterView()
    if reach_all:
        view.unreachable = unreachable_hosts(
            pool,
            _hosts_of(inventory, servers=servers, clients=clients, orchestrators=orchestrators),
        )
    watch = Watch(inventory, pool)
    server_list = [srv for _, _, srv in inventory.servers()] if servers else []
    client_list = [c for r in inventory.regions for c in r.clients] if clients else []
    orch_list = [o for r in inventory.regions for o in r.orchestrators] if orchestrators else []

    def server_seen(server: Server) -> Seen | RemoteError:
        try:
            return watch.observe_servers([server])[server.name]
        except RemoteError as exc:
            return exc

    def reachable(host: str) -> bool:
        return host not in view.unreachable

    with ThreadPoolExecutor(max_workers=PARALLEL) as ex:
        seen_servers = ex.map(server_seen, [s for s in server_list if reachable(s.host)])
        seen_clients = ex.map(
            lambda c: probe_client(pool.get(c.host), c),
            [c for c in client_list if reachable(c.host)],
        )
        seen_orchs = ex.map(
            lambda o: probe_orchestrator(pool.get(o.host), o),
            [o for o in orch_list if reachable(o.host)],
        )
        for server, seen in zip(
            [s for s in server_list if reachable(s.host)], seen_servers, strict=True
        ):
            if isinstance(seen, RemoteError):
                view.unreachable[seen.host] = str(seen)
            else:
                view.servers[server.name] = seen
        view.clients.update({c.name: c for c in seen_clients})
        view.orchestrators.update({o.name: o for o in seen_orchs})
    for region in inventory.regions:
        for stripe in region.stripes:
            if servers and all(s.name in view.servers for s in stripe.servers):
                view.health[f"{region.name}/{stripe.name}"] = stripe_health(
                    stripe, [view.servers[s.name].status for s in stripe.servers]
                )
    return view


def require_servers_ready(inventory: Inventory, pool: HostPool, target: str, who: str) -> None:
    """docs/safety.md rules 5 and 6: every server of every region on ``target``, every stripe one
    ACTIVE plus PASSIVE-STANDBY mirrors, before ``who`` (clients, orchestrators) is touched.

    Raises:
        StepFailed: naming what is not ready; nothing was touched.
    """
    view = observe_cluster(inventory, pool, clients=False, orchestrators=False)
    problems = [f"{host} unreachable ({why})" for host, why in view.unreachable.items()]
    problems += [p for health in view.health.values() for p in health.problems]
    problems += [
        seen.describe() for seen in view.servers.values() if seen.node_state.version != target
    ]
    if problems:
        raise StepFailed(
            who,
            f"the {who} were not touched: the servers are not all on "
            f"{target} with a PASSIVE-STANDBY mirror per stripe ("
            + "; ".join(problems)
            + "); finish the server steps, then rerun",
        )
