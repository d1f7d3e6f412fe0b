"""The inventory's root: one BigMemory Max cluster, with views over its nodes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bm_upgrade.inventory.cross_field import CrossFieldIssues, canary_issues, cross_field_issues
from bm_upgrade.inventory.java_home import with_default_java_home
from bm_upgrade.inventory.nodes import (
    VERSION_PATTERN,
    Client,
    FrozenModel,
    Kit,
    Orchestrator,
    Region,
    Server,
    Stripe,
)
from bm_upgrade.inventory.security import ManagementSecurity
from bm_upgrade.inventory.settings import Policy, SshSettings, Window
from bm_upgrade.inventory_checks import remote_path_problem


class Inventory(FrozenModel):
    """One BigMemory Max cluster."""

    cluster: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
        max_length=48,
        description="Cluster name; the Dagster job is upgrade_<cluster>.",
    )
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
    persistent: bool = Field(description='<restartable enabled="true"/> in tc-config.')
    wan_master_region: str | None = None
    java_home: str | None = Field(
        default=None,
        description="The JAVA_HOME every server's and orchestrator's kit scripts run with, "
        "unless the node names its own (unset: the host's environment or the kit's "
        "server/bin/setenv.sh provides it).",
    )
    management_security: ManagementSecurity | None = Field(
        default=None,
        description="Secured management ports (HTTPS, user, password source, CA file) for "
        "every region that does not name its own.",
    )
    regions: list[Region] = Field(min_length=1)
    window: Window = Field(default_factory=Window)
    policy: Policy = Field(default_factory=Policy)

    # -- views ---------------------------------------------------------------------------
    def kit_for(self, version: str) -> Kit | None:
        """The kit of that version, if the inventory lists one."""
        return next((kit for kit in self.kits if kit.version == version), None)

    def region_persistent(self, region: Region) -> bool:
        return self.persistent if region.persistent is None else region.persistent

    def stripes(self) -> Iterator[tuple[Region, Stripe]]:
        """Every stripe with its region, in inventory order."""
        for region in self.regions:
            for stripe in region.stripes:
                yield region, stripe

    def servers(self) -> Iterator[tuple[Region, Stripe, Server]]:
        """Every server with its region and stripe, in inventory order."""
        for region, stripe in self.stripes():
            for server in stripe.servers:
                yield region, stripe, server

    def clients(self) -> Iterator[tuple[Region, Client]]:
        """Every client with its region, in inventory order."""
        for region in self.regions:
            for client in region.clients:
                yield region, client

    def orchestrators(self) -> Iterator[tuple[Region, Orchestrator]]:
        """Every WAN orchestrator with its region, in inventory order."""
        for region in self.regions:
            for orch in region.orchestrators:
                yield region, orch

    def nodes(self) -> Iterator[Server | Client | Orchestrator]:
        """Every node in inventory order: per region its servers, clients, orchestrators."""
        for region in self.regions:
            yield from (server for stripe in region.stripes for server in stripe.servers)
            yield from region.clients
            yield from region.orchestrators

    def hosts(self) -> list[str]:
        """Every distinct host, in inventory order."""
        return list(dict.fromkeys(node.host for node in self.nodes()))

    def has_wan(self) -> bool:
        return any(region.orchestrators for region in self.regions)

    # -- resolved while read -------------------------------------------------------------
    @model_validator(mode="before")
    @classmethod
    def _java_home_default(cls, data: Any) -> Any:
        return with_default_java_home(data)

    @field_validator("java_home")
    @classmethod
    def _java_home_path(cls, path: str | None) -> str | None:
        problem = remote_path_problem(path) if path is not None else None
        if problem:
            raise ValueError(problem)
        return path

    # -- cross-field checks --------------------------------------------------------------
    @model_validator(mode="after")
    def _cross_field(self) -> Inventory:
        issues = list(
            cross_field_issues(self.regions, self.kits, self.target_version, self.wan_master_region)
        )
        issues += canary_issues(self.regions, self.policy.canary)
        if issues:
            raise CrossFieldIssues(issues)
        for region in self.regions:
            security = self.management_for(region)
            for stripe in region.stripes:
                for server in stripe.servers:
                    server.secured_by(security)
        return self

    def management_for(self, region: Region) -> ManagementSecurity | None:
        """The region's management security: its own, else the cluster's."""
        return region.management_security or self.management_security

    def unverified_regions(self) -> list[str]:
        """Regions whose management certificates are not checked (``verify: false``)."""
        return [
            region.name
            for region in self.regions
            if (security := self.management_for(region)) is not None and not security.verify
        ]


def json_schema() -> dict[str, Any]:
    """The inventory's JSON Schema (what `bm-upgrade schema` prints)."""
    schema = Inventory.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "bm_upgrade cluster inventory"
    return schema
