"""Client batches: which clients each client step of the graph restarts, and in what groups.

The graph has a fixed number of client steps (``restart_clients_<n>``, from the inventory's
``client_batch_size``); a run may ask for a smaller size, which makes more batches than steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bm_upgrade.inventory import Client, Inventory
from bm_upgrade.procedure.clients import upgrade_clients
from bm_upgrade.procedure.records import StepRecord
from bm_upgrade.procedure.servers import StepContext


def client_batches(clients: Sequence[Client], size: int, nodes: int) -> list[list[Client]]:
    """The clients of each batch node: batches of ``size``; when the run's size makes more
    batches than the graph has nodes, the last node takes the rest, batch after batch."""
    batches = [list(clients[i : i + size]) for i in range(0, len(clients), size)]
    per_node = [batches[i] for i in range(min(nodes - 1, len(batches)))]
    per_node.append([c for batch in batches[nodes - 1 :] for c in batch])
    return per_node + [[] for _ in range(nodes - len(per_node))]


def clients_of_node(inventory: Inventory, size: int, nodes: int, index: int) -> list[Client]:
    """The clients of batch node ``index`` (from 0) of ``nodes``, every region's in order."""
    clients = [client for _, client in inventory.clients()]
    return client_batches(clients, size, nodes)[index]


def upgrade_in_batches(
    ctx: StepContext,
    clients: Sequence[Client],
    size: int,
    before_batch: Callable[[int], None] | None = None,
) -> list[StepRecord]:
    """Upgrade ``clients`` batch after batch of ``size`` (one batch unless the node took the
    rest of a run's smaller batches).

    Args:
        before_batch: called with the batch's number (from 2) before each batch after the
            first; it raises to start no more batches (a pause: defs/pausing.py).
    """
    records: list[StepRecord] = []
    for number, start in enumerate(range(0, len(clients), size), start=1):
        if number > 1 and before_batch is not None:
            before_batch(number)
        records += upgrade_clients(ctx, clients[start : start + size])
    return records
