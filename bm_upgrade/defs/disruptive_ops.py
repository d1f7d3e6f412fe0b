"""The upgrade job's ops that stop and start nodes: a stripe's mirrors, its failover, a batch
of clients, the WAN orchestrator cycle. Short adapters over bm_upgrade.procedure.

Each loads the inventory (the cluster's topology) through the ``cluster`` resource, hands the
run's options (:attr:`RunSettings.options`) to the procedure, stops at the next disruptive
action when its process is asked to (defs/stopping.py), and attaches its step records as
metadata. Those that start new work (a stripe's mirrors, a client batch, the WAN cycle) first
end, starting nothing, when the run was asked to pause (defs/pausing.py); a stripe's failover
never does: its stripe was started. In a dry run each probes and reports the steps it would
take, and changes nothing.
"""

from collections.abc import Callable
from typing import NamedTuple

import dagster as dg

from bm_upgrade.defs.config import RunSettings
from bm_upgrade.defs.logs import relayed_logs
from bm_upgrade.defs.op_context import (
    BATCH_TAG,
    REGION_TAG,
    STRIPE_TAG,
    Records,
    one_sentence,
    step_context,
    stripe_of,
)
from bm_upgrade.defs.pausing import stop_if_paused
from bm_upgrade.defs.records import records_metadata
from bm_upgrade.defs.resources import ClusterResource
from bm_upgrade.defs.step_evidence import commands_recorded
from bm_upgrade.defs.stopping import signals_request_stop
from bm_upgrade.inventory import Inventory, Region, Stripe
from bm_upgrade.plan import Segment
from bm_upgrade.procedure.batches import clients_of_node, upgrade_in_batches
from bm_upgrade.procedure.dry_run import would, would_stripe
from bm_upgrade.procedure.kit import StagedKit
from bm_upgrade.procedure.records import StepRecord
from bm_upgrade.procedure.servers import FAILOVER, MIRRORS, ServerOps, failover, upgrade_mirrors
from bm_upgrade.procedure.wan import cycle_orchestrators
from bm_upgrade.remote import HostPool

StripeWork = Callable[[ServerOps, Region, Stripe], list[StepRecord]]


class _Work(NamedTuple):
    """What one op does: its dry run on the pool, or its work on the procedure's context."""

    dry: Callable[[HostPool], list[StepRecord]]
    do: Callable[[ServerOps], list[StepRecord]]


# What a kind of op works on, from its node's tags, the run's settings and the inventory.
Planner = Callable[[dg.OpExecutionContext, RunSettings, ClusterResource, Inventory], _Work]


def _new_work(context: dg.OpExecutionContext) -> str:
    """What this node would start, for a pause's sentence."""
    tags = context.op.tags
    if STRIPE_TAG in tags:
        return f"stripe {tags.get(REGION_TAG)}/{tags[STRIPE_TAG]} ({context.op_handle.name})"
    return context.op_handle.name


def _step(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    staged: dict[str, StagedKit],
    cluster: ClusterResource,
    planner: Planner,
    *,
    starts_new_work: bool = True,
) -> list[StepRecord]:
    """One disruptive step: the planner's work, or its dry run; stops when asked, relays
    logs, attaches the records as metadata. One that ``starts_new_work`` first ends when its
    run was asked to pause."""
    if starts_new_work:
        stop_if_paused(context, _new_work(context))
    inventory = cluster.load()
    work = planner(context, settings, cluster, inventory)
    with (
        signals_request_stop(context.op_handle.name),
        cluster.pool(inventory) as pool,
        commands_recorded(context, pool),
        one_sentence(),
        relayed_logs(),
    ):
        if settings.dry_run:
            records = work.dry(pool)
        else:
            records = work.do(step_context(context, inventory, pool, settings, staged))
    context.add_output_metadata(records_metadata(records))
    return records


