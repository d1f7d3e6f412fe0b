"""Why an upgrade must not start: downtime or data loss without consent, or a change that is
not a maintenance upgrade (docs/safety.md rule 7)."""

from __future__ import annotations

from collections.abc import Mapping

from bm_upgrade.inventory import Inventory, major_minor
from bm_upgrade.plan.model import NodeState, PlanOptions


def refusals(
    inventory: Inventory, options: PlanOptions, observed: Mapping[str, NodeState]
) -> list[str]:
    """Every reason the upgrade must not start, one sentence each naming the node/stripe and
    the way out."""
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
    for region, stripe in inventory.stripes():
        if len(stripe.servers) > 1:
            continue
        where = f"stripe {region.name}/{stripe.name}"
        if not inventory.region_persistent(region) and not options.accept_data_loss:
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
