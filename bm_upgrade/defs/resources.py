"""The cluster resource: where the inventory lives and how to reach its hosts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import PrivateAttr

from bm_upgrade.defs.runclaim import GOING, check_inventory_unchanged, claim_cluster
from bm_upgrade.errors import InventoryError
from bm_upgrade.inventory import Inventory, load_inventory
from bm_upgrade.remote import HostPool


class ClusterResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """One cluster's inventory file; every op loads it fresh (files change between runs).

    SSH connections live as long as the resource: Dagster sets it up once per run in each
    process (once per run with the in-process executor, once per step with the multiprocess
    one) and tears it down at the end, so the ops of a run share one connection per host
    instead of each op opening its own (a handshake costs tens of ms of CPU per host, and a
    cluster-wide look touches every host). A connection that died between ops (sshd
    restarted, idle cut) is opened again on its next use.
    """

    inventory_path: str
    _pools: dict[str, HostPool] | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Before any op of the run in this process: the cluster must be this run's alone,
        and its inventory the one the run (or its parent run) was made from
        (:mod:`bm_upgrade.defs.runclaim`)."""
        run, instance = context.run, context.instance
        # Not once the run has ended: Dagster sets resources up again to read its outputs.
        if run is not None and instance is not None and run.status in GOING:
            check_inventory_unchanged(instance, run, self.inventory_path)
            claim_cluster(instance, run, self.load().cluster)
        self._pools = {}

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        pools, self._pools = self._pools or {}, None
        for pool in pools.values():
            pool.close()

    def load(self) -> Inventory:
        """The inventory as the file says now; an invalid file fails the step with the
        inventory's own message (file, field, fix)."""
        try:
            return load_inventory(self.inventory_path)
        except InventoryError as exc:
            raise dg.Failure(description=str(exc)) from exc

    @contextmanager
    def pool(self, inventory: Inventory) -> Iterator[HostPool]:
        """One SSH connection per host: the run's (per SSH settings), or outside a run one
        for the duration of the ``with`` block."""
        if self._pools is None:
            with HostPool(inventory.ssh) as pool:
                yield pool
            return
        key = inventory.ssh.model_dump_json()
        if key not in self._pools:
            self._pools[key] = HostPool(inventory.ssh)
        yield self._pools[key]
