"""Pure parsers: the raw text a probe fetched, turned into a model.

Each is tested against saved real output under tests/fixtures/ (the formats are those of
docs/terracotta.md): ``server-stat.sh``, the REST ``stat`` and topology JSON, ``version.sh``,
a client's ``lib`` listing (an orchestrator's wan.xml and replication log: ``wanlog.py``).
"""

from __future__ import annotations

import re
from typing import Any

from bm_upgrade.inventory import Server
from bm_upgrade.probes.management import login_refused
from bm_upgrade.probes.models import UNKNOWN, ServerStatus

_STAT_LINE = re.compile(
    r"^(?P<prefix>.+)\.(?P<key>health|role|state|port|group name|error):\s?(?P<value>.*)$"
)
_VERSION = re.compile(r"Terracotta Enterprise (?P<version>\d+(?:\.\d+)+)")
_TOPOLOGY_VERSION = re.compile(r"(?:^|\s)(?P<version>\d+(?:\.\d+)+)\b")
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
        return ServerStatus.unreachable(
            server, f"server-stat.sh printed no block for {server.name}"
        )
    health = block.get("health", UNKNOWN)
    error = block.get("error")
    if health == UNKNOWN or error is not None:
        return ServerStatus.unreachable(server, stat_error(server, error))
    return ServerStatus(
        name=server.name,
        host=server.host,
        health=health,
        role=block.get("role", UNKNOWN),
        state=block.get("state", UNKNOWN),
        version=version,
        reachable=True,
        group=None if block.get("group name") in (None, UNKNOWN) else block.get("group name"),
    )


AUTH_ERROR = "Authentication error"
"""How ``server-stat.sh``'s ``.error`` line for a refused login begins (docs/terracotta.md)."""


def stat_error(server: Server, error: str | None) -> str:
    """What an unreachable block of ``server-stat.sh`` means for ``server``: its ``.error``
    text, and for a refused login what to check in the inventory."""
    said = f"server-stat.sh: {error}" if error else "server-stat.sh: unknown health"
    if error is None or not error.startswith(AUTH_ERROR):
        return f"server {server.name} ({server.host}) did not answer ({said})"
    security = server.management_security
    if security is None:
        return (
            f"the management port of server {server.name} ({server.host}:"
            f"{server.management_port}) asks for a login ({said}); name its user and password "
            "source under management_security for its region in the inventory"
        )
    return login_refused(server, security, said)


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
    """The version in the ``Version`` attribute of server ``name`` in the topologies JSON:
    the product gives ``Terracotta Enterprise 4.2.1`` there (docs/terracotta.md, "Management
    REST"), a bare ``4.2.1`` is read the same; None when there is none."""
    for entity in topology.get("entities", []):
        for group in entity.get("serverGroupEntities", []):
            for srv in group.get("servers", []):
                attrs = srv.get("attributes", {})
                if attrs.get("Name") == name and attrs.get("Version"):
                    match = _TOPOLOGY_VERSION.search(str(attrs["Version"]))
                    return match["version"] if match else None
    return None


def parse_version(text: str) -> str | None:
    """The version in ``version.sh`` output (``Terracotta Enterprise 4.2.1, as of ...``)."""
    match = _VERSION.search(text)
    return match["version"] if match else None


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
