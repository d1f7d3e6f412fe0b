"""The cluster inventory: one YAML file describes one BigMemory Max cluster.

Models are frozen pydantic v2 models that forbid unknown keys. :func:`load_inventory` reads a
file and raises :class:`~bm_upgrade.errors.InventoryError` carrying *every* problem found, each
naming the field path (``regions[1].stripes[0].servers[2].host``), what is wrong and the fix.
Secrets never appear inline: the SSH key is a file path, its passphrase comes from an
environment variable or a file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from bm_upgrade import bounded_yaml
from bm_upgrade.cron import parse_cron
from bm_upgrade.errors import FieldIssue, InventoryError
from bm_upgrade.inventory_checks import (
    REMOTE_PATH_FIELDS,
    NodeFolders,
    host_problem,
    kit_root_issues,
    remote_path_problem,
    stripe_node_issues,
)

VERSION_PATTERN = r"^4\.2\.\d+(\.\d+)*$"
"""A BigMemory Max 4.2 build: 4.2.N, optionally with more dot-parts (4.2.1.4.2)."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

# Keys that would put a secret inline; each maps to the reference to use instead.
_INLINE_SECRET_KEYS = {
    "password": "key_file (and key_passphrase_env or key_passphrase_file)",
    "passphrase": "key_passphrase_env (an environment variable's name) or key_passphrase_file",
    "key_passphrase": "key_passphrase_env (an environment variable's name) or key_passphrase_file",
    "private_key": "key_file (a path to the private key)",
    "secret": "an environment variable's name or a file path",
    "token": "an environment variable's name or a file path",
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def _host(host: str) -> str:
    problem = host_problem(host)
    if problem:
        raise ValueError(problem)
    return host


def _remote_path(path: str | None) -> str | None:
    problem = remote_path_problem(path) if path is not None else None
    if problem:
        raise ValueError(problem)
    return path


class _Node(_Model):
    """A node reached over SSH: its host is a hostname or an IP address (it goes into SSH
    connections and URLs), its remote paths are absolute and normalised."""

    @field_validator("host", check_fields=False)
    @classmethod
    def _valid_host(cls, host: str) -> str:
        return _host(host)

    @field_validator(*REMOTE_PATH_FIELDS, check_fields=False)
    @classmethod
    def _normalised_path(cls, path: str | None) -> str | None:
        return _remote_path(path)


Name = Field(pattern=NAME_PATTERN, min_length=1, max_length=64)


def version_tuple(version: str) -> tuple[int, ...]:
    """``"4.2.1"`` -> ``(4, 2, 1)``; used to order and compare versions."""
    return tuple(int(part) for part in version.split("."))


def major_minor(version: str) -> str:
    """``"4.2.1.4"`` -> ``"4.2"``."""
    return ".".join(version.split(".")[:2])


class JumpHost(_Model):
    """A bastion the SSH connections go through."""

    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str | None = None

    @field_validator("host")
    @classmethod
    def _valid_host(cls, host: str) -> str:
        return _host(host)


class SshSettings(_Model):
    """How bm_upgrade reaches every host. Secrets are referenced, never written here."""

    user: str = Field(min_length=1, description="Login user on every host.")
    port: int = Field(default=22, ge=1, le=65535)
    key_file: str | None = Field(
        default=None, description="Path to the private key; omit to use the SSH agent."
    )
    key_passphrase_env: str | None = Field(
        default=None, description="Name of an environment variable holding the key passphrase."
    )
    key_passphrase_file: str | None = Field(
        default=None, description="Path to a file holding the key passphrase."
    )
    use_agent: bool = Field(default=True, description="Also offer keys from the SSH agent.")
    known_hosts: str = Field(
        default="~/.ssh/known_hosts",
        description="known_hosts file every host key is checked against (required: a host "
        "key is always checked; record new hosts with `bm-upgrade trust-hosts INVENTORY`).",
    )
    accept_unknown_host_keys: bool = Field(
        default=False,
        description="Let connections to hosts not in known_hosts go on unchecked, with a "
        "warning each time, recording nothing (labs only; record keys with `bm-upgrade "
        "trust-hosts INVENTORY`). Off unless set explicitly.",
    )
    jump_host: JumpHost | None = None
    connect_timeout_s: float = Field(default=10.0, gt=0)
    command_timeout_s: float = Field(default=120.0, gt=0)
    keepalive_s: float = Field(default=15.0, ge=0)

    @field_validator("known_hosts", mode="before")
    @classmethod
    def _known_hosts_named(cls, known_hosts: object) -> object:
        if known_hosts is None or (isinstance(known_hosts, str) and not known_hosts.strip()):
            raise ValueError(
                "known_hosts must name a known_hosts file: without one no host key would be "
                "checked; set it (default ~/.ssh/known_hosts) and, for hosts contacted for "
                "the first time, record their keys with `bm-upgrade trust-hosts INVENTORY`")
        return known_hosts

    @model_validator(mode="after")
    def _one_passphrase_source(self) -> SshSettings:
        if self.key_passphrase_env and self.key_passphrase_file:
            raise ValueError(
                "set only one of key_passphrase_env and key_passphrase_file"
            )
        if not self.key_file and not self.use_agent:
            raise ValueError("set key_file, or use_agent: true, so there is a key to log in with")
        return self


class Kit(_Model):
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


class Server(_Node):
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
        default=None, description="Where a detached start writes the console (default: "
        "<parent of install_dir>/<name>.console.log)."
    )
    preferred_active: bool = Field(
        default=False, description="Fail back to this server (default: the stripe's first)."
    )
    start_command: str | None = None
    stop_command: str | None = None

    def ports(self) -> list[int]:
        """Every port the server binds (tc-config defaults: tsa, +10 jmx, +20 group)."""
        return [
            self.tsa_port,
            self.tsa_port + 10,
            self.tsa_port + 20,
            self.management_port,
        ]


