"""Why an upgrade must not start: downtime or data loss without consent, a change that is not a
maintenance upgrade, or a cluster of mixed versions that is not a resumed upgrade
(docs/safety.md rule 7; docs/terracotta.md, "The procedure", preparation)."""

from __future__ import annotations

from collections.abc import Mapping

from bm_upgrade.inventory import Inventory, major_minor
from bm_upgrade.plan.model import NodeState, PlanOptions


def version_mix(inventory: Inventory, observed: Mapping[str, NodeState], target: str) -> str | None:
    """Why the versions the nodes run forbid this run, or None.

    The guide's preparation: every server and client runs the same version before an upgrade
    starts. Two versions, one of them the run's ``target``, are an upgrade (or rollback) this
    tool left half done, resumed by this run; any other mix is refused, naming the nodes of
    each version. Nodes whose version is unknown are left out.
    """
    by_version: dict[str, list[str]] = {}
    for node in inventory.nodes():
        seen = observed.get(node.name)
        if seen is not None and seen.version:
            by_version.setdefault(seen.version, []).append(node.name)
    if len(by_version) < 2 or (len(by_version) == 2 and target in by_version):
        return None
    found = "; ".join(
        f"{version}: {', '.join(names)}" for version, names in sorted(by_version.items())
    )
    return (
        f"the nodes run {len(by_version)} versions ({found}) and the target is {target}: "
        "every server and client must run one version before an upgrade starts (only a mix "
        f"of one version and {target} is an upgrade to resume); bring the odd nodes to one "
        "version first"
    )


def refusals(
    inventory: Inventory,
    options: PlanOptions,
    observed: Mapping[str, NodeState],
    persistent: Mapping[str, bool] | None = None,
) -> list[str]:
    """Every reason the upgrade must not start, one sentence each naming the node/stripe and
    the way out.

    ``persistent``: per ``region/stripe``, ``<restartable enabled>`` as read from its servers'
    tc-config (procedure/tcconfig_check.py); a stripe not in it goes by the inventory.
    """
    reasons: list[str] = []
    target = options.target_version
    target_mm = major_minor(target)

    def off_target(name: str) -> str | None:
        seen = observed.get(name)
        if seen and seen.version and major_minor(seen.version) != target_mm:
            return seen.version
        return None

    for region, stripe, server in inventory.servers():
        if version := off_target(server.name):
            reasons.append(
                f"server {server.name} ({region.name}/{stripe.name}) runs {version} and "
                f"the target is {target}: that is not a maintenance upgrade "
                f"(only the third number may change); follow the {target_mm} migration guide "
                "instead"
            )
    others = [("client", c.name, region) for region, c in inventory.clients()]
    others += [("orchestrator", o.name, region) for region, o in inventory.orchestrators()]
    for kind, name, region in others:
        if version := off_target(name):
            reasons.append(
                f"{kind} {name} ({region.name}) runs {version} and the target is "
                f"{target}: that is not a maintenance upgrade; follow the "
                f"{target_mm} migration guide instead"
            )
    if mix := version_mix(inventory, observed, target):
        reasons.append(mix)
    for region, stripe in inventory.stripes():
        if len(stripe.servers) > 1:
            continue
        where = f"stripe {region.name}/{stripe.name}"
        read = (persistent or {}).get(f"{region.name}/{stripe.name}")
        stripe_persistent = inventory.region_persistent(region) if read is None else read
        if not stripe_persistent and not options.accept_data_loss:
            reasons.append(
                f"{where} has no mirror and is not persistent: upgrading it loses all its "
                "data; add a mirror, or accept the loss with --accept-data-loss "
                "(policy.accept_data_loss)"
            )
        if not options.allow_downtime:
            reasons.append(
                f"{where} has no mirror: upgrading it stops it for the whole install; add a "
                "mirror, or consent with --allow-downtime (policy.allow_downtime)"
            )
    return reasons
