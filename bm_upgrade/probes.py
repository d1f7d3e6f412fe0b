"""Read the live state of servers, kits, clients and orchestrators.

Transport returns raw text; a pure parser turns it into a model (parsers are tested against
saved real output under tests/fixtures/). The probe functions fetch that text either over HTTP
(urllib; the management REST port, the orchestrator's status port) or by running the kit's
scripts through a :class:`Runner` (a :class:`bm_upgrade.remote.Connection`).
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Protocol

from bm_upgrade.errors import CommandTimeout, RemoteError
from bm_upgrade.inventory import Client, Orchestrator, Server, Stripe
from bm_upgrade.inventory_checks import url_host
from bm_upgrade.remote.quoting import Command, Ran, shell

UNKNOWN = "unknown"
STAT_PATH = "/tc-management-api/v2/local/stat"
TOPOLOGY_PATH = "/tc-management-api/v2/agents/topologies/servers"
WAN_STATUS_PATH = "/wan/status"


class Runner(Protocol):
    """What probes need from a connection: run a command on its host."""

    host: str

    def run(self, command: Command, timeout: float | None = None, check: bool = True) -> Ran: ...


# -- models ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServerStatus:
    """One Terracotta server as seen now."""

    name: str
    host: str
    health: str
    role: str
    state: str
    version: str | None
    reachable: bool
    group: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class StripeHealth:
    """A stripe is healthy with exactly one ACTIVE-COORDINATOR and every other server
    PASSIVE-STANDBY."""

    stripe: str
    active: str | None
    standbys: list[str]
    problems: list[str]

    @property
    def healthy(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ClientStatus:
    """An application JVM: running (None: no status_command) and its Terracotta jars.

    ``jar_version`` is the toolkit jar's version when ``lib_dir`` holds exactly one
    ehcache-ee jar and one toolkit runtime jar (a set the application can run on), else None;
    ``jars`` names the Terracotta jars found.
    """

    name: str
    host: str
    running: bool | None
    jar_version: str | None
    reachable: bool = True
    error: str | None = None
    jars: tuple[str, ...] = ()


@dataclass(frozen=True)
class CacheState:
    name: str
    state: str


@dataclass(frozen=True)
class OrchestratorStatus:
    """A WAN orchestrator; not reachable means not running (it does not answer)."""

    name: str
    host: str
    reachable: bool
    role: str | None = None
    state: str | None = None
    version: str | None = None
    region: str | None = None
    caches: list[CacheState] = field(default_factory=list)
    error: str | None = None


# -- parsers (pure) -------------------------------------------------------------------------
_STAT_LINE = re.compile(
    r"^(?P<prefix>.+)\.(?P<key>health|role|state|port|group name|error):\s?(?P<value>.*)$"
)
_VERSION = re.compile(r"Terracotta Enterprise (?P<version>\d+(?:\.\d+)+)")
_TOOLKIT_JAR = re.compile(r"^terracotta-toolkit-runtime-ee-(?P<version>\d+(?:\.\d+)+)\.jar$")
_EHCACHE_JAR = re.compile(r"^ehcache-ee-(?P<version>\d+(?:\.\d+)+)\.jar$")


def parse_server_stat(text: str) -> list[dict[str, str]]:
    """Blocks of ``server-stat.sh`` output, one dict per server with its ``prefix``.

    The prefix is the server's name, or its host when the server could not be reached.
    """
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        match = _STAT_LINE.match(line)
        if not match:
            if not line and current:
                blocks.append(current)
                current = {}
            continue
        prefix = match["prefix"]
        if current and current.get("prefix") != prefix and match["key"] != "error":
            blocks.append(current)
            current = {}
        current.setdefault("prefix", prefix)
        current[match["key"]] = match["value"].strip()
    if current:
        blocks.append(current)
    return blocks


def server_status_from_stat(server: Server, text: str, version: str | None) -> ServerStatus:
    """The status of ``server`` from ``server-stat.sh -s host:port`` output."""
    blocks = parse_server_stat(text)
    hostport = f"{server.host}:{server.management_port}"
    block = next((b for b in blocks if b["prefix"] == server.name), None)
    if block is None:
        block = next(
            (
                b
                for b in blocks
                if b["prefix"] in (server.host, hostport)
                and b.get("port", str(server.management_port)) == str(server.management_port)
            ),
            None,
        )
    if block is None and len(blocks) == 1:
        block = blocks[0]
    if block is None:
        return _unreachable(server, f"server-stat.sh printed no block for {server.name}")
    health = block.get("health", UNKNOWN)
    error = block.get("error")
    reachable = health != UNKNOWN and error is None
    return ServerStatus(
        name=server.name,
        host=server.host,
        health=health,
        role=block.get("role", UNKNOWN),
        state=block.get("state", UNKNOWN),
        version=version if reachable else None,
        reachable=reachable,
        group=None if block.get("group name") in (None, UNKNOWN) else block.get("group name"),
        error=error,
    )


def server_status_from_rest(
    server: Server, stat: dict[str, Any], topology: dict[str, Any] | None
) -> ServerStatus:
    """The status of ``server`` from the REST ``stat`` JSON and (optionally) the topology."""
    return ServerStatus(
        name=server.name,
        host=server.host,
        health=str(stat.get("health", UNKNOWN)),
        role=str(stat.get("role", UNKNOWN)),
        state=str(stat.get("state", UNKNOWN)),
        version=version_from_topology(topology, str(stat.get("name") or server.name))
        if topology
        else None,
        reachable=True,
        group=stat.get("serverGroupName"),
    )


def version_from_topology(topology: dict[str, Any], name: str) -> str | None:
    """The ``Version`` attribute of server ``name`` in the topologies JSON."""
    for entity in topology.get("entities", []):
        for group in entity.get("serverGroupEntities", []):
            for srv in group.get("servers", []):
                attrs = srv.get("attributes", {})
                if attrs.get("Name") == name and attrs.get("Version"):
                    return str(attrs["Version"])
    return None


def parse_version(text: str) -> str | None:
    """The version in ``version.sh`` output (``Terracotta Enterprise 4.2.1, as of ...``)."""
    match = _VERSION.search(text)
    return match["version"] if match else None


def jar_version(listing: str) -> str | None:
    """The toolkit runtime version from a folder listing (one file name a line)."""
    for line in listing.splitlines():
        match = _TOOLKIT_JAR.match(line.strip().rsplit("/", 1)[-1])
        if match:
            return match["version"]
    return None


def terracotta_jars(listing: str) -> list[str]:
    """The Terracotta client jars (``ehcache-ee-<v>.jar``, ``terracotta-toolkit-runtime-ee-
    <v>.jar``) among the files of an ``ls -1p`` listing, whose folders end in ``/``."""
    return [
        name
        for name in (line.strip() for line in listing.splitlines())
        if _EHCACHE_JAR.match(name) or _TOOLKIT_JAR.match(name)
    ]


def jar_set_version(jars: list[str] | tuple[str, ...]) -> str | None:
    """The toolkit version of a complete set: exactly one ehcache-ee jar and one toolkit
    runtime jar; None for anything else (no jar, a jar missing, two of a kind)."""
    ehcache = [j for j in jars if _EHCACHE_JAR.match(j)]
    toolkit = [m["version"] for m in map(_TOOLKIT_JAR.match, jars) if m]
    return toolkit[0] if len(ehcache) == 1 and len(toolkit) == 1 else None


def parse_wan_bind(xml_text: str) -> tuple[str, int]:
    """``(host, port)`` of ``<bind>`` in a wan.xml.

    Raises:
        ValueError: not XML, or no ``<bind host= port=>``.
    """
    # The operator's own wan.xml from their own host: no entity expansion risk worth a
    # dependency (ElementTree does not fetch external entities).
    root = ET.fromstring(xml_text)  # noqa: S314
    for elem in root.iter():
        if elem.tag.rsplit("}", 1)[-1] == "bind":
            host, port = elem.get("host"), elem.get("port")
            if host and port and port.isdigit():
                return host, int(port)
    raise ValueError("no <bind host=... port=...> element")


def orchestrator_status_from_json(orch: Orchestrator, data: dict[str, Any]) -> OrchestratorStatus:
    """The status of ``orch`` from its ``/wan/status`` JSON."""
    caches = [
        CacheState(str(c.get("name")), str(c.get("state", UNKNOWN)))
        for c in data.get("caches", [])
        if isinstance(c, dict)
    ]
    return OrchestratorStatus(
        name=orch.name,
        host=orch.host,
        reachable=True,
        role=data.get("role"),
        state=data.get("state"),
        version=data.get("version"),
        region=data.get("region"),
        caches=caches,
    )


def stripe_health(stripe: Stripe, statuses: list[ServerStatus]) -> StripeHealth:
    """One ACTIVE-COORDINATOR, every other server PASSIVE-STANDBY; else the problems."""
    active = [s.name for s in statuses if s.state == "ACTIVE-COORDINATOR"]
    standbys = [s.name for s in statuses if s.state == "PASSIVE-STANDBY"]
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
            problems.append(f"server {status.name} is {status.state}, not PASSIVE-STANDBY")
    if len(stripe.servers) > 1 and not standbys:
        problems.append(f"stripe {stripe.name} has no PASSIVE-STANDBY mirror")
    return StripeHealth(stripe.name, active[0] if active else None, standbys, problems)


# -- probes (I/O) ---------------------------------------------------------------------------
def http_json(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """GET ``url`` and decode its JSON object.

    Raises:
        OSError: not reachable (urllib's URLError is an OSError), cut off mid-answer (a
            server stopping while it answers: http.client's errors are mapped here), or not
            a JSON object.
    """
    if not url.startswith(("http://", "https://")):
        raise OSError(f"not an http(s) URL: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            body = response.read()
    except http.client.HTTPException as exc:
        raise OSError(f"{url} broke off its answer ({exc!r})") from exc
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise OSError(f"{url} did not answer JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise OSError(f"{url} answered {type(data).__name__}, not a JSON object")
    return data


def _unreachable(server: Server, error: str) -> ServerStatus:
    return ServerStatus(
        name=server.name,
        host=server.host,
        health=UNKNOWN,
        role=UNKNOWN,
        state=UNKNOWN,
        version=None,
        reachable=False,
        error=error,
    )


def probe_server_rest(server: Server, timeout: float = 5.0) -> ServerStatus:
    """A server's status from its management REST port."""
    base = f"http://{url_host(server.host)}:{server.management_port}"
    try:
        stat = http_json(base + STAT_PATH, timeout)
    except OSError as exc:
        return _unreachable(server, f"{base}{STAT_PATH}: {getattr(exc, 'reason', exc)}")
    try:
        topology: dict[str, Any] | None = http_json(base + TOPOLOGY_PATH, timeout)
    except OSError:
        topology = None  # an old agent without topologies: version stays unknown
    return server_status_from_rest(server, stat, topology)


def kit_version(conn: Runner, install_dir: str, timeout: float = 30.0) -> str | None:
    """The version of the kit at ``install_dir`` on the connection's host (``version.sh``)."""
    result = conn.run(
        [f"{install_dir.rstrip('/')}/server/bin/version.sh"], timeout=timeout, check=False
    )
    return parse_version(result.stdout) if result.exit_code == 0 else None


def probe_server_ssh(conn: Runner, server: Server, timeout: float = 30.0) -> ServerStatus:
    """A server's status from ``server-stat.sh`` (and ``version.sh``) run on its host."""
    script = f"{server.install_dir.rstrip('/')}/server/bin/server-stat.sh"
    try:
        result = conn.run(
            [script, "-s", f"{server.host}:{server.management_port}"], timeout=timeout, check=False
        )
    except RemoteError as exc:
        return _unreachable(server, str(exc))
    if result.exit_code != 0 and not result.stdout.strip():
        return _unreachable(server, f"{script} exited {result.exit_code} on {server.host}")
    status = server_status_from_stat(server, result.stdout, None)
    if not status.reachable:
        return status
    try:
        version = kit_version(conn, server.install_dir, timeout)
    except RemoteError:
        version = None
    return ServerStatus(**{**status.__dict__, "version": version})


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
            return _client_unknown(
                client,
                f"the status command of client {client.name} on "
                f"host {client.host} did not finish within "
                f"{exc.timeout_s:g} s",
            )
        except RemoteError as exc:
            return _client_unknown(
                client,
                f"cannot run the status command of client "
                f"{client.name} on host {client.host} "
                f"({type(exc).__name__})",
            )
    try:
        listing = conn.run(shell(["ls", "-1p", "--", client.lib_dir]), timeout=timeout, check=False)
    except RemoteError as exc:
        return _client_unknown(client, str(exc))
    jars = terracotta_jars(listing.stdout)
    return ClientStatus(client.name, client.host, running, jar_set_version(jars), jars=tuple(jars))


def _client_unknown(client: Client, error: str) -> ClientStatus:
    return ClientStatus(client.name, client.host, None, None, reachable=False, error=error)


def read_wan_bind(conn: Runner, orch: Orchestrator) -> tuple[str, int]:
    """The ``<bind>`` address of the orchestrator's status port, from its wan.xml.

    Raises:
        RemoteError: the wan.xml could not be read.
        ValueError: it has no usable ``<bind>`` (the message names the file).
    """
    xml_text = conn.run(shell(["cat", "--", orch.wan_xml]), timeout=30.0).stdout
    try:
        return parse_wan_bind(xml_text)
    except (ValueError, ET.ParseError) as exc:
        raise ValueError(f"cannot read <bind> from {orch.wan_xml}: {exc}") from exc


def probe_orchestrator(
    conn: Runner, orch: Orchestrator, timeout: float = 5.0, bind: tuple[str, int] | None = None
) -> OrchestratorStatus:
    """An orchestrator's status from ``GET /wan/status`` on its wan.xml ``<bind>`` address
    (``bind``, when the caller already read it, saves reading wan.xml over SSH again)."""
    if bind is None:
        try:
            bind = read_wan_bind(conn, orch)
        except (RemoteError, ValueError) as exc:
            return OrchestratorStatus(orch.name, orch.host, reachable=False, error=str(exc))
    host, port = bind
    url = f"http://{url_host(host)}:{port}{WAN_STATUS_PATH}"
    try:
        data = http_json(url, timeout)
    except OSError as exc:
        return OrchestratorStatus(
            orch.name,
            orch.host,
            reachable=False,
            state="stopped",
            error=f"{url}: {getattr(exc, 'reason', exc)}",
        )
    return orchestrator_status_from_json(orch, data)
