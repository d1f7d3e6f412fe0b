"""One upgrade job per inventory file: ``upgrade_<cluster>``.

Graph, in the design card's words (docs/architecture.md, the job graph): preflight ->
download (fetch + verify) -> stage_kit -> per stripe, side by side,
``upgrade_mirrors_<region>_<stripe>`` -> ``failover_<region>_<stripe>`` -> verify_servers ->
``restart_clients_<n>``, in order -> wan_cycle (when the cluster has WAN) -> report. Each op
shows on its own in the UI's Gantt view (how long a stripe's mirrors and its failover took)
and can be re-executed alone; it looks at the real state first and does only what is missing.

With a canary (``policy.canary``), that stripe's two ops come first, then ``approve_canary``
(defs/approval.py), on which every other stripe's ``upgrade_mirrors`` op depends: nothing
else is touched before an operator approves.

A stripe keeps its strict order: its failover op depends on its mirrors op, so the two never
run at once, and ``max_concurrent`` (``parallel_stripes``) counts stripes busy. A failover op
goes before other stripes' mirrors when both are ready (:data:`FAILOVER_PRIORITY`): a stripe
started is finished before another one is, as when one op did the whole stripe, so at most
``parallel_stripes`` stripes are ever half done.

Executor, chosen by measurement (``bench/bench_upgrade.py``, `make bench`, prints the wall
time of both and each step's time): the in-process executor starts an op at almost no cost but
runs one op at a time; the multiprocess executor runs stripes side by side but costs a process
per op, far less with a forkserver preloading bm_upgrade and what a step's process imports
before its op runs (:data:`PRELOAD_MODULES`), plus each process's own SSH handshakes. A stripe
upgrade takes two syncs and an election at the least (seconds in the sandbox, minutes in
production), so with ``parallel_stripes`` > 1 the multiprocess executor wins as soon as two
stripes overlap; with ``parallel_stripes`` = 1 nothing can overlap and the in-process executor
saves the start-up cost of every op.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from bm_upgrade.defs import runclaim
from bm_upgrade.defs.approval import CANARY_TAG, GATE, approve_canary_op
from bm_upgrade.defs.config import UpgradeConfig
from bm_upgrade.defs.disruptive_ops import (
    failover_op,
    restart_clients_op,
    upgrade_mirrors_op,
    wan_cycle_op,
)
from bm_upgrade.defs.op_context import BATCH_TAG, REGION_TAG, STRIPE_TAG
from bm_upgrade.defs.ops import (
    download_op,
    preflight_op,
    report_op,
    stage_kit_op,
    verify_servers_op,
)
from bm_upgrade.defs.outputs import RunEventsIOManager
from bm_upgrade.defs.resources import ClusterResource
from bm_upgrade.defs.runclaim import INVENTORY_SHA_TAG, going_records, inventory_sha256
from bm_upgrade.inventory import Inventory, load_inventory
from bm_upgrade.inventory_checks import stripe_nodes

# The run tags live with the claim that reads them (runclaim); named here too for the
# modules that know them as the job's.
CLUSTER_TAG = runclaim.CLUSTER_TAG
INVENTORY_TAG = runclaim.INVENTORY_TAG


def runs_going(instance: dg.DagsterInstance, cluster: str) -> list[dg.DagsterRun]:
    """The runs of that cluster that are queued or in progress, the first created first
    (the one the cluster's claim lets go on, :mod:`bm_upgrade.defs.runclaim`)."""
    return [record.dagster_run for record in going_records(instance, cluster)]


def job_name(inventory: Inventory) -> str:
    return f"upgrade_{inventory.cluster}"


PRELOAD_MODULES = [
    "bm_upgrade.defs.jobs",
    # What a step's process imports before it runs the op, when the forkserver has not:
    # the instance's SQLite storages and their alembic checks, the compute log manager.
    # Preloaded, they no longer weigh on each op's start (a missing one is skipped).
    "dagster._core.execution.api",
    "dagster._core.executor.multiprocess",
    "dagster._core.instance.factory",
    "dagster._core.secrets.env_file",
    "dagster._core.storage.event_log.sqlite.sqlite_event_log",
    "dagster._core.storage.local_compute_log_manager",
    "dagster._core.storage.migration.utils",
    "dagster._core.storage.runs.sqlite.sqlite_run_storage",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.utility_ops",
    "dagster._core.workspace.autodiscovery",
    "alembic.migration",
    "alembic.script",
]


FAILOVER_PRIORITY = {"dagster/priority": "1"}
"""Tags of a failover node: of the steps ready to start, Dagster's executors start those of
the highest ``dagster/priority`` first (in process as with processes)."""


def executor_for(inventory: Inventory) -> dg.ExecutorDefinition:
    """In-process for one stripe at a time, else forkserver processes (see the module)."""
    # The inventory's value by design: the executor is chosen when the code location loads,
    # so parallel_stripes is not run config (defs/config.py).
    parallel = inventory.policy.parallel_stripes
    if parallel <= 1:
        return dg.in_process_executor
    return dg.multiprocess_executor.configured(
        {
            "max_concurrent": parallel,
            "start_method": {"forkserver": {"preload_modules": PRELOAD_MODULES}},
        }
    )


StripeNodes = tuple[dg.PendingNodeInvocation[Any], dg.PendingNodeInvocation[Any]]


def _stripe_nodes(region: str, stripe: str) -> StripeNodes:
    """A stripe's two nodes, tagged with the stripe they work on."""
    where = {REGION_TAG: region, STRIPE_TAG: stripe}
    mirrors, failover = stripe_nodes(region, stripe)
    return (
        upgrade_mirrors_op.alias(mirrors).tag(where),
        failover_op.alias(failover).tag({**where, **FAILOVER_PRIORITY}),
    )


def build_upgrade_job(
    inventory: Inventory, inventory_path: str, prediction: str = ""
) -> dg.JobDefinition:
    """The ``upgrade_<cluster>`` job for one inventory file; ``prediction``: its expected
    duration, a paragraph of the job's description (defs/prediction_load.py)."""
    # One op definition per kind, one node (alias) per stripe and per client batch: op
    # definitions must be unique across the code location, which holds many clusters. The
    # ops read what they work on from their node's tags.
    canary = inventory.policy.canary
    stripes = [_stripe_nodes(region.name, stripe.name) for region, stripe in inventory.stripes()]
    if canary is not None:
        # The canary's pair first: its ops come first in the graph as in the report.
        first = [f"{r.name}/{s.name}" for r, s in inventory.stripes()].index(canary)
        stripes.insert(0, stripes.pop(first))
    gate = approve_canary_op.alias(GATE).tag({CANARY_TAG: canary}) if canary else None
    clients = [client for _, client in inventory.clients()]
    # The inventory's batch size shapes the graph when the code location loads; a run's
    # own size (run config) regroups the clients over these nodes (procedure/batches.py).
    size = inventory.policy.client_batch_size
    batch_ops = [
        restart_clients_op.alias(f"restart_clients_{i + 1}").tag(
            {
                BATCH_TAG: str(i + 1),
                "bm_upgrade/clients": ",".join(c.name for c in clients[s : s + size]),
            }
        )
        for i, s in enumerate(range(0, len(clients), size))
    ]
    has_wan = inventory.has_wan()

    @dg.graph(name=job_name(inventory))
    def upgrade() -> None:
        settings = preflight_op()
        kit_path = download_op(settings)
        staged = stage_kit_op(settings, kit_path)
        # Each op outputs its own step records only; the report gathers them (in this
        # order), so no output grows with the ops before it (defs/outputs.py).
        done = []
        approved = None
        for mirrors, failover in stripes:
            if approved is None:
                mirrored = mirrors(settings, staged)
            else:
                mirrored = mirrors(settings, staged, before=approved)
            done += [mirrored, failover(settings, staged, before=mirrored)]
            if gate is not None and approved is None:
                # The first pair is the canary's: every other stripe waits for the gate.
                approved = gate(settings, before=done[-1])
        last = verify_servers_op(settings, done)
        gathered = [last]
        for batch in batch_ops:
            last = batch(settings, staged, before=last)
            gathered.append(last)
        if has_wan:
            gathered.append(wan_cycle_op(settings, staged, before=last))
        report_op(settings, gathered)

    return upgrade.to_job(
        description=f"Rolling maintenance upgrade of BigMemory Max cluster "
        f"{inventory.cluster} ({inventory_path})" + (f"\n\n{prediction}" if prediction else ""),
        resource_defs={
            "cluster": ClusterResource(inventory_path=inventory_path),
            # Outputs in the run's events, readable by every run worker (defs/outputs.py).
            "io_manager": RunEventsIOManager(),
        },
        config={"ops": {"preflight": {"config": UpgradeConfig.defaults_for(inventory)}}},
        # The file's hash as this code location read it: a run launched from the UI or a
        # schedule records it; a re-execution compares it with the file's hash then.
        tags={
            CLUSTER_TAG: inventory.cluster,
            INVENTORY_TAG: inventory_path,
            INVENTORY_SHA_TAG: inventory_sha256(inventory_path),
        },
        executor_def=executor_for(inventory),
    )


def job_for_inventory(inventory_path: str) -> dg.JobDefinition:
    """Rebuild the job of one inventory file: what a reconstructable job calls in each
    process (``execute_job``, re-execution, the multiprocess executor)."""
    path = str(Path(inventory_path).resolve())
    return build_upgrade_job(load_inventory(path), path)
