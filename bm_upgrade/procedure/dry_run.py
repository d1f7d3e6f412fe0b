"""Dry runs: the plan's steps on the state seen now, as records of what would be done.

Nothing is changed: each function looks at the cluster once and plans on what it saw.
"""

from __future__ import annotations

from collections.abc import Callable

from bm_upgrade.inventory import Inventory, Region, Stripe
from bm_upgrade.plan import ACTIVE, PlanOptions, Step, make_plan
from bm_upgrade.procedure.observe import observe_cluster
from bm_upgrade.procedure.records import StepRecord, skipped
from bm_upgrade.procedure.servers import segments_for
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
    segments: set[str],
) -> list[StepRecord]:
    """One stripe step's plan: the steps of the stripe's ``segments`` (``mirrors``;
    ``active`` and ``failback``) on the servers as seen now."""
    view = observe_cluster(inventory, pool, clients=False, orchestrators=False)
    states = view.node_states()
    plan = make_plan(inventory, states, options)
    steps = [
        s
        for s in plan.steps
        if s.phase == "servers" and (s.region, s.stripe) == (region.name, stripe.name)
    ]
    active = next(
        (
            s.name
            for s in stripe.servers
            if (state := states.get(s.name)) is not None and state.state == ACTIVE
        ),
        None,
    )
    owners = segments_for(steps, active)
    return [_would(step) for index, step in enumerate(steps) if owners[index] in segments]
