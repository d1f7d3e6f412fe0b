"""What a cluster is made of: kits, and per region its stripes of servers, its clients and its
WAN orchestrators.

Frozen pydantic v2 models that forbid unknown keys; a node's host and remote paths are checked
as they are read (:mod:`bm_upgrade.inventory_checks`), everything that compares several
fields is in :mod:`bm_upgrade.inventory.cross_field`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from bm_upgrade.inventory.kitroot import KitRoot
from bm_upgrade.inventory.security import ManagementSecurity
from bm_upgrade.inventory_checks import REMOTE_PATH_FIELDS, host_problem, remote_path_problem

VERSION_PATTERN = r"^4\.2\.\d+(\.\d+)*$"
"""A BigMemory Max 4.2 build: 4.2.N, optionally with more dot-parts (4.2.1.4.2)."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

Name = Field(pattern=NAME_PATTERN, min_length=1, max_length=64)


class FrozenModel(BaseModel):
    """The inventory's base: immutable, unknown keys refused, strings stripped."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def valid_host(host: str) -> str:
    """``host`` itself, or ValueError saying why it is no hostname or IP address."""
    problem = host_problem(host)
    if problem:
        raise ValueError(problem)
    return host


class _Node(FrozenModel):
    """A node reached over SSH: its host is a hostname or an IP address (it goes into SSH
    connections and URLs), its remote paths are absolute and normalised."""

    @field_validator("host", check_fields=False)
    @classmethod
    def _valid_host(cls, host: str) -> str:
        return valid_host(host)

    @field_validator(*REMOTE_PATH_FIELDS, check_fields=False)
    @classmethod
    def _normalised_path(cls, path: str | None) -> str | None:
        problem = remote_path_problem(path) if path is not None else None
        if problem:
            raise ValueError(problem)
        return path


class _RunsFromKit:
    """A node run from a kit root of its own (``install_dir``); a detached start writes its
    console to ``console_log``, else beside the kit root. Declares no fields: the models
    that use it declare them, each with its own description."""

    if TYPE_CHECKING:
        name: str
        install_dir: str
        console_log: str | None

    @property
    def kit_root(self) -> KitRoot:
        return KitRoot.of(self.install_dir)

    @property
    def console_log_path(self) -> str:
        """Where a detached start writes the console: ``console_log``, else beside the kit
        root."""
        return self.console_log or self.kit_root.console_log(self.name)


def major_minor(version: str) -> str:
    """``"4.2.1.4"`` -> ``"4.2"``."""
    return ".".join(version.split(".")[:2])


class Kit(FrozenModel):
    """One BigMemory Max kit tarball the cluster can be upgraded (or rolled back) to."""

    version: str = Field(pattern=VERSION_PATTERN)
    url: str = Field(description="http(s):// or file:// URL of bigmemory-max-<version>.tar.gz")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not re.match(r"^(https?|file)://", url):
            raise ValueError("the kit URL must start with http://, https:// or file://")
        return url


class Server(_RunsFromKit, _Node):
    """One Terracotta server (L2) of a stripe."""

    name: str = Name
    host: str = Field(min_length=1)
    install_dir: str = Field(
        description="The kit root the server runs from (holds server/bin and the license key)."
    )
    tc_config: str = Field(description="Path of tc-config.xml on the host (outside the kit).")
    data_dir: str = Field(description="The server's <data> folder.")
    tsa_port: int = Field(default=9510, ge=1, le=65535)
    management_port: int = Field(default=9540, ge=1, le=65535)
    console_log: str | None = Field(
        default=None,
        description="Where a detached start writes the console (default: "
        "<parent of install_dir>/<name>.console.log).",
    )
    preferred_active: bool = Field(
        default=False, description="Fail back to this server (default: the stripe's first)."
    )
    start_command: str | None = None
    stop_command: str | None = None
    java_home: str | None = Field(
        default=None,
        description="The JAVA_HOME its kit scripts run with (default: the cluster's "
        "java_home; unset on both: the host's environment or the kit's server/bin/setenv.sh).",
    )

    # Its region's management security (or the cluster's), given by Inventory when read.
    _management: ManagementSecurity | None = PrivateAttr(default=None)

    @property
    def management_security(self) -> ManagementSecurity | None:
        """How its management port is logged in to (None: plain HTTP, no user)."""
        return self._management

    def secured_by(self, security: ManagementSecurity | None) -> Server:
        """This server with ``security`` as its management security (set once, while the
        inventory is read)."""
        self._management = security
        return self

    def ports(self) -> list[int]:
        """Every port the server binds (tc-config defaults: tsa, +10 jmx, +20 group)."""
        return [
            self.tsa_port,
            self.tsa_port + 10,
            self.tsa_port + 20,
            self.management_port,
        ]


class Stripe(FrozenModel):
    """A mirror group: one ACTIVE and its mirrors."""

    name: str = Name
    servers: list[Server] = Field(default_factory=list)

    def preferred_active(self) -> Server | None:
        """The server failback returns the ACTIVE role to."""
        for server in self.servers:
            if server.preferred_active:
                return server
        return self.servers[0] if self.servers else None


class Client(_Node):
    """An application JVM with the kit's client jars (ehcache-ee, toolkit runtime) on its
    classpath."""

    name: str = Name
    host: str = Field(min_length=1)
    lib_dir: str = Field(description="Folder holding ehcache-ee-*.jar and the toolkit jar.")
    stop_command: str
    start_command: str
    status_command: str | None = Field(
        default=None, description="Exits 0 while the application runs."
    )


class Orchestrator(_RunsFromKit, _Node):
    """A WAN replication orchestrator."""

    name: str = Name
    host: str = Field(min_length=1)
    install_dir: str = Field(description="The kit root holding server/bin/start-wan.sh.")
    wan_xml: str
    role: Literal["master", "standby"]
    replica_disconnect_behavior: Literal["reconnectResync", "remainDisconnected"] = (
        "reconnectResync"
    )
    console_log: str | None = None
    java_home: str | None = Field(
        default=None,
        description="The JAVA_HOME its kit scripts run with (default: the cluster's "
        "java_home; unset on both: the host's environment or the kit's server/bin/setenv.sh).",
    )


class Region(FrozenModel):
    """One region: its Terracotta Server Array, its clients, its WAN orchestrators."""

    name: str = Name
    persistent: bool | None = Field(
        default=None, description="Overrides the cluster's persistent for this region."
    )
    stripes: list[Stripe] = Field(min_length=1)
    clients: list[Client] = Field(default_factory=list)
    orchestrators: list[Orchestrator] = Field(default_factory=list)
    management_security: ManagementSecurity | None = Field(
        default=None,
        description="This region's secured management ports (default: the cluster's "
        "management_security; neither: plain HTTP, no user).",
    )
