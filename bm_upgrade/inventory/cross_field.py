"""The inventory's cross-field checks: what no single field shows (unique names, ports and
data folders per host, the WAN master region, a kit for the target, stripe step names and kit
roots apart). Each problem is a :class:`~bm_upgrade.errors.FieldIssue` with its field path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from bm_upgrade.errors import FieldIssue
from bm_upgrade.inventory.nodes import Client, Kit, Orchestrator, Region, Server, Stripe
from bm_upgrade.inventory_checks import canonical_host, stripe_node_issues


class CrossFieldIssues(ValueError):
    """Carries several located issues out of a model validator."""

    def __init__(self, issues: list[FieldIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{i.path}: {i.message}" for i in issues))


def cross_field_issues(
    regions: Sequence[Region],
    kits: Sequence[Kit],
    target_version: str,
    wan_master_region: str | None,
) -> Iterator[FieldIssue]:
    """Every problem that involves more than one field, each located by its field path."""
    yield from _region_name_issues(regions)
    yield from _stripe_server_issues(regions)
    yield from _node_name_issues(regions)
    yield from _port_and_data_issues(regions)
    yield from _wan_issues(regions, wan_master_region)
    yield from _kit_issues(kits, target_version)
    # The job names a step per stripe after it: names must stay apart once '-' and '.' are '_'.
    yield from stripe_node_issues(
        (f"{path}.name", region.name, stripe.name) for path, region, stripe in _stripes(regions)
    )
    yield from _kit_root_issues(regions)


def canary_issues(regions: Sequence[Region], canary: str | None) -> Iterator[FieldIssue]:
    """``policy.canary`` names no stripe of the inventory (written ``region/stripe``)."""
    names = [f"{region.name}/{stripe.name}" for _, region, stripe in _stripes(regions)]
    if canary is not None and canary not in names:
        yield FieldIssue(
            "policy.canary",
            f"{canary!r} is not a stripe of this inventory; name one as region/stripe "
            f"({', '.join(names)}), or leave canary out for no canary",
        )


def _stripes(regions: Sequence[Region]) -> Iterator[tuple[str, Region, Stripe]]:
    """Every stripe with its field path (``regions[0].stripes[1]``), in inventory order."""
    for ri, region in enumerate(regions):
        for si, stripe in enumerate(region.stripes):
            yield f"regions[{ri}].stripes[{si}]", region, stripe


def _nodes(regions: Sequence[Region]) -> Iterator[tuple[str, Server | Client | Orchestrator]]:
    """Every node with its field path, in inventory order (per region: servers, clients,
    orchestrators, as :meth:`Inventory.nodes <bm_upgrade.inventory.Inventory.nodes>`)."""
    for ri, region in enumerate(regions):
        for si, stripe in enumerate(region.stripes):
            for vi, server in enumerate(stripe.servers):
                yield f"regions[{ri}].stripes[{si}].servers[{vi}]", server
        for ci, client in enumerate(region.clients):
            yield f"regions[{ri}].clients[{ci}]", client
        for oi, orch in enumerate(region.orchestrators):
            yield f"regions[{ri}].orchestrators[{oi}]", orch


def _region_name_issues(regions: Sequence[Region]) -> Iterator[FieldIssue]:
    """Region names used twice."""
    seen_regions: set[str] = set()
    for ri, region in enumerate(regions):
        if region.name in seen_regions:
            yield FieldIssue(
                f"regions[{ri}].name",
                f"region name {region.name!r} is used twice; give each a unique name",
            )
        seen_regions.add(region.name)


def _stripe_server_issues(regions: Sequence[Region]) -> Iterator[FieldIssue]:
    """Stripes without a server, or with more than one preferred active."""
    for path, _, stripe in _stripes(regions):
        if not stripe.servers:
            yield FieldIssue(
                f"{path}.servers", f"stripe {stripe.name!r} has no server; list at least one"
            )
        if sum(s.preferred_active for s in stripe.servers) > 1:
            yield FieldIssue(
                f"{path}.servers",
                f"stripe {stripe.name!r} has more than one preferred_active "
                "server; mark at most one",
            )


def _node_name_issues(regions: Sequence[Region]) -> Iterator[FieldIssue]:
    """Stripe names used twice in a region; node names used twice in the cluster."""
    # Server, client and orchestrator names are unique across the whole cluster: they are
    # how steps, logs and the journal name a node.
    node_paths: dict[str, list[str]] = {}
    stripe_paths: dict[str, list[str]] = {}
    for path, region, stripe in _stripes(regions):
        stripe_paths.setdefault(f"{region.name}/{stripe.name}", []).append(f"{path}.name")
    for path, node in _nodes(regions):
        node_paths.setdefault(node.name, []).append(f"{path}.name")
    for name, paths in stripe_paths.items():
        for path in paths[1:]:
            yield FieldIssue(
                path,
                f"stripe {name!r} is listed twice in its region; give each stripe a unique name",
            )
    for name, paths in node_paths.items():
        for path in paths[1:]:
            yield FieldIssue(
                path,
                f"name {name!r} is already used at {paths[0]}; "
                "every server, client and orchestrator needs a unique name",
            )


def _port_and_data_issues(regions: Sequence[Region]) -> Iterator[FieldIssue]:
    """No two servers on one host may share a port or a data folder."""
    port_owner: dict[tuple[str, int], str] = {}
    data_owner: dict[tuple[str, str], str] = {}
    for base, server in _nodes(regions):
        if not isinstance(server, Server):
            continue
        for field, port in (
            ("tsa_port", server.tsa_port),
            ("management_port", server.management_port),
        ):
            # tsa_port also implies jmx (+10) and group (+20) ports.
            implied = [port] if field == "management_port" else server.ports()[:3]
            for p in implied:
                owner = port_owner.get((server.host, p))
                if owner is not None and owner != server.name:
                    yield FieldIssue(
                        f"{base}.{field}",
                        f"port {p} on host {server.host} is already used by "
                        f"server {owner!r}; give each server on one host "
                        "distinct ports",
                    )
                    break
            for p in implied:
                port_owner.setdefault((server.host, p), server.name)
        data_key = (server.host, server.data_dir.rstrip("/"))
        owner = data_owner.get(data_key)
        if owner is not None:
            yield FieldIssue(
                f"{base}.data_dir",
                f"data folder {server.data_dir} on host {server.host} is "
                f"already used by server {owner!r}; give each server its own",
            )
        else:
            data_owner[data_key] = server.name


def _wan_issues(regions: Sequence[Region], wan_master_region: str | None) -> Iterator[FieldIssue]:
    """WAN: exactly one master region when orchestrators exist, each region with a master."""
    region_names = [r.name for r in regions]
    has_wan = any(region.orchestrators for region in regions)
    if has_wan:
        if wan_master_region is None:
            yield FieldIssue(
                "wan_master_region",
                "orchestrators are listed but no WAN master region is named; set "
                f"wan_master_region to one of {region_names}",
            )
        for ri, region in enumerate(regions):
            if region.orchestrators and not any(o.role == "master" for o in region.orchestrators):
                yield FieldIssue(
                    f"regions[{ri}].orchestrators",
                    f"region {region.name!r} has orchestrators but none with "
                    "role: master; every region's WAN service needs a master "
                    "orchestrator",
                )
    if wan_master_region is not None and wan_master_region not in region_names:
        yield FieldIssue(
            "wan_master_region",
            f"{wan_master_region!r} is not a region of this inventory; use one of {region_names}",
        )
    if wan_master_region is not None and not has_wan:
        yield FieldIssue(
            "wan_master_region",
            "a WAN master region is named but no region lists orchestrators; add "
            "the orchestrators or remove wan_master_region",
        )


def _kit_issues(kits: Sequence[Kit], target_version: str) -> Iterator[FieldIssue]:
    """The target must have a kit; no version listed twice."""
    if all(kit.version != target_version for kit in kits):
        yield FieldIssue(
            "target_version",
            f"no kit of version {target_version} is listed under kits; add its url and sha256",
        )
    seen_kits: set[str] = set()
    for ki, kit in enumerate(kits):
        if kit.version in seen_kits:
            yield FieldIssue(
                f"kits[{ki}].version", f"kit version {kit.version} is listed twice; keep one"
            )
        seen_kits.add(kit.version)


def _kept_out(node: Server | Orchestrator) -> tuple[tuple[str, str], ...]:
    """``(field, path)`` of what must survive a swap of the node's kit root: its data folder
    and tc-config, or an orchestrator's wan.xml; and the Java its scripts run with."""
    java = (("java_home", node.java_home),) if node.java_home else ()
    if isinstance(node, Server):
        return (("data_dir", node.data_dir), ("tc_config", node.tc_config), *java)
    return (("wan_xml", node.wan_xml), *java)


