"""What a probe found: one server, client or orchestrator as seen now."""

from __future__ import annotations

from dataclasses import dataclass, field

from bm_upgrade.inventory import Client, Server

UNKNOWN = "unknown"


@dataclass(frozen=True)
class ServerStatus:
    """One Terracotta server as its probe answered (REST ``stat`` or ``server-stat.sh``)."""

    name: str
    host: str
    health: str
    role: str
    state: str
    version: str | None
    reachable: bool
    group: str | None = None
    error: str | None = None

    @classmethod
    def unreachable(cls, server: Server, error: str | None) -> ServerStatus:
        """A server that did not answer (``error`` says why, when known)."""
        return cls(server.name, server.host, UNKNOWN, UNKNOWN, UNKNOWN, None, False, error=error)


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

    @classmethod
    def unknown(cls, client: Client, error: str | None) -> ClientStatus:
        """A client whose state could not be read (``error`` says why, when known)."""
        return cls(client.name, client.host, None, None, reachable=False, error=error)


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
