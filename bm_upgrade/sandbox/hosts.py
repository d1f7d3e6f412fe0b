"""Where each node of a sandbox topology lives: its name, loopback address and folders.

:func:`plan_hosts` names every server, client and orchestrator of a :class:`Topology` and gives
each its own host ``<block>.N``; the plans say where its kit, configuration and logs go under
``DIR/hosts/<address>``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bm_upgrade.sandbox.java import java_home_of
from bm_upgrade.sandbox.topology_model import WAN_PORT, Topology


class _OnHost:
    """A node on its own host: its root folder is ``DIR/hosts/<host>``."""

    name: str
    host: str
    directory: Path
    folder: str  # the topology's nodes_folder

    @property
    def root(self) -> Path:
        return self.directory / "hosts" / self.host

    @property
    def base(self) -> Path:
        """Where the node's own folders go: the host root, or its ``nodes_folder``."""
        return self.root / self.folder if self.folder else self.root

    @property
    def java_home(self) -> Path:
        """The host's Java folder: what JAVA_HOME names on this host."""
        return java_home_of(self.root)


class _HostFolders(_OnHost):
    """The folders of a node that runs from a kit on its own host."""

    @property
    def install_dir(self) -> Path:
        return self.base / "opt" / "terracotta" / "bigmemory-max"

    @property
    def console_log(self) -> Path:
        return self.base / "logs" / f"{self.name}.console.log"


@dataclass(frozen=True)
class ServerPlan(_HostFolders):
    """One server: its own host (loopback address) and folders under ``DIR/hosts/<host>``."""

    name: str
    region: str
    stripe: str
    index: int  # 0: the stripe's first server, started first so it becomes ACTIVE
    host: str
    directory: Path
    folder: str = ""
    tsa_port: int = 9510
    jmx_port: int = 9520
    group_port: int = 9530
    management_port: int = 9540

    @property
    def tc_config(self) -> Path:
        return self.base / "etc" / "tc-config.xml"

    @property
    def data_dir(self) -> Path:
        return self.base / "var" / "terracotta" / self.name / "data"

    @property
    def logs_dir(self) -> Path:
        return self.base / "var" / "terracotta" / self.name / "logs"

    def tc_entry(self) -> dict[str, Any]:
        """The server's entry for tcconfig.write_tc_config."""
        return {
            "name": self.name,
            "host": self.host,
            "data": str(self.data_dir),
            "logs": str(self.logs_dir),
            "tsa_port": self.tsa_port,
            "jmx_port": self.jmx_port,
            "group_port": self.group_port,
            "management_port": self.management_port,
        }


@dataclass(frozen=True)
class ClientPlan(_OnHost):
    """One client application on its own host."""

    name: str
    region: str
    host: str
    directory: Path
    folder: str = ""

    @property
    def app_dir(self) -> Path:
        return self.base / "opt" / self.name

    @property
    def lib_dir(self) -> Path:
        return self.app_dir / "lib"

    @property
    def start_command(self) -> str:
        return f"{shlex.quote(str(self.app_dir / 'bin' / 'app.sh'))} start"

    @property
    def stop_command(self) -> str:
        return f"{shlex.quote(str(self.app_dir / 'bin' / 'app.sh'))} stop"

    @property
    def status_command(self) -> str:
        return f"{shlex.quote(str(self.app_dir / 'bin' / 'app.sh'))} status"


@dataclass(frozen=True)
class OrchestratorPlan(_HostFolders):
    """One WAN orchestrator on its own host: a kit, its wan.xml, its console log."""

    name: str
    region: str
    role: str  # master | standby
    host: str
    directory: Path
    folder: str = ""
    replica_disconnect_behavior: str = "reconnectResync"
    port: int = WAN_PORT

    @property
    def wan_xml(self) -> Path:
        return self.base / "etc" / "wan.xml"

    @property
    def wan_logs(self) -> Path:
        """wan.xml's ``<logs>``: the folder of its replication log."""
        return self.base / "logs" / "wan"


@dataclass(frozen=True)
class HostPlan:
    servers: tuple[ServerPlan, ...]
    clients: tuple[ClientPlan, ...]
    kit_host: str  # the address serving the kits over HTTP
    orchestrators: tuple[OrchestratorPlan, ...] = ()

    @property
    def hosts(self) -> list[str]:
        return (
            [s.host for s in self.servers]
            + [c.host for c in self.clients]
            + [o.host for o in self.orchestrators]
        )

    def servers_of(self, region: str) -> list[ServerPlan]:
        return [s for s in self.servers if s.region == region]

    def stripes_of(self, region: str) -> list[tuple[str, list[ServerPlan]]]:
        stripes: dict[str, list[ServerPlan]] = {}
        for server in self.servers_of(region):
            stripes.setdefault(server.stripe, []).append(server)
        return list(stripes.items())


def plan_hosts(topology: Topology, directory: Path, block: str) -> HostPlan:
    """Name every node and give each its own address ``<block>.N`` (N from 1).

    Servers are ``<region>-s<stripe>-<a|b|...>`` in stripes ``stripe<N>``; clients are
    ``<region>-app<N>``; orchestrators ``<region>-wan-m<N>`` (master) and ``<region>-wan-s<N>``
    (standby), after the clients; the kits are served from ``<block>.254``. Paths contain no symlink
    (``directory`` is resolved) so the journal's paths match what the tool sees.
    """
    numbers = iter(range(1, 254))
    servers: list[ServerPlan] = []
    clients: list[ClientPlan] = []
    for region in topology.regions:
        for s in range(1, region.stripes + 1):
            for m in range(region.mirrors + 1):
                servers.append(
                    ServerPlan(
                        name=f"{region.name}-s{s}-{chr(ord('a') + m)}",
                        region=region.name,
                        stripe=f"stripe{s}",
                        index=m,
                        host=f"{block}.{next(numbers)}",
                        directory=directory,
                        folder=topology.nodes_folder,
                    )
                )
    for region in topology.regions:
        for c in range(1, region.clients + 1):
            clients.append(
                ClientPlan(
                    name=f"{region.name}-app{c}",
                    region=region.name,
                    host=f"{block}.{next(numbers)}",
                    directory=directory,
                    folder=topology.nodes_folder,
                )
            )
    orchestrators: list[OrchestratorPlan] = []
    for region in topology.regions:
        for role, count in (
            ("master", region.orchestrators_master),
            ("standby", region.orchestrators_standby),
        ):
            for o in range(1, count + 1):
                orchestrators.append(
                    OrchestratorPlan(
                        name=f"{region.name}-wan-{role[0]}{o}",
                        region=region.name,
                        role=role,
                        host=f"{block}.{next(numbers)}",
                        directory=directory,
                        folder=topology.nodes_folder,
                        replica_disconnect_behavior=region.replica_disconnect_behavior,
                    )
                )
    return HostPlan(
        servers=tuple(servers),
        clients=tuple(clients),
        kit_host=f"{block}.254",
        orchestrators=tuple(orchestrators),
    )
