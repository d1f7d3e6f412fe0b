"""The WAN orchestrators' cycle, after every server and client (docs/safety.md rule 6)."""

from __future__ import annotations

from collections.abc import Mapping

from bm_upgrade.inventory import Inventory, Orchestrator, Region
from bm_upgrade.plan.model import Action, Builder, NodeState


def orchestrator_steps(
    b: Builder, inventory: Inventory, observed: Mapping[str, NodeState], target: str
) -> None:
    """Standby orchestrators stop before masters, so no standby takes over and forces every
    replica to resync; all are installed before any starts, so all start on one version."""
    orchs = list(inventory.orchestrators())
    if not orchs:
        return
    seen = {o.name: observed.get(o.name) or NodeState(True, None) for _, o in orchs}
    todo = {
        o.name for _, o in orchs if not (seen[o.name].running and seen[o.name].version == target)
    }

    def add(
        region: Region, orch: Orchestrator, action: Action, waits_for: str, skip: str = ""
    ) -> None:
        b.add_node_step("orchestrators", region.name, orch.name, action, waits_for, skip=skip)

    for role in ("standby", "master"):
        b.next_stage()
        for region, orch in orchs:
            if orch.role != role:
                continue
            if orch.name not in todo:
                add(
                    region,
                    orch,
                    "upgrade",
                    f"{orch.name} on {target}",
                    skip=f"already runs {target}",
                )
            elif seen[orch.name].running:
                add(region, orch, "stop", "stop-wan.sh succeeded and the process exited")
    b.next_stage()
    for region, orch in orchs:
        if orch.name in todo and seen[orch.name].version != target:
            add(
                region,
                orch,
                "install",
                f"the kit root holds the {target} kit and terracotta-license.key",
            )
    for role in ("master", "standby"):
        b.next_stage()
        for region, orch in orchs:
            if orch.role == role and orch.name in todo:
                add(region, orch, "start", f"start-wan.sh running on {target}")
    b.next_stage()
    b.add(
        "orchestrators",
        inventory.cluster,
        "confirm-wan",
        "the master region's caches are available and every replica cache resynced",
        lane="orchestrators",
        kind="check",
    )
