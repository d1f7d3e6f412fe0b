"""What a sandbox topology says, once validated (:mod:`bm_upgrade.sandbox.topology` reads
and checks the file; the YAML it takes is described there)."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_HOSTS = 250  # one /24 loopback block; .254 serves the kits
WAN_PORT = 9889
WAN_CACHES = ("orders", "sessions")
JAVA_HOME_MODES = ("inventory", "setenv", "login", "none")
"""Where a sandbox names each host's Java (topology ``java_home``): the inventory it writes,
each kit root's ``server/bin/setenv.sh``, the hosts' SSH login environment, or nowhere."""


class TopologyError(Exception):
    """The topology file cannot be used; ``issues`` lists every problem (field: fix)."""

    def __init__(self, file: str, issues: list[str]) -> None:
        self.file = file
        self.issues = list(issues)
        lines = [f"{file}: {len(self.issues)} problem(s) in this topology:"]
        lines += [f"  - {file}: {issue}" for issue in self.issues]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Timing:
    """Sandbox time scale, in seconds (kept small in tests)."""

    start_s: float = 0.5
    election_s: float = 1.0
    sync_s: float = 1.0
    sync_s_per_mb: float = 0.0


@dataclass(frozen=True)
class RegionSpec:
    name: str
    stripes: int
    mirrors: int
    clients: int
    wan_role: str | None = None
    orchestrators_master: int = 0
    orchestrators_standby: int = 0
    replica_disconnect_behavior: str = "reconnectResync"
    secured: bool = False  # HTTPS and a password on the management port (security.py)

    @property
    def orchestrator_count(self) -> int:
        return self.orchestrators_master + self.orchestrators_standby


@dataclass(frozen=True)
class Topology:
    """A validated topology."""

    version: str
    kits: tuple[str, ...]
    persistent: bool
    regions: tuple[RegionSpec, ...]
    timing: Timing = field(default_factory=Timing)
    name: str | None = None
    reconnect_window_s: float = 10.0
    java_home: str = "inventory"  # one of JAVA_HOME_MODES
    nodes_folder: str = ""
    """A folder of each host's root that holds its node's kit, configuration, data and
    application (empty: none); its name may hold spaces, quotes and shell syntax."""

    def host_count(self) -> int:
        return sum(
            r.stripes * (1 + r.mirrors) + r.clients + r.orchestrator_count for r in self.regions
        )

    def wan_master_region(self) -> str | None:
        """The master region of the WAN, when the topology has orchestrators."""
        if not any(r.orchestrator_count for r in self.regions):
            return None
        return next((r.name for r in self.regions if r.wan_role == "master"), None)