class Stripe(_Model):
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


class Orchestrator(_Node):
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


class Region(_Model):
    """One region: its Terracotta Server Array, its clients, its WAN orchestrators."""

    name: str = Name
    persistent: bool | None = Field(
        default=None, description="Overrides the cluster's persistent for this region."
    )
    stripes: list[Stripe] = Field(min_length=1)
    clients: list[Client] = Field(default_factory=list)
    orchestrators: list[Orchestrator] = Field(default_factory=list)


class Window(_Model):
    """The maintenance window disruptive steps must finish inside."""

    enabled: bool = True
    cron: str = Field(default="0 2 * * 0", description="When the window opens (5-field cron).")
    timezone: str = "UTC"
    length_minutes: int = Field(default=240, gt=0)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        # The schedule is built from it when the code location loads: a cron Dagster refuses
        # would take the cluster's job out of the location, so refuse it here, by name.
        try:
            parse_cron(cron)
        except ValueError as exc:
            raise ValueError(f"{cron!r}: {exc}; fix it (minute hour day-of-month month "
                             "day-of-week), or remove window.cron for the default") from None
        return cron

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, timezone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {timezone!r}; use an IANA name such as Europe/Berlin or UTC"
            ) from exc
        return timezone


class Timeouts(_Model):
    """How long each wait may take, in seconds."""

    stop_s: float = Field(default=120, gt=0)
    start_s: float = Field(default=300, gt=0)
    sync_s: float = Field(default=1800, gt=0)
    failover_s: float = Field(default=120, gt=0)
    client_s: float = Field(default=300, gt=0)
    orchestrator_s: float = Field(default=600, gt=0)


class Policy(_Model):
    """Choices the operator makes once per cluster; run config can override them."""

    failback: bool = False
    delete_dirty_backups: bool = False
    keep_previous_kit: bool = True
    client_batch_size: int = Field(default=1, ge=1)
    parallel_stripes: int = Field(default=1, ge=1)
    allow_downtime: bool = False
    accept_data_loss: bool = False
    continue_on_failure: bool = Field(
        default=False,
        description="After a step of a run fails, let other stripes still start disruptive "
        "work (stopping servers, clients, orchestrators). Off: once anything failed, every "
        "later disruptive step ends safely, naming the failure (docs/safety.md rule 12).")
    timeouts: Timeouts = Field(default_factory=Timeouts)


