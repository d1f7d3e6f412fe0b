"""The remote reads: the raw text of a server, client or orchestrator, fetched and parsed.

Over the management REST port (:mod:`bm_upgrade.probes.management`: HTTP, or HTTPS with a
login) or by running the kit's scripts through a :class:`Runner` (a
:class:`bm_upgrade.remote.Connection`). A node that cannot be read comes back as a model saying
so (``reachable`` False, ``error`` why), never as an exception: the caller decides what an
unreachable node means.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from bm_upgrade.errors import CommandTimeout, RemoteError, SecretUnavailable
from bm_upgrade.inventory import Client, Orchestrator, Server
from bm_upgrade.inventory.scripts import (
    java_home_problem,
    refused_for_java,
    script_argv,
    with_script_input,
)
from bm_upgrade.probes.management import management_json
from bm_upgrade.probes.models import ClientStatus, ServerStatus
from bm_upgrade.probes.parsers import (
    jar_set_version,
    parse_version,
    server_status_from_rest,
    server_status_from_stat,
    terracotta_jars,
)
from bm_upgrade.remote.quoting import Command, Ran, shell

STAT_PATH = "/tc-management-api/v2/local/stat"
TOPOLOGY_PATH = "/tc-management-api/v2/agents/topologies/servers"


class Runner(Protocol):
    """What probes need from a connection: run a command on its host."""

    host: str

    def run(self, command: Command, timeout: float | None = None, check: bool = True) -> Ran: ...


def probe_server_rest(server: Server, timeout: float = 5.0) -> ServerStatus:
    """A server's status from its management REST port (HTTPS with its region's login when
    secured: :mod:`bm_upgrade.probes.management`)."""
    try:
        stat = management_json(server, STAT_PATH, timeout)
    except OSError as exc:
        return ServerStatus.unreachable(server, str(exc))
    try:
        topology: dict[str, Any] | None = management_json(server, TOPOLOGY_PATH, timeout)
    except OSError:
        topology = None  # an old agent without topologies: version stays unknown
    return server_status_from_rest(server, stat, topology)


def kit_version(conn: Runner, node: Server | Orchestrator, timeout: float = 30.0) -> str | None:
    """The version of ``node``'s kit root on the connection's host (``version.sh``)."""
    result = conn.run(script_argv(node, "version.sh"), timeout=timeout, check=False)
    return parse_version(result.stdout) if result.exit_code == 0 else None


def probe_server_ssh(conn: Runner, server: Server, timeout: float = 30.0) -> ServerStatus:
    """A server's status from ``server-stat.sh`` (and ``version.sh``) run on its host."""
    argv = script_argv(server, "server-stat.sh", "-s", f"{server.host}:{server.management_port}")
    try:
        command = with_script_input(shell(argv), server, "server-stat.sh")
        result = conn.run(command, timeout=timeout, check=False)
    except (RemoteError, SecretUnavailable) as exc:
        return ServerStatus.unreachable(server, str(exc))
    if result.exit_code != 0 and refused_for_java(result.stdout + result.stderr):
        return ServerStatus.unreachable(server, java_home_problem(server))
    if result.exit_code != 0 and not result.stdout.strip():
        return ServerStatus.unreachable(
            server, f"server-stat.sh exited {result.exit_code} on {server.host}"
        )
    status = server_status_from_stat(server, result.stdout, None)
    if not status.reachable:
        return status
    try:
        version = kit_version(conn, server, timeout)
    except RemoteError:
        version = None
    return replace(status, version=version)


def probe_client(conn: Runner, client: Client, timeout: float = 30.0) -> ClientStatus:
    """A client's state: its status_command's exit code, and the Terracotta jars in lib_dir.

    The operator's status_command never appears in ``error`` (it may carry anything): the
    error names the client and what went wrong; the command itself is logged at DEBUG by the
    connection.
    """
    running: bool | None = None
    if client.status_command:
        try:
            running = conn.run(client.status_command, timeout=timeout, check=False).exit_code == 0
        except CommandTimeout as exc:
            return ClientStatus.unknown(
                client,
                f"the status command of client {client.name} on "
                f"host {client.host} did not finish within "
                f"{exc.timeout_s:g} s",
            )
        except RemoteError as exc:
            return ClientStatus.unknown(
                client,
                f"cannot run the status command of client "
                f"{client.name} on host {client.host} "
                f"({type(exc).__name__})",
            )
    try:
        listing = conn.run(shell(["ls", "-1p", "--", client.lib_dir]), timeout=timeout, check=False)
    except RemoteError as exc:
        return ClientStatus.unknown(client, str(exc))
    jars = terracotta_jars(listing.stdout)
    return ClientStatus(client.name, client.host, running, jar_set_version(jars), jars=tuple(jars))