def _after(
    name: str, description: str, planner: Planner, *, starts_new_work: bool = True
) -> dg.OpDefinition:
    """An op that runs after an earlier step (its ``before`` input orders it and carries no
    value) and outputs its own records only: outputs stay small, the report gathers them
    all (defs/jobs.py, defs/outputs.py)."""

    @dg.op(name=name, description=description, ins={"before": dg.In(dg.Nothing)})
    def after(
        context: dg.OpExecutionContext,
        settings: RunSettings,
        staged: dict[str, StagedKit],
        cluster: ClusterResource,
    ) -> Records:
        records = _step(
            context, settings, staged, cluster, planner, starts_new_work=starts_new_work
        )
        return [r.as_dict() for r in records]

    return after


def _stripe(work: StripeWork, segments: frozenset[Segment]) -> Planner:
    """``work`` on the node's stripe; its dry run shows the stripe's steps of ``segments``."""

    def planner(
        context: dg.OpExecutionContext,
        settings: RunSettings,
        cluster: ClusterResource,
        inventory: Inventory,
    ) -> _Work:
        region, stripe = stripe_of(context, inventory, cluster.inventory_path)
        return _Work(
            dry=lambda pool: would_stripe(
                inventory, settings.options, pool, region=region, stripe=stripe, segments=segments
            ),
            do=lambda ctx: work(ctx, region, stripe),
        )

    return planner


def _clients(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    cluster: ClusterResource,
    inventory: Inventory,
) -> _Work:
    """The clients of this batch node, regrouped by the run's batch size."""
    index = int(context.op.tags[BATCH_TAG]) - 1
    nodes = len([n for n in context.job_def.graph.nodes if BATCH_TAG in n.tags])
    size = settings.options.client_batch_size
    mine = clients_of_node(inventory, size, nodes, index)
    names = {c.name for c in mine}

    def next_batch(batch: int) -> None:
        stop_if_paused(context, f"batch {batch} of {context.op_handle.name}")

    return _Work(
        dry=lambda pool: would(inventory, settings.options, pool, lambda s: s.node in names),
        do=lambda ctx: upgrade_in_batches(ctx, mine, size, before_batch=next_batch),
    )


def _orchestrators(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    cluster: ClusterResource,
    inventory: Inventory,
) -> _Work:
    """The WAN orchestrator cycle; says which orchestrators it went through."""
    names = ", ".join(sorted(orch.name for _, orch in inventory.orchestrators()))

    def done(records: list[StepRecord]) -> list[StepRecord]:
        context.log.info("orchestrators %s done", names)
        return records

    return _Work(
        dry=lambda pool: done(
            would(inventory, settings.options, pool, lambda s: s.phase == "orchestrators")
        ),
        do=lambda ctx: done(cycle_orchestrators(ctx)),
    )


@dg.op(
    name="upgrade_mirrors",
    description="Upgrade one stripe's mirrors, one at a time: stop, install the target "
    "kit, start, confirm PASSIVE-STANDBY on the target. One node per stripe, "
    "named upgrade_mirrors_<region>_<stripe>; after approve_canary when there is a canary.",
    # Connected only when the job has a canary (its approval gate); no value passes.
    ins={"before": dg.In(dg.Nothing)},
)
def upgrade_mirrors_op(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    staged: dict[str, StagedKit],
    cluster: ClusterResource,
) -> Records:
    records = _step(context, settings, staged, cluster, _stripe(upgrade_mirrors, MIRRORS))
    return [r.as_dict() for r in records]


failover_op = _after(
    "failover",
    "Upgrade one stripe's active once its mirrors are done: stop it while a "
    "mirror is PASSIVE-STANDBY, wait for the takeover, upgrade the old active, "
    "confirm it PASSIVE-STANDBY, fail back if asked. One node per stripe, "
    "named failover_<region>_<stripe>, after its upgrade_mirrors step.",
    _stripe(failover, FAILOVER),
    starts_new_work=False,  # its stripe was started: a pause lets it finish
)

restart_clients_op = _after(
    "restart_clients",
    "One batch of clients: stop, swap the jars for the target kit's, start, "
    "confirm. One node per batch, named restart_clients_<n>.",
    _clients,
)

wan_cycle_op = _after(
    "wan_cycle",
    "WAN orchestrators: stop standbys, then masters; upgrade all from one "
    "kit; start masters, then standbys; confirm every replica cache resynced.",
    _orchestrators,
)