def _kit_root_issues(regions: Sequence[Region]) -> Iterator[FieldIssue]:
    """docs/safety.md rule 9 on the inventory: no data folder, tc-config or wan.xml inside a kit
    root on its host, and no two nodes of one host with the same (or nested) kit root."""
    by_host: dict[str, list[tuple[str, Server | Orchestrator]]] = {}
    for path, node in _nodes(regions):
        if not isinstance(node, Client):
            by_host.setdefault(canonical_host(node.host), []).append((path, node))
    for group in by_host.values():
        for index, (path, node) in enumerate(group):
            for field, kept in _kept_out(node):
                for owner_path, owner in group:
                    if owner.kit_root.holds(kept):
                        whose = (
                            "its own kit root"
                            if owner is node
                            else f"the kit root of {owner.name!r} ({owner_path})"
                        )
                        yield FieldIssue(
                            f"{path}.{field}",
                            f"{kept} lies inside {owner.install_dir}, {whose} on "
                            f"host {node.host}, which an upgrade moves aside or "
                            f"deletes; keep the {field} outside every install_dir",
                        )
            # One kit root per node rather than a per-host lock: a lock would only take turns
            # at swapping one folder, and the second swap would still replace (and move
            # aside) the kit the first node has just started from. With a root each, two
            # steps never swap the same kit root at once, whatever runs side by side.
            for other_path, other in group[:index]:
                if other.kit_root.holds(node.install_dir) or node.kit_root.holds(other.install_dir):
                    yield FieldIssue(
                        f"{path}.install_dir",
                        f"{node.install_dir} on host {node.host} overlaps the kit "
                        f"root {other.install_dir} of {other.name!r} "
                        f"({other_path}); give each server and orchestrator on "
                        "one host its own install_dir, none inside another, so "
                        "two upgrade steps never swap the same kit root",
                    )
                    break
