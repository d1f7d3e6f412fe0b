"""The upgrade plan: a pure function from an inventory (+ observed state) to ordered steps.

No I/O here. The plan follows the procedure of docs/terracotta.md and the rules of docs/safety.md:

- preflight, then the kit (fetch once, stage on every host that needs it), before any stop;
- per stripe, every mirror before the active; the active is stopped only after a mirror is
  confirmed PASSIVE-STANDBY (one atomic ``failover-stop`` step), so at most one server of a
  stripe is ever down; optional failback to the stripe's preferred active;
- a verify step after every server of every region; then clients in batches; then the WAN
  orchestrators (standby ones stopped before masters, all upgraded before any starts);
- a report.

Execution order: ``stage`` numbers run one after another; inside a stage, steps of different
``lane`` s may run in parallel and steps of one lane run in order. Every step of a stripe shares
one lane, so stripes run side by side while a stripe's own steps stay strictly ordered.

Steps that observed state already satisfies are kept, marked ``skipped`` with the reason, so a
re-plan from any intermediate state lists exactly the work that remains (``kind == "change"``
steps); ``kind == "check"`` steps (preflight, verify, report, ...) always run.

Each phase has its planner: ``stripes.py`` (a stripe's server steps, each tagged with the
stripe op that does it), ``clients.py``, ``orchestrators.py``; ``refusals.py`` says why a plan
must not start, ``render.py`` prints one, ``model.py`` holds the vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping

from bm_upgrade.errors import PlanRefused, UserError
from bm_upgrade.inventory import Inventory
from bm_upgrade.plan.clients import client_steps
from bm_upgrade.plan.model import (
    ACTIVE,
    PHASES,
    SEGMENTS,
    STANDBY,
    Action,
    Builder,
    NodeState,
    Phase,
    Plan,
    PlanOptions,
    Segment,
    Step,
)
from bm_upgrade.plan.orchestrators import orchestrator_steps
from bm_upgrade.plan.refusals import refusals
from bm_upgrade.plan.render import render_plan
from bm_upgrade.plan.stripes import StripePlanner

__all__ = [
    "ACTIVE",
    "PHASES",
    "SEGMENTS",
    "STANDBY",
    "Action",
    "NodeState",
    "Phase",
    "Plan",
    "PlanOptions",
    "Segment",
    "Step",
    "make_plan",
    "refusals",
    "render_plan",
]


def make_plan(
    inventory: Inventory,
    observed: Mapping[str, NodeState] | None = None,
    options: PlanOptions | None = None,
    *,
    persistent: Mapping[str, bool] | None = None,
) -> Plan:
    """The ordered plan for one cluster.

    Args:
        inventory: the cluster.
        observed: state per node name; a node without an entry is assumed running a version
            other than the target (with the stripe's preferred server ACTIVE and the others
            PASSIVE-STANDBY).
        options: defaults from the inventory.
        persistent: per ``region/stripe``, the persistence read from its tc-config (what the
            data-loss refusal goes by; a stripe not in it goes by the inventory).

    Raises:
        UserError: the target has no kit in the inventory.
        PlanRefused: every refusal (downtime, data loss, not a maintenance upgrade).
    """
    options = options or PlanOptions.from_inventory(inventory)
    observed = dict(observed or {})
    target = options.target_version
    if inventory.kit_for(target) is None:
        raise UserError(
            f"no kit of version {target} is listed under kits in the inventory of "
            f"{inventory.cluster}; add its url and sha256, or choose another --to"
        )
    reasons = refusals(inventory, options, observed, persistent)
    if reasons:
        raise PlanRefused(reasons)

    b = Builder()
    cluster = inventory.cluster
    b.next_stage()
    b.add(
        "preflight",
        cluster,
        "preflight",
        "every host reachable, every stripe one ACTIVE + PASSIVE-STANDBY mirrors, license "
        f"covers {target}, disk room for the kit, inside the maintenance window",
        lane="preflight",
        kind="check",
    )

    # Kit: fetched once, staged on every host that runs a node still to upgrade.
    hosts = _hosts_needing_kit(inventory, observed, target)
    b.next_stage()
    b.add(
        "kit",
        cluster,
        "fetch",
        f"bigmemory-max-{target}.tar.gz downloaded, sha256 matches",
        lane="kit",
        skipped=not any(hosts.values()),
        reason="" if any(hosts.values()) else f"every node already runs {target}",
    )
    b.next_stage()
    for host, pending in hosts.items():
        b.add(
            "kit",
            host,
            "stage",
            "kit and license uploaded to the host, sha256 matches",
            lane=f"kit/{host}",
            skipped=not pending,
            reason="" if pending else f"every node on {host} already runs {target}",
        )

    b.next_stage()
    stripes = list(inventory.stripes())
    canary = next(((r, st) for r, st in stripes if f"{r.name}/{st.name}" == options.canary), None)
    if canary is not None:
        # The canary stripe alone, then the run's approval gate; the others after it.
        stripes.remove(canary)
        StripePlanner(b, *canary, observed, options).plan()
        b.next_stage()
        b.add(
            "approval",
            cluster,
            "approve-canary",
            f"an operator approves the canary {options.canary} (`bm-upgrade approve RUN_ID`, "
            f"or the approve_{cluster} job in the UI) within "
            f"{options.timeouts.approval_s:g} s; a rejection or the timeout ends the run "
            "with the canary alone upgraded",
            lane="approval",
            kind="check",
        )
        b.next_stage()
    for region, stripe in stripes:
        StripePlanner(b, region, stripe, observed, options).plan()

    b.next_stage()
    b.add(
        "verify",
        cluster,
        "verify-servers",
        f"every server of every region on {target}; every stripe one ACTIVE-COORDINATOR and "
        "PASSIVE-STANDBY mirrors",
        lane="verify",
        kind="check",
    )

    client_steps(b, inventory, observed, options)
    orchestrator_steps(b, inventory, observed, target)

    b.next_stage()
    b.add(
        "report",
        cluster,
        "report",
        "version matrix before/after, durations, skips",
        lane="report",
        kind="check",
    )
    return Plan(cluster=cluster, target_version=target, options=options, steps=tuple(b.steps))


def _hosts_needing_kit(
    inventory: Inventory, observed: Mapping[str, NodeState], target: str
) -> dict[str, bool]:
    pending: dict[str, bool] = {host: False for host in inventory.hosts()}
    for node in inventory.nodes():
        seen = observed.get(node.name)
        if seen is None or seen.version != target:
            pending[node.host] = True
    return pending