class Inventory(_Model):
    """One BigMemory Max cluster."""

    cluster: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=48,
                         description="Cluster name; the Dagster job is upgrade_<cluster>.")
    target_version: str = Field(pattern=VERSION_PATTERN)
    kits: list[Kit] = Field(min_length=1)
    license_file: str = Field(
        description="Local path of terracotta-license.key (delivered separately from kits)."
    )
    ssh: SshSettings
    probe_via: Literal["rest", "ssh"] = Field(
        default="rest",
        description="Read server state from the management REST port, or by running "
        "server-stat.sh over SSH (for networks that only allow SSH).",
    )
    persistent: bool = Field(description="<restartable enabled=\"true\"/> in tc-config.")
    wan_master_region: str | None = None
    regions: list[Region] = Field(min_length=1)
    window: Window = Field(default_factory=Window)
    policy: Policy = Field(default_factory=Policy)

    # -- views ---------------------------------------------------------------------------
    def kit_for(self, version: str) -> Kit | None:
        """The kit of that version, if the inventory lists one."""
        return next((kit for kit in self.kits if kit.version == version), None)

    def region_persistent(self, region: Region) -> bool:
        return self.persistent if region.persistent is None else region.persistent

    def servers(self) -> Iterator[tuple[Region, Stripe, Server]]:
        for region in self.regions:
            for stripe in region.stripes:
                for server in stripe.servers:
                    yield region, stripe, server

    def hosts(self) -> list[str]:
        """Every distinct host, in inventory order."""
        seen: dict[str, None] = {}
        for region in self.regions:
            for stripe in region.stripes:
                for server in stripe.servers:
                    seen.setdefault(server.host, None)
            for client in region.clients:
                seen.setdefault(client.host, None)
            for orch in region.orchestrators:
                seen.setdefault(orch.host, None)
        return list(seen)

    def has_wan(self) -> bool:
        return any(region.orchestrators for region in self.regions)

    # -- cross-field checks --------------------------------------------------------------
    @model_validator(mode="after")
    def _cross_field(self) -> Inventory:
        issues = list(_cross_field_issues(self))
        if issues:
            raise _CrossFieldIssues(issues)
        return self


