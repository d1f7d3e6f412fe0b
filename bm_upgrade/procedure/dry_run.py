"""Dry runs: the plan's steps on the state seen now, as records of what would be done.

Nothing is changed: each function looks at the cluster once and plans on what it saw.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from bm_upgrade.inventory import Inventory, Region, Stripe
from bm_upgrade.plan import PlanOptions, Segment, Step, make_plan
from bm_upgrade.procedure.observe import observe_cluster
from bm_upgrade.procedure.records import StepRecord, skipped
from bm_upgrade.remote import HostPool


def _would(step: Step) -> StepRecord:
    """A planned step as the record of a dry run: why it is skipped, or that it would run."""
    return skipped(
        step.node,
        step.action,
        step.waits_for,
        step.reason if step.skipped else "dry run: would " + step.action,
    )


def would(
    inventory: Inventory, options: PlanOptions, pool: HostPool, keep: Callable[[Step], bool]
) -> list[StepRecord]:
    """The plan's steps that ``keep`` accepts, on the whole cluster as seen now."""
    view = observe_cluster(inventory, pool)
    plan = make_plan(inventory, view.node_states(), options)
    return [_would(step) for step in plan.steps if keep(step)]


def would_stripe(
    inventory: Inventory,
    options: PlanOptions,
    pool: HostPool,
    *,
    region: Region,
    stripe: Stripe,
    segments: Collection[Segment],
) -> list[StepRecord]:
    """One stripe op's plan: the stripe's steps of ``segments`` on the servers as seen now.
    A step of no segment (a server to bring back first) is shown by the op that does it
    first in a run, the one of the ``mirrors`` segment."""
    view = observe_cluster(inventory, pool, clients=False, orchestrators=False)
    plan = make_plan(inventory, view.node_states(), options)
    shown = {*segments, None} if "mirrors" in segments else set(segments)
    return [
        _would(step)
        for step in plan.steps
        if step.phase == "servers"
        and (step.region, step.stripe) == (region.name, stripe.name)
        and step.segment in shown
    ]
