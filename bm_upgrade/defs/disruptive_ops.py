"""The upgrade job's ops that stop and start nodes: a stripe's mirrors, its failover, a batch
of clients, the WAN orchestrator cycle. Short adapters over bm_upgrade.procedure.

Each loads the inventory (the cluster's topology) through the ``cluster`` resource, hands the
run's options (:attr:`RunSettings.options`) to the procedure, stops at the next disruptive
action when its process is asked to (defs/stopping.py), and attaches its step records as
metadata. In a dry run it probes and reports the steps it would take, and changes nothing.
"""

from collections.abc import Callable

import dagster as dg

from bm_upgrade.defs.config import RunSettings
from bm_upgrade.defs.logs import relayed_logs
from bm_upgrade.defs.op_context import BATCH_TAG, Records, one_sentence, step_context, stripe_of
from bm_upgrade.defs.records import records_metadata
from bm_upgrade.defs.resources import ClusterResource
from bm_upgrade.defs.stopping import signals_request_stop
from bm_upgrade.inventory import Region, Stripe
from bm_upgrade.plan import Segment
from bm_upgrade.procedure.batches import clients_of_node, upgrade_in_batches
from bm_upgrade.procedure.dry_run import would, would_stripe
from bm_upgrade.procedure.kit import StagedKit
from bm_upgrade.procedure.records import StepRecord
from bm_upgrade.procedure.servers import FAILOVER, MIRRORS, ServerOps, failover, upgrade_mirrors
from bm_upgrade.procedure.wan import cycle_orchestrators

StripeWork = Callable[[ServerOps, Region, Stripe], list[StepRecord]]


def _stripe_step(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    staged: dict[str, StagedKit],
    cluster: ClusterResource,
    *,
    work: StripeWork,
    segments: frozenset[Segment],
) -> list[StepRecord]:
    """One stripe step: ``work`` on the node's stripe, or its dry run."""
    inventory = cluster.load()
    region, stripe = stripe_of(context, inventory, cluster.inventory_path)
    with (
        signals_request_stop(context.op_handle.name),
        one_sentence(),
        relayed_logs(),
        cluster.pool(inventory) as pool,
    ):
        if settings.dry_run:
            records = would_stripe(
                inventory, settings.options, pool, region=region, stripe=stripe, segments=segments
            )
        else:
            ctx = step_context(context, inventory, pool, settings, staged)
            records = work(ctx, region, stripe)
    context.add_output_metadata(records_metadata(records))
    return records


@dg.op(
    name="upgrade_mirrors",
    description="Upgrade one stripe's mirrors, one at a time: stop, install the target "
    "kit, start, confirm PASSIVE-STANDBY on the target. One node per stripe, "
    "named upgrade_mirrors_<region>_<stripe>.",
)
def upgrade_mirrors_op(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    staged: dict[str, StagedKit],
    cluster: ClusterResource,
) -> Records:
    records = _stripe_step(
        context, settings, staged, cluster, work=upgrade_mirrors, segments=MIRRORS
    )
    return [r.as_dict() for r in records]


@dg.op(
    name="failover",
    description="Upgrade one stripe's active once its mirrors are done: stop it while a "
    "mirror is PASSIVE-STANDBY, wait for the takeover, upgrade the old active, "
    "confirm it PASSIVE-STANDBY, fail back if asked. One node per stripe, "
    "named failover_<region>_<stripe>, after its upgrade_mirrors step.",
)
def failover_op(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    staged: dict[str, StagedKit],
    before: Records,
    cluster: ClusterResource,
) -> Records:
    records = _stripe_step(context, settings, staged, cluster, work=failover, segments=FAILOVER)
    return before + [r.as_dict() for r in records]


@dg.op(
    name="restart_clients",
    description="One batch of clients: stop, swap the jars for the target kit's, start, "
    "confirm. One node per batch, named restart_clients_<n>.",
)
def restart_clients_op(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    staged: dict[str, StagedKit],
    before: Records,
    cluster: ClusterResource,
) -> Records:
    inventory = cluster.load()
    index = int(context.op.tags[BATCH_TAG]) - 1
    nodes = len([n for n in context.job_def.graph.nodes if BATCH_TAG in n.tags])
    size = settings.options.client_batch_size
    mine = clients_of_node(inventory, size, nodes, index)
    names = {c.name for c in mine}
    with (
        signals_request_stop(context.op_handle.name),
        one_sentence(),
        relayed_logs(),
        cluster.pool(inventory) as pool,
    ):
        if settings.dry_run:
            records = would(inventory, settings.options, pool, lambda s: s.node in names)
        else:
            ctx = step_context(context, inventory, pool, settings, staged)
            records = upgrade_in_batches(ctx, mine, size)
    context.add_output_metadata(records_metadata(records))
    return before + [r.as_dict() for r in records]


@dg.op(
    name="wan_cycle",
    description="WAN orchestrators: stop standbys, then masters; upgrade all from one "
    "kit; start masters, then standbys; confirm every replica cache resynced.",
)
def wan_cycle_op(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    staged: dict[str, StagedKit],
    before: Records,
    cluster: ClusterResource,
) -> Records:
    inventory = cluster.load()
    with (
        signals_request_stop(context.op_handle.name),
        one_sentence(),
        relayed_logs(),
        cluster.pool(inventory) as pool,
    ):
        if settings.dry_run:
            records = would(inventory, settings.options, pool, lambda s: s.phase == "orchestrators")
        else:
            records = cycle_orchestrators(step_context(context, inventory, pool, settings, staged))
    context.add_output_metadata(records_metadata(records))
    names = sorted(orch.name for _, orch in inventory.orchestrators())
    context.log.info("orchestrators %s done", ", ".join(names))
    return before + [r.as_dict() for r in records]
