"""What a probe found: one server, client or orchestrator as seen now."""

from __future__ import annotations

from dataclasses import dataclass

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
class WanConfig:
    """What the tool reads of an orchestrator's wan.xml: ``<bind>`` (its replication port),
    ``<logs>`` (the folder of its replication log; None when absent) and its caches."""

    bind: tuple[str, int]
    logs: str | None
    caches: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        """``host:port``, as the replication log names the orchestrator."""
        return f"{self.bind[0]}:{self.bind[1]}"


@dataclass(frozen=True)
class ReplicaSync:
    """The last sync the replication log shows for one replica and one cache (docs/terracotta.md,
    "WAN replication"). ``side`` "master": a master's FullScanMasterSynchronizer lines, the
    sync ``synchronized`` once "successfully synchronized"; "replica": a replica's
    FullScanReplicaSynchronizer SYNC_START (the guide documents no replica-side end line, so
    ``synchronized`` stays False there). ``replica`` is None on the replica side (the log
    is the replica's own)."""

    side: str
    cache: str
    master: str
    replica: str | None
    synchronized: bool
    at: str | None = None


@dataclass(frozen=True)
class LogMark:
    """Where a replication log stood at one look: its file and size in bytes (a later read
    from here sees only lines written since)."""

    path: str
    size: int


@dataclass(frozen=True)
class OrchestratorStatus:
    """A WAN orchestrator as the product shows it: it has no status endpoint, so this is its
    process, its ``<bind>`` port and its replication log.

    ``running``: a process started with its wan.xml runs; ``listening``: its ``<bind>`` port
    accepts a TCP connection (None for either: not read); ``version``: its kit root's
    ``version.sh``; ``syncs``: the last sync per replica and cache its log shows (lines
    written since the look's mark only, when it had one); ``log``: where the log stood.
    The guide documents no log line saying an orchestrator serves, so :attr:`up` (serving)
    is derived from the process and the port.
    """

    name: str
    host: str
    running: bool | None = None
    listening: bool | None = None
    version: str | None = None
    bind: str | None = None
    syncs: tuple[ReplicaSync, ...] = ()
    log: LogMark | None = None
    error: str | None = None

    @property
    def up(self) -> bool:
        """Serving, as far as can be seen: its process runs and its port listens."""
        return bool(self.running and self.listening)

    @property
    def state(self) -> str:
        """``up``, ``starting`` (runs, port not open yet), ``stopped`` or ``unknown``."""
        if self.running is None:
            return UNKNOWN
        if not self.running:
            return "stopped"
        return "up" if self.listening else "starting"

    def unsynced(self) -> list[ReplicaSync]:
        """The master side's syncs its log shows begun and not (yet) successful."""
        return [s for s in self.syncs if s.side == "master" and not s.synchronized]
