"""The clients' steps, in batches of ``client_batch_size``: stop, replace the jars, start
(after every server: docs/safety.md rule 5)."""

from __future__ import annotations

from collections.abc import Mapping

from bm_upgrade.inventory import Client, Inventory, Region
from bm_upgrade.plan.model import Action, Builder, NodeState, PlanOptions


def client_steps(
    b: Builder, inventory: Inventory, observed: Mapping[str, NodeState], options: PlanOptions
) -> None:
    """One stage per batch; each client its own lane (a batch's clients go side by side)."""
    clients = list(inventory.clients())
    size = options.client_batch_size
    for start in range(0, len(clients), size):
        b.next_stage()
        for region, client in clients[start : start + size]:
            seen = observed.get(client.name) or NodeState(True, None)
            _one_client(b, region, client, seen, options.target_version)


def _one_client(b: Builder, region: Region, client: Client, seen: NodeState, target: str) -> None:
    def add(action: Action, waits_for: str, skip: str = "") -> None:
        b.add_node_step("clients", region.name, client.name, action, waits_for, skip=skip)

    if seen.running and seen.version == target:
        add("upgrade", f"{client.name} on {target}", skip=f"already runs on the {target} jars")
        return
    if seen.running:
        add("stop", "the stop command succeeded")
    if seen.version != target:
        add("replace-jars", f"lib dir holds the {target} ehcache-ee and toolkit jars only")
    add("start", f"the application runs on the {target} jars")
