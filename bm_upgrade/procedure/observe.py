"""One look at the whole cluster: every server, client and orchestrator, as the plan needs it.

Preflight, verify, dry runs, the report, ``bm-upgrade status`` and the sync-status sensor all
start from :func:`observe_cluster`, whose view carries the one health check of that look
(:mod:`bm_upgrade.procedure.health`); the server steps look again, stripe by stripe, before
every step (:mod:`bm_upgrade.procedure.waits`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from bm_upgrade.errors import RemoteError, StepFailed
from bm_upgrade.inventory import Client, Inventory, Orchestrator, Server
from bm_upgrade.plan import NodeState
from bm_upgrade.probes import (
    ClientStatus,
    OrchestratorStatus,
    ServerStatus,
    probe_client,
    probe_orchestrator,
)
from bm_upgrade.procedure.health import Health, check
from bm_upgrade.procedure.seen import Seen
from bm_upgrade.procedure.waits import Hosts, Watch
from bm_upgrade.remote import Connection, HostPool


@dataclass
class ClusterView:
    """What was seen of the nodes of ``inventory`` at one moment.

    Attributes:
        servers: per server name, probe + process + installed kit.
        clients: per client name.
        orchestrators: per orchestrator name.
        unreachable: per host, why it could not be reached (its nodes are in none of the
            above).
    """

    inventory: Inventory
    servers: dict[str, Seen] = field(default_factory=dict)
    clients: dict[str, ClientStatus] = field(default_factory=dict)
    orchestrators: dict[str, OrchestratorStatus] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)

    @cached_property
    def health(self) -> Health:
        """The one health check of this look (made when first read, once the look is done)."""
        return check(self.inventory, self.servers, self.orchestrators, self.unreachable)

    def server_problems(self, target: str) -> list[str]:
        """What keeps the servers from being all on ``target`` with one ACTIVE and
        PASSIVE-STANDBY mirrors per stripe (docs/safety.md rules 5 and 6): servers on another
        version, the stripes' problems of the health check, unreachable hosts (empty: none).
        The ``verify_servers`` step and the check before the first client or orchestrator is
        touched raise on it."""
        wrong = [s.describe() for s in self.servers.values() if s.node_state.version != target]
        return wrong + self.health.stripe_problems() + list(self.unreachable.values())

    def server_status(self, server: Server) -> ServerStatus:
        """The server's probe answer; on an unreachable host, an unreachable status saying
        why."""
        seen = self.servers.get(server.name)
        if seen is None:
            return ServerStatus.unreachable(server, self.unreachable.get(server.host))
        return seen.status

    def node_states(self) -> dict[str, NodeState]:
        """The observed state per node, as :func:`bm_upgrade.plan.make_plan` takes it."""
        states = {name: seen.node_state for name, seen in self.servers.items()}
        for name, client in self.clients.items():
            if client.reachable:
                states[name] = NodeState(client.running is not False, client.jar_version)
        for name, orch in self.orchestrators.items():
            if orch.running is not None:
                states[name] = NodeState(orch.running, orch.version)
        return states

    def versions(self) -> dict[str, str | None]:
        """Node name -> version, for the report's version matrix."""
        return {name: state.version for name, state in self.node_states().items()}

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able summary (for metadata, reports and the sync-status sensor's memory).

        A server's ``state`` is its probed state, else ``starting`` (a process of it runs)
        or ``stopped``; an orchestrator's is ``up`` (process and port), ``starting``,
        ``stopped`` or ``unknown`` (:class:`~bm_upgrade.probes.OrchestratorStatus`).
        """
        return {
            "servers": {
                name: {
                    "state": seen.status.state
                    if seen.status.reachable
                    else ("starting" if seen.alive else "stopped"),
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
                    "version": o.version,
                    "unsynced": sorted(f"{s.replica}/{s.cache}" for s in o.unsynced()),
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


PARALLEL = 8
"""Nodes looked at side by side (threads: the probes wait on the network, not the CPU)."""


def _probe_on_host(conn: Connection, nodes: list[Client | Orchestrator]) -> list[Any]:
    """The clients and orchestrators of one host, once its connection is open (a host that
    cannot be reached raises here, once, rather than once per node)."""
    conn.open()
    return [
        probe_client(conn, node) if isinstance(node, Client) else probe_orchestrator(conn, node)
        for node in nodes
        if node.host == conn.host
    ]


def _look_at_servers(view: ClusterView, hosts: Hosts) -> None:
    """Every server of the view's inventory not on a host known unreachable, side by side,
    into ``view``.

    A server answering its probe with its version is taken at its word (no SSH command, see
    :meth:`~bm_upgrade.procedure.waits.Watch.observe_servers`), so with REST probes a healthy
    cluster costs no SSH session for its servers; a host that had to be asked over SSH and
    could not be reached goes to ``unreachable``.
    """
    watch = Watch(view.inventory, hosts)
    servers = [s for _, _, s in view.inventory.servers() if s.host not in view.unreachable]

    def server_seen(server: Server) -> Seen | RemoteError:
        try:
            return watch.observe_servers([server])[server.name]
        except RemoteError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=PARALLEL) as ex:
        for server, seen in zip(servers, ex.map(server_seen, servers), strict=True):
            if isinstance(seen, RemoteError):
                view.unreachable[seen.host] = str(seen)
            else:
                view.servers[server.name] = seen


def observe_cluster(
    inventory: Inventory,
    pool: HostPool,
    *,
    clients: bool = True,
    orchestrators: bool = True,
    reach_all: bool = False,
) -> ClusterView:
    """Probe every server of the cluster, and its clients and orchestrators unless asked not
    to, side by side.

    Servers as :func:`_look_at_servers` says; clients and orchestrators are read over SSH,
    one connection per host (a host that cannot be reached goes to ``unreachable``). With
    ``reach_all`` every host of the kinds asked for is first checked over SSH (preflight:
    every host reachable), and nodes on unreachable hosts are not probed.
    """
    others: list[Client | Orchestrator] = []
    if clients:
        others += [client for _, client in inventory.clients()]
    if orchestrators:
        others += [orch for _, orch in inventory.orchestrators()]
    view = ClusterView(inventory)
    if reach_all:
        hosts = [server.host for _, _, server in inventory.servers()]
        view.unreachable = unreachable_hosts(
            pool, list(dict.fromkeys(hosts + [node.host for node in others]))
        )
    others = [node for node in others if node.host not in view.unreachable]
    with ThreadPoolExecutor(max_workers=1) as ex:
        by_host = ex.submit(
            pool.fan_out, [node.host for node in others], lambda c: _probe_on_host(c, others)
        )
        _look_at_servers(view, pool)
        outcome = by_host.result()
    view.unreachable.update({host: str(exc) for host, exc in outcome.errors.items()})
    found = {status.name: status for statuses in outcome.results.values() for status in statuses}
    for node in others:
        status = found.get(node.name)
        if isinstance(status, ClientStatus):
            view.clients[node.name] = status
        elif isinstance(status, OrchestratorStatus):
            view.orchestrators[node.name] = status
    return view


def require_servers_ready(inventory: Inventory, hosts: Hosts, target: str, who: str) -> None:
    """docs/safety.md rules 5 and 6: every server of every region on ``target``, every stripe one
    ACTIVE plus PASSIVE-STANDBY mirrors, before ``who`` (clients, orchestrators) is touched.
    It looks at the servers only, over any :class:`~bm_upgrade.procedure.waits.Hosts`.

    Raises:
        StepFailed: naming what is not ready; nothing was touched.
    """
    view = ClusterView(inventory)
    _look_at_servers(view, hosts)
    problems = view.server_problems(target)
    if problems:
        raise StepFailed(
            who,
            f"the {who} were not touched: the servers are not all on "
            f"{target} with a PASSIVE-STANDBY mirror per stripe ("
            + "; ".join(problems)
            + "); finish the server steps, then rerun",
        )
