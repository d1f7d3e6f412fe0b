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
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from bm_upgrade.errors import PlanRefused, UserError
from bm_upgrade.inventory import Inventory, Orchestrator, Region, major_minor
from bm_upgrade.plan.model import (
    ACTIVE,
    PHASES,
    STANDBY,
    NodeState,
    Phase,
    Plan,
    PlanOptions,
    Step,
)
from bm_upgrade.plan.stripes import Builder, StripePlanner

__all__ = [
    "ACTIVE",
    "PHASES",
    "STANDBY",
    "NodeState",
    "Phase",
    "Plan",
    "PlanOptions",
    "Step",
    "make_plan",
    "refusals",
    "render_plan",
]


# -- refusals -------------------------------------------------------------------------------
def refusals(
    inventory: Inventory, options: PlanOptions, observed: Mapping[str, NodeState]
) -> list[str]:
    """Every reason the upgrade must not start, one sentence each naming the node/stripe and
    the way out."""
    reasons: list[str] = []
    target_mm = major_minor(options.target_version)
    for region, stripe, server in inventory.servers():
        seen = observed.get(server.name)
        if seen and seen.version and major_minor(seen.version) != target_mm:
            reasons.append(
                f"server {server.name} ({region.name}/{stripe.name}) runs {seen.version} and "
                f"the target is {options.target_version}: that is not a maintenance upgrade "
                f"(only the third number may change); follow the {target_mm} migration guide "
                "instead"
            )
    for region in inventory.regions:
        for node_name, seen in _other_nodes(region, observed):
            if seen.version and major_minor(seen.version) != target_mm:
                reasons.append(
                    f"{node_name} ({region.name}) runs {seen.version} and the target is "
                    f"{options.target_version}: that is not a maintenance upgrade; follow the "
                    f"{target_mm} migration guide instead"
                )
        for stripe in region.stripes:
            if len(stripe.servers) > 1:
                continue
            persistent = inventory.region_persistent(region)
            where = f"stripe {region.name}/{stripe.name}"
            if not persistent and not options.accept_data_loss:
                reasons.append(
                    f"{where} has no mirror and is not persistent: upgrading it loses all its "
                    "data; add a mirror, or accept the loss with --accept-data-loss "
                    "(policy.accept_data_loss)"
                )
            if not options.allow_downtime:
                reasons.append(
                    f"{where} has no mirror: upgrading it stops it for the whole install; add a "
                    "mirror, or consent with --allow-downtime (policy.allow_downtime)"
                )
    return reasons


def _other_nodes(
    region: Region, observed: Mapping[str, NodeState]
) -> Iterator[tuple[str, NodeState]]:
    for client in region.clients:
        if client.name in observed:
            yield f"client {client.name}", observed[client.name]
    for orch in region.orchestrators:
        if orch.name in observed:
            yield f"orchestrator {orch.name}", observed[orch.name]


