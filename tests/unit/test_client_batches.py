"""Which clients each ``restart_clients_<n>`` node restarts (procedure/batches.py)."""

from __future__ import annotations

from bm_upgrade.inventory import parse_inventory
from bm_upgrade.procedure.batches import client_batches, clients_of_node
from tests.unit.inventories import two_regions_wan


def test_each_node_takes_one_batch_in_inventory_order() -> None:
    inv = parse_inventory(two_regions_wan(), "x")
    names = [[c.name for c in clients_of_node(inv, 2, 2, i)] for i in range(2)]
    assert names == [["east-app1", "east-app2"], ["west-app1", "west-app2"]]


def test_a_smaller_run_size_gives_the_last_node_the_rest() -> None:
    inv = parse_inventory(two_regions_wan(), "x")
    clients = [c for r in inv.regions for c in r.clients]
    batches = client_batches(clients, 1, 2)
    assert [[c.name for c in b] for b in batches] == [
        ["east-app1"],
        ["east-app2", "west-app1", "west-app2"],
    ]


def test_a_larger_run_size_leaves_later_nodes_empty() -> None:
    inv = parse_inventory(two_regions_wan(), "x")
    clients = [c for r in inv.regions for c in r.clients]
    assert [len(b) for b in client_batches(clients, 4, 2)] == [4, 0]