class _CrossFieldIssues(ValueError):
    """Carries several located issues out of a model validator."""

    def __init__(self, issues: list[FieldIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{i.path}: {i.message}" for i in issues))


def _cross_field_issues(inv: Inventory) -> Iterator[FieldIssue]:  # noqa: PLR0912
    seen_regions: set[str] = set()
    for ri, region in enumerate(inv.regions):
        if region.name in seen_regions:
            yield FieldIssue(f"regions[{ri}].name",
                             f"region name {region.name!r} is used twice; give each a unique name")
        seen_regions.add(region.name)

    # Server, client and orchestrator names are unique across the whole cluster: they are
    # how steps, logs and the journal name a node.
    node_paths: dict[str, list[str]] = {}
    stripe_paths: dict[str, list[str]] = {}
    for ri, region in enumerate(inv.regions):
        for si, stripe in enumerate(region.stripes):
            stripe_paths.setdefault(f"{region.name}/{stripe.name}", []).append(
                f"regions[{ri}].stripes[{si}].name")
            if not stripe.servers:
                yield FieldIssue(f"regions[{ri}].stripes[{si}].servers",
                                 f"stripe {stripe.name!r} has no server; list at least one")
            if sum(s.preferred_active for s in stripe.servers) > 1:
                yield FieldIssue(f"regions[{ri}].stripes[{si}].servers",
                                 f"stripe {stripe.name!r} has more than one preferred_active "
                                 "server; mark at most one")
            for vi, server in enumerate(stripe.servers):
                node_paths.setdefault(server.name, []).append(
                    f"regions[{ri}].stripes[{si}].servers[{vi}].name")
        for ci, client in enumerate(region.clients):
            node_paths.setdefault(client.name, []).append(f"regions[{ri}].clients[{ci}].name")
        for oi, orch in enumerate(region.orchestrators):
            node_paths.setdefault(orch.name, []).append(
                f"regions[{ri}].orchestrators[{oi}].name")
    for name, paths in stripe_paths.items():
        for path in paths[1:]:
            yield FieldIssue(path, f"stripe {name!r} is listed twice in its region; "
                                   "give each stripe a unique name")
    for name, paths in node_paths.items():
        for path in paths[1:]:
            yield FieldIssue(path, f"name {name!r} is already used at {paths[0]}; "
                                   "every server, client and orchestrator needs a unique name")

    # No two servers on one host may share a port or a data folder.
    port_owner: dict[tuple[str, int], str] = {}
    data_owner: dict[tuple[str, str], str] = {}
    for ri, region in enumerate(inv.regions):
        for si, stripe in enumerate(region.stripes):
            for vi, server in enumerate(stripe.servers):
                base = f"regions[{ri}].stripes[{si}].servers[{vi}]"
                for field, port in (("tsa_port", server.tsa_port),
                                    ("management_port", server.management_port)):
                    # tsa_port also implies jmx (+10) and group (+20) ports.
                    implied = [port] if field == "management_port" else server.ports()[:3]
                    for p in implied:
                        owner = port_owner.get((server.host, p))
                        if owner is not None and owner != server.name:
                            yield FieldIssue(f"{base}.{field}",
                                             f"port {p} on host {server.host} is already used by "
                                             f"server {owner!r}; give each server on one host "
                                             "distinct ports")
                            break
                    for p in implied:
                        port_owner.setdefault((server.host, p), server.name)
                data_key = (server.host, server.data_dir.rstrip("/"))
                owner = data_owner.get(data_key)
                if owner is not None:
                    yield FieldIssue(f"{base}.data_dir",
                                     f"data folder {server.data_dir} on host {server.host} is "
                                     f"already used by server {owner!r}; give each server its own")
                else:
                    data_owner[data_key] = server.name

    # WAN: exactly one master region when orchestrators exist.
    region_names = [r.name for r in inv.regions]
    if inv.has_wan():
        if inv.wan_master_region is None:
            yield FieldIssue("wan_master_region",
                             "orchestrators are listed but no WAN master region is named; set "
                             f"wan_master_region to one of {region_names}")
        for ri, region in enumerate(inv.regions):
            if region.orchestrators and not any(o.role == "master"
                                                for o in region.orchestrators):
                yield FieldIssue(f"regions[{ri}].orchestrators",
                                 f"region {region.name!r} has orchestrators but none with "
                                 "role: master; every region's WAN service needs a master "
                                 "orchestrator")
    if inv.wan_master_region is not None and inv.wan_master_region not in region_names:
        yield FieldIssue("wan_master_region",
                         f"{inv.wan_master_region!r} is not a region of this inventory; use one "
                         f"of {region_names}")
    if inv.wan_master_region is not None and not inv.has_wan():
        yield FieldIssue("wan_master_region",
                         "a WAN master region is named but no region lists orchestrators; add "
                         "the orchestrators or remove wan_master_region")

    # The target must have a kit.
    if inv.kit_for(inv.target_version) is None:
        yield FieldIssue("target_version",
                         f"no kit of version {inv.target_version} is listed under kits; add "
                         "its url and sha256")
    seen_kits: set[str] = set()
    for ki, kit in enumerate(inv.kits):
        if kit.version in seen_kits:
            yield FieldIssue(f"kits[{ki}].version",
                             f"kit version {kit.version} is listed twice; keep one")
        seen_kits.add(kit.version)

    # The job names a step per stripe after it: names must stay apart once '-' and '.' are '_'.
    yield from stripe_node_issues(
        (f"regions[{ri}].stripes[{si}].name", region.name, stripe.name)
        for ri, region in enumerate(inv.regions) for si, stripe in enumerate(region.stripes))
    yield from kit_root_issues(_node_folders(inv))


def _node_folders(inv: Inventory) -> Iterator[NodeFolders]:
    """Every node that runs from a kit root, with what must stay outside kit roots."""
    for ri, region in enumerate(inv.regions):
        for si, stripe in enumerate(region.stripes):
            for vi, server in enumerate(stripe.servers):
                yield NodeFolders(f"regions[{ri}].stripes[{si}].servers[{vi}]", server.name,
                                  server.host, server.install_dir,
                                  (("data_dir", server.data_dir),
                                   ("tc_config", server.tc_config)))
        for oi, orch in enumerate(region.orchestrators):
            yield NodeFolders(f"regions[{ri}].orchestrators[{oi}]", orch.name, orch.host,
                              orch.install_dir, (("wan_xml", orch.wan_xml),))


# -- loading --------------------------------------------------------------------------------
def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("function-") or part in {"constrained-str", "literal"}:
            continue
        else:
            path += f".{part}" if path else str(part)
    return path


def _field_hint(error: ErrorDetails) -> str:
    """One sentence for a pydantic error: what is wrong and what to do."""
    kind = error["type"]
    loc = error["loc"]
    last = str(loc[-1]) if loc else ""
    given = error.get("input")
    if kind == "extra_forbidden":
        if last in _INLINE_SECRET_KEYS:
            return (f"secrets are never written in the inventory; remove {last!r} and use "
                    f"{_INLINE_SECRET_KEYS[last]}")
        return f"unknown key {last!r}; remove it or check its spelling (see `bm-upgrade schema`)"
    if kind == "missing":
        return "required field is missing; add it"
    if kind == "string_pattern_mismatch" and "version" in last:
        return (f"{given!r} is not a BigMemory Max 4.2 version; write it like 4.2.1 "
                "(more dot-parts such as 4.2.1.4 are allowed)")
    if kind == "string_pattern_mismatch" and last in {"name", "cluster"}:
        return (f"{given!r} is not a valid name; use letters, digits, '-', '_' and '.' "
                "(a cluster name: letters, digits and '_', starting with a letter)")
    if kind == "string_pattern_mismatch" and last == "sha256":
        return "sha256 must be 64 hexadecimal characters; copy it from the kit's .sha256 file"
    if kind == "literal_error":
        return f"{given!r} is not allowed; {error['msg'][0].lower()}{error['msg'][1:]}"
    if kind == "too_short" and isinstance(given, list):
        return "this list is empty; list at least one entry"
    if kind in {"value_error", "assertion_error"}:
        msg = error["msg"].removeprefix("Value error, ")
        return msg
    msg = error["msg"]
    shown = repr(given)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{msg[0].lower()}{msg[1:]} (got {shown}); fix the value"


def issues_from_validation(exc: ValidationError) -> list[FieldIssue]:
    """Turn pydantic's errors into located, actionable issues."""
    issues: list[FieldIssue] = []
    for error in exc.errors(include_url=False):
        ctx = error.get("ctx") or {}
        inner = ctx.get("error")
        if isinstance(inner, _CrossFieldIssues):
            prefix = _loc_to_path(error["loc"])
            for issue in inner.issues:
                path = f"{prefix}.{issue.path}" if prefix and issue.path else (
                    issue.path or prefix)
                issues.append(FieldIssue(path, issue.message))
            continue
        issues.append(FieldIssue(_loc_to_path(error["loc"]), _field_hint(error)))
    return issues


def parse_inventory(data: Any, file: str) -> Inventory:
    """Validate already-parsed YAML data; raises InventoryError naming ``file``."""
    if data is None:
        raise InventoryError(file, [FieldIssue("", "the file is empty; see the README's "
                                                   "example inventory")])
    if not isinstance(data, dict):
        raise InventoryError(file, [FieldIssue("", "the top level must be a mapping of keys "
                                                   "(cluster, target_version, kits, ...), not "
                                                   f"a {type(data).__name__}")])
    try:
        return Inventory.model_validate(data)
    except ValidationError as exc:
        raise InventoryError(file, issues_from_validation(exc)) from None


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate one inventory file.

    Raises:
        InventoryError: unreadable file, malformed YAML, or any invalid field (all listed).
    """
    file = str(path)
    try:
        with Path(path).open("rb") as stream:
            raw = stream.read(bounded_yaml.MAX_BYTES + 1)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise InventoryError(file, [FieldIssue("", "no such file; check the path")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(file, [FieldIssue("", f"cannot read the file ({exc}); check its "
                                                   "permissions and encoding (UTF-8)")]) from None
    if len(raw) > bounded_yaml.MAX_BYTES:
        raise InventoryError(file, [FieldIssue("", "the file is larger than "
                                                   f"{bounded_yaml.MAX_BYTES // 1024} KiB, far "
                                                   "more than any cluster's inventory; check "
                                                   "that this is the inventory file")])
    try:
        data = bounded_yaml.load(text)
    except bounded_yaml.YamlTooLarge as exc:
        raise InventoryError(file, [FieldIssue("", f"the YAML is refused: {exc}; "
                                                   "write the values out, with fewer anchors "
                                                   "and aliases (&name, *name)")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InventoryError(file, [FieldIssue("", f"malformed YAML{where}: {problem}; fix "
                                                   "the syntax (indentation, colons, quotes)")]
                             ) from None
    return parse_inventory(data, file)


def json_schema() -> dict[str, Any]:
    """The inventory's JSON Schema (what `bm-upgrade schema` prints)."""
    schema = Inventory.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "bm_upgrade cluster inventory"
    return schema
