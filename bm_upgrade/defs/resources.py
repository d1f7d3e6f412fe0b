"""The cluster resource: where the inventory lives and how to reach its hosts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from bm_upgrade.errors import InventoryError
from bm_upgrade.inventory import Inventory, load_inventory
from bm_upgrade.remote import HostPool


class ClusterResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """One cluster's inventory file; every op loads it fresh (files change between runs)."""

    inventory_path: str

    def load(self) -> Inventory:
        """The inventory as the file says now; an invalid file fails the step with the
        inventory's own message (file, field, fix)."""
        try:
            return load_inventory(self.inventory_path)
        except InventoryError as exc:
            raise dg.Failure(description=str(exc)) from exc

    @contextmanager
    def pool(self, inventory: Inventory) -> Iterator[HostPool]:
        """One SSH connection per host for the duration of one op, closed at its end."""
        with HostPool(inventory.ssh) as pool:
            yield pool