def make_plan(
    inventory: Inventory,
    observed: Mapping[str, NodeState] | None = None,
    options: PlanOptions | None = None,
) -> Plan:
    """The ordered plan for one cluster.

    Args:
        inventory: the cluster.
        observed: state per node name; a node without an entry is assumed running a version
            other than the target (with the stripe's preferred server ACTIVE and the others
            PASSIVE-STANDBY).
        options: defaults from the inventory.

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
    reasons = refusals(inventory, options, observed)
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
    for region in inventory.regions:
        for stripe in region.stripes:
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

    _client_steps(b, inventory, observed, options)
    _orchestrator_steps(b, inventory, observed, target)

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
    nodes: list[tuple[str, str]] = [(s.name, s.host) for _, _, s in inventory.servers()]
    for region in inventory.regions:
        nodes += [(c.name, c.host) for c in region.clients]
        nodes += [(o.name, o.host) for o in region.orchestrators]
    for name, host in nodes:
        seen = observed.get(name)
        if seen is None or seen.version != target:
            pending[host] = True
    return pending


def _client_steps(
    b: Builder, inventory: Inventory, observed: Mapping[str, NodeState], options: PlanOptions
) -> None:
    target = options.target_version
    clients = [(region, client) for region in inventory.regions for client in region.clients]
    size = options.client_batch_size
    for start in range(0, len(clients), size):
        b.next_stage()
        for region, client in clients[start : start + size]:
            seen = observed.get(client.name) or NodeState(True, None)

            def add(
                action: str,
                waits_for: str,
                skip: str = "",
                name: str = client.name,
                region_name: str = region.name,
            ) -> None:
                b.add(
                    "clients",
                    name,
                    action,
                    waits_for,
                    lane=f"clients/{name}",
                    region=region_name,
                    skipped=bool(skip),
                    reason=skip,
                )

            if seen.running and seen.version == target:
                add(
                    "upgrade",
                    f"{client.name} on {target}",
                    skip=f"already runs on the {target} jars",
                )
                continue
            if seen.running:
                add("stop", "the stop command succeeded")
            if seen.version != target:
                add("replace-jars", f"lib dir holds the {target} ehcache-ee and toolkit jars only")
            add("start", f"the application runs on the {target} jars")


def _orchestrator_steps(
    b: Builder, inventory: Inventory, observed: Mapping[str, NodeState], target: str
) -> None:
    orchs: list[tuple[Region, Orchestrator]] = [
        (region, o) for region in inventory.regions for o in region.orchestrators
    ]
    if not orchs:
        return
    seen = {o.name: observed.get(o.name) or NodeState(True, None) for _, o in orchs}
    todo = {
        o.name for _, o in orchs if not (seen[o.name].running and seen[o.name].version == target)
    }

    def add(
        region: Region, orch: Orchestrator, action: str, waits_for: str, skip: str = ""
    ) -> None:
        b.add(
            "orchestrators",
            orch.name,
            action,
            waits_for,
            lane=f"orchestrators/{orch.name}",
            region=region.name,
            skipped=bool(skip),
            reason=skip,
        )

    # Stop standby orchestrators before masters, so no standby takes over and forces every
    # replica to resync; install all before starting any, so all start on the same version.
    for role in ("standby", "master"):
        b.next_stage()
        for region, orch in orchs:
            if orch.role != role:
                continue
            if orch.name not in todo:
                add(
                    region,
                    orch,
                    "upgrade",
                    f"{orch.name} on {target}",
                    skip=f"already runs {target}",
                )
            elif seen[orch.name].running:
                add(region, orch, "stop", "stop-wan.sh succeeded and the process exited")
    b.next_stage()
    for region, orch in orchs:
        if orch.name in todo and seen[orch.name].version != target:
            add(
                region,
                orch,
                "install",
                f"the kit root holds the {target} kit and terracotta-license.key",
            )
    for role in ("master", "standby"):
        b.next_stage()
        for region, orch in orchs:
            if orch.role == role and orch.name in todo:
                add(region, orch, "start", f"start-wan.sh running on {target}")
    b.next_stage()
    b.add(
        "orchestrators",
        inventory.cluster,
        "confirm-wan",
        "the master region's caches are available and every replica cache resynced",
        lane="orchestrators",
        kind="check",
    )


# -- rendering ------------------------------------------------------------------------------
def render_plan(plan: Plan) -> str:
    """A numbered plan a person can review."""
    lines = [f"Upgrade plan for cluster {plan.cluster} -> {plan.target_version}"]
    opts = plan.options
    lines.append(
        f"  failback={opts.failback} delete_dirty_backups={opts.delete_dirty_backups} "
        f"client_batch_size={opts.client_batch_size} "
        f"parallel_stripes={opts.parallel_stripes}"
    )
    phase: str | None = None
    for number, step in enumerate(plan.steps, start=1):
        if step.phase != phase:
            phase = step.phase
            lines.append(f"\n{phase.upper()}")
        where = (
            f" [{step.region}/{step.stripe}]"
            if step.stripe
            else (f" [{step.region}]" if step.region else "")
        )
        mark = f"  (skipped: {step.reason})" if step.skipped else ""
        lines.append(f"{number:>3}. {step.action:<16} {step.node}{where}{mark}")
        if not step.skipped:
            if step.detail:
                lines.append(f"       does: {step.detail}")
            lines.append(f"       waits for: {step.waits_for}")
    todo = plan.todo()
    lines.append(
        f"\n{len(todo)} change step(s) to do, "
        f"{sum(s.skipped for s in plan.steps)} skipped. Stripes run in parallel up to "
        f"{opts.parallel_stripes}; a stripe's steps run in order."
    )
    return "\n".join(lines)
