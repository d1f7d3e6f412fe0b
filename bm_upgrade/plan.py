"""The upgrade plan: a pure function from an inventory (+ observed state) to ordered steps.

No I/O here. The plan follows TERRACOTTA.md's procedure and DESIGN.md's safety rules:

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
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from bm_upgrade.errors import PlanRefused, UserError
from bm_upgrade.inventory import Inventory, Orchestrator, Region, Server, Stripe, major_minor

Phase = Literal["preflight", "kit", "servers", "verify", "clients", "orchestrators", "report"]
PHASES: tuple[Phase, ...] = (
    "preflight", "kit", "servers", "verify", "clients", "orchestrators", "report")

ACTIVE = "ACTIVE-COORDINATOR"
STANDBY = "PASSIVE-STANDBY"


@dataclass(frozen=True)
class NodeState:
    """What was observed of one node (server, client or orchestrator).

    Attributes:
        running: the process is up.
        version: the version installed (``version.sh`` / the client jars), None if unknown.
        state: a server's state (``ACTIVE-COORDINATOR``, ``PASSIVE-STANDBY``, ...) when running.
    """

    running: bool = True
    version: str | None = None
    state: str | None = None

    @property
    def role(self) -> str | None:
        if not self.running or self.state is None:
            return None
        return "ACTIVE" if self.state == ACTIVE else "PASSIVE"


@dataclass(frozen=True)
class PlanOptions:
    """Choices for one plan; defaults come from the inventory's policy."""

    target_version: str
    failback: bool = False
    delete_dirty_backups: bool = False
    keep_previous_kit: bool = True
    client_batch_size: int = 1
    parallel_stripes: int = 1
    allow_downtime: bool = False
    accept_data_loss: bool = False

    @classmethod
    def from_inventory(cls, inventory: Inventory, **overrides: Any) -> PlanOptions:
        """Options from the inventory's target and policy; ``None`` overrides are ignored."""
        policy = inventory.policy
        values: dict[str, Any] = {
            "target_version": inventory.target_version,
            "failback": policy.failback,
            "delete_dirty_backups": policy.delete_dirty_backups,
            "keep_previous_kit": policy.keep_previous_kit,
            "client_batch_size": policy.client_batch_size,
            "parallel_stripes": policy.parallel_stripes,
            "allow_downtime": policy.allow_downtime,
            "accept_data_loss": policy.accept_data_loss,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True)
class Step:
    """One step of the plan.

    Attributes:
        phase: one of PHASES.
        node: the server/client/orchestrator/host it acts on (the cluster for cluster steps).
        action: what it does (``stop``, ``install``, ``start``, ``confirm-standby``, ...).
        waits_for: what must be true before the step counts as done.
        stage: steps of one stage may overlap; stages run in order.
        lane: the parallel group: steps of one lane run in order, lanes of a stage in parallel.
        kind: ``change`` (alters the cluster) or ``check`` (only looks).
        region, stripe: where the node lives, when it is a server/client/orchestrator.
        skipped: the observed state already satisfies the step.
        reason: why it is skipped.
        detail: what the step does, where its action name does not say it all.
    """

    phase: Phase
    node: str
    action: str
    waits_for: str
    stage: int
    lane: str
    kind: Literal["change", "check"] = "change"
    region: str | None = None
    stripe: str | None = None
    skipped: bool = False
    reason: str = ""
    detail: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity of a step across re-plans."""
        return (self.phase, self.node, self.action)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["parallel_group"] = f"{self.stage}:{self.lane}"
        return data


@dataclass(frozen=True)
class Plan:
    """The ordered steps for one cluster and target."""

    cluster: str
    target_version: str
    options: PlanOptions
    steps: tuple[Step, ...] = field(default_factory=tuple)

    def todo(self) -> list[Step]:
        """The change steps that are not skipped, in order."""
        return [s for s in self.steps if s.kind == "change" and not s.skipped]


# -- refusals -------------------------------------------------------------------------------
def refusals(inventory: Inventory, options: PlanOptions,
             observed: Mapping[str, NodeState]) -> list[str]:
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
                "instead")
    for region in inventory.regions:
        for node_name, seen in _other_nodes(region, observed):
            if seen.version and major_minor(seen.version) != target_mm:
                reasons.append(
                    f"{node_name} ({region.name}) runs {seen.version} and the target is "
                    f"{options.target_version}: that is not a maintenance upgrade; follow the "
                    f"{target_mm} migration guide instead")
        for stripe in region.stripes:
            if len(stripe.servers) > 1:
                continue
            persistent = inventory.region_persistent(region)
            where = f"stripe {region.name}/{stripe.name}"
            if not persistent and not options.accept_data_loss:
                reasons.append(
                    f"{where} has no mirror and is not persistent: upgrading it loses all its "
                    "data; add a mirror, or accept the loss with --accept-data-loss "
                    "(policy.accept_data_loss)")
            if not options.allow_downtime:
                reasons.append(
                    f"{where} has no mirror: upgrading it stops it for the whole install; add a "
                    "mirror, or consent with --allow-downtime (policy.allow_downtime)")
    return reasons


def _other_nodes(region: Region,
                 observed: Mapping[str, NodeState]) -> Iterator[tuple[str, NodeState]]:
    for client in region.clients:
        if client.name in observed:
            yield f"client {client.name}", observed[client.name]
    for orch in region.orchestrators:
        if orch.name in observed:
            yield f"orchestrator {orch.name}", observed[orch.name]


# -- the plan -------------------------------------------------------------------------------
class _Builder:
    """Accumulates steps, numbering stages as phases and batches open."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.stage = -1

    def next_stage(self) -> None:
        self.stage += 1

    def add(self, phase: Phase, node: str, action: str, waits_for: str, lane: str,
            **extra: Any) -> None:
        self.steps.append(Step(phase=phase, node=node, action=action, waits_for=waits_for,
                               stage=self.stage, lane=lane, **extra))


def make_plan(inventory: Inventory, observed: Mapping[str, NodeState] | None = None,
              options: PlanOptions | None = None) -> Plan:
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
        raise UserError(f"no kit of version {target} is listed under kits in the inventory of "
                        f"{inventory.cluster}; add its url and sha256, or choose another --to")
    reasons = refusals(inventory, options, observed)
    if reasons:
        raise PlanRefused(reasons)

    b = _Builder()
    cluster = inventory.cluster
    b.next_stage()
    b.add("preflight", cluster, "preflight",
          "every host reachable, every stripe one ACTIVE + PASSIVE-STANDBY mirrors, license "
          f"covers {target}, disk room for the kit, inside the maintenance window",
          lane="preflight", kind="check")

    # Kit: fetched once, staged on every host that runs a node still to upgrade.
    hosts = _hosts_needing_kit(inventory, observed, target)
    b.next_stage()
    b.add("kit", cluster, "fetch", f"bigmemory-max-{target}.tar.gz downloaded, sha256 matches",
          lane="kit", skipped=not any(hosts.values()),
          reason="" if any(hosts.values()) else f"every node already runs {target}")
    b.next_stage()
    for host, pending in hosts.items():
        b.add("kit", host, "stage", "kit and license uploaded to the host, sha256 matches",
              lane=f"kit/{host}", skipped=not pending,
              reason="" if pending else f"every node on {host} already runs {target}")

    b.next_stage()
    for region in inventory.regions:
        for stripe in region.stripes:
            _StripePlanner(b, region, stripe, observed, options).plan()

    b.next_stage()
    b.add("verify", cluster, "verify-servers",
          f"every server of every region on {target}; every stripe one ACTIVE-COORDINATOR and "
          "PASSIVE-STANDBY mirrors", lane="verify", kind="check")

    _client_steps(b, inventory, observed, options)
    _orchestrator_steps(b, inventory, observed, target)

    b.next_stage()
    b.add("report", cluster, "report", "version matrix before/after, durations, skips",
          lane="report", kind="check")
    return Plan(cluster=cluster, target_version=target, options=options, steps=tuple(b.steps))


def _hosts_needing_kit(inventory: Inventory, observed: Mapping[str, NodeState],
                       target: str) -> dict[str, bool]:
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


def _server_state(server: Server, stripe: Stripe,
                  observed: Mapping[str, NodeState]) -> NodeState:
    seen = observed.get(server.name)
    if seen is not None:
        return seen
    preferred = stripe.preferred_active()
    any_active = any((observed.get(s.name) or NodeState()).state == ACTIVE
                     for s in stripe.servers)
    assumed = ACTIVE if (server is preferred and not any_active) else STANDBY
    return NodeState(running=True, version=None, state=assumed)


class _StripePlanner:
    """Plans one stripe's server steps, in strict order, on one lane.

    It keeps the state each step is expected to leave behind, so every decision is taken
    against the state at that point of the plan: that is what keeps one server down at most.
    """

    def __init__(self, b: _Builder, region: Region, stripe: Stripe,
                 observed: Mapping[str, NodeState], options: PlanOptions) -> None:
        self.b = b
        self.region = region
        self.stripe = stripe
        self.target = options.target_version
        self.options = options
        self.single = len(stripe.servers) == 1
        self.preferred = stripe.preferred_active()
        self.state = {s.name: _server_state(s, stripe, observed) for s in stripe.servers}

    def plan(self) -> None:
        self.bring_back_down_servers()
        self.confirm_starting_servers()
        self.upgrade_mirrors()
        self.upgrade_active()
        if self.options.failback:
            self.fail_back()

    # -- rules, in the order they apply ----------------------------------------------------
    def bring_back_down_servers(self) -> None:
        """A server that is down is brought back first: never two down at once."""
        for name, seen in list(self.state.items()):
            if seen.running:
                continue
            successor = self.takeover_candidate(name)
            if self.active_name() is None and successor:
                self.add(successor, "wait-failover", f"{successor} is ACTIVE-COORDINATOR")
                self.set(successor, True, self.state[successor].version, ACTIVE)
            self.bring_back(name)

    def confirm_starting_servers(self) -> None:
        """A server on the target still starting or syncing is confirmed before going on."""
        for name, seen in list(self.state.items()):
            if seen.running and seen.version == self.target and seen.state not in (ACTIVE,
                                                                                   STANDBY):
                self.confirm(name)

    def upgrade_mirrors(self) -> None:
        """Every mirror, in inventory order, before the active."""
        for name, seen in list(self.state.items()):
            if name == self.active_name():
                continue
            if seen.version == self.target:
                self.add(name, "upgrade", f"{name} on {self.target}",
                         skip=f"already runs {self.target} and is {seen.state or 'up'}")
                continue
            self.add(name, "stop", "the stop script reported success and the process exited")
            self.set(name, False, seen.version, None)
            self.bring_back(name)

    def upgrade_active(self) -> None:
        """The active, through a controlled failover to a PASSIVE-STANDBY mirror."""
        active = self.active_name()
        if active is None:
            return
        if self.state[active].version == self.target:
            self.add(active, "upgrade", f"{active} on {self.target}",
                     skip=f"already runs {self.target} and is ACTIVE-COORDINATOR")
            return
        if self.single:
            self.add(active, "stop", "stopped (downtime: this stripe has no mirror)")
            self.set(active, False, self.state[active].version, None)
        else:
            self.fail_over_from(active, "failover-stop",
                                "a mirror is PASSIVE-STANDBY before the stop; the process "
                                "exited")
        self.bring_back(active)

    def fail_back(self) -> None:
        """Return the ACTIVE role to the stripe's preferred server."""
        current = self.active_name()
        if self.preferred is None or self.single or current is None:
            return
        name = self.preferred.name
        if current == name:
            self.add(name, "failback", f"{name} is ACTIVE-COORDINATOR",
                     skip=f"{name} is already the ACTIVE")
            return
        self.fail_over_from(current, "failback-stop",
                            f"{name} is PASSIVE-STANDBY before the stop; the process exited")
        self.bring_back(current)

    # -- building blocks -------------------------------------------------------------------
    def add(self, server: str, action: str, waits_for: str, *, skip: str = "",
            detail: str = "") -> None:
        self.b.add("servers", server, action, waits_for,
                   lane=f"servers/{self.region.name}/{self.stripe.name}",
                   region=self.region.name, stripe=self.stripe.name, skipped=bool(skip),
                   reason=skip, detail=detail)

    def set(self, name: str, running: bool, version: str | None, state: str | None) -> None:
        self.state[name] = NodeState(running, version, state)

    def active_name(self) -> str | None:
        return next((n for n, s in self.state.items() if s.running and s.state == ACTIVE),
                    None)

    def takeover_candidate(self, excluding: str) -> str | None:
        # The real election picks any PASSIVE-STANDBY mirror; the plan predicts the preferred
        # server, else the first in inventory order, and the procedure acts on whichever
        # actually took over.
        preferred = self.preferred.name if self.preferred else None
        order = sorted(self.state, key=lambda n: n != preferred)
        return next((n for n in order if n != excluding and self.state[n].running
                     and self.state[n].state == STANDBY), None)

    def install_detail(self) -> str:
        note = "move the old kit aside" if self.options.keep_previous_kit else \
            "remove the old kit"
        if self.options.delete_dirty_backups:
            note += ", delete dirty-objectdb backups"
        return note + f", unpack {self.target}, put the license in the kit root"

    def bring_back(self, name: str) -> None:
        """Steps for a server that is down: install if needed, start, confirm."""
        if self.state[name].version != self.target:
            self.add(name, "install", f"the kit root holds the {self.target} kit and "
                                      "terracotta-license.key", detail=self.install_detail())
        self.add(name, "start", "the start script launched the server detached")
        self.confirm(name)

    def confirm(self, name: str) -> None:
        if self.single:
            self.add(name, "confirm-active", f"{name} is ACTIVE-COORDINATOR on {self.target}")
            self.set(name, True, self.target, ACTIVE)
        else:
            self.add(name, "confirm-standby", f"{name} is PASSIVE-STANDBY and version.sh "
                                              f"prints {self.target}")
            self.set(name, True, self.target, STANDBY)

    def fail_over_from(self, name: str, action: str, waits_for: str) -> None:
        self.add(name, action, waits_for)
        self.set(name, False, self.state[name].version, None)
        successor = self.takeover_candidate(name)
        self.add(successor or name, "wait-failover",
                 f"{successor or 'a mirror'} is ACTIVE-COORDINATOR (election time)")
        if successor:
            self.set(successor, True, self.state[successor].version, ACTIVE)


def _client_steps(b: _Builder, inventory: Inventory, observed: Mapping[str, NodeState],
                  options: PlanOptions) -> None:
    target = options.target_version
    clients = [(region, client) for region in inventory.regions for client in region.clients]
    size = options.client_batch_size
    for start in range(0, len(clients), size):
        b.next_stage()
        for region, client in clients[start:start + size]:
            seen = observed.get(client.name) or NodeState(True, None)

            def add(action: str, waits_for: str, skip: str = "",
                    name: str = client.name, region_name: str = region.name) -> None:
                b.add("clients", name, action, waits_for, lane=f"clients/{name}",
                      region=region_name, skipped=bool(skip), reason=skip)

            if seen.running and seen.version == target:
                add("upgrade", f"{client.name} on {target}",
                    skip=f"already runs on the {target} jars")
                continue
            if seen.running:
                add("stop", "the stop command succeeded")
            if seen.version != target:
                add("replace-jars", f"lib dir holds the {target} ehcache-ee and toolkit jars "
                                    "only")
            add("start", f"the application runs on the {target} jars")


def _orchestrator_steps(b: _Builder, inventory: Inventory, observed: Mapping[str, NodeState],
                        target: str) -> None:
    orchs: list[tuple[Region, Orchestrator]] = [
        (region, o) for region in inventory.regions for o in region.orchestrators]
    if not orchs:
        return
    seen = {o.name: observed.get(o.name) or NodeState(True, None) for _, o in orchs}
    todo = {o.name for _, o in orchs if not (seen[o.name].running
                                             and seen[o.name].version == target)}

    def add(region: Region, orch: Orchestrator, action: str, waits_for: str,
            skip: str = "") -> None:
        b.add("orchestrators", orch.name, action, waits_for, lane=f"orchestrators/{orch.name}",
              region=region.name, skipped=bool(skip), reason=skip)

    # Stop standby orchestrators before masters, so no standby takes over and forces every
    # replica to resync; install all before starting any, so all start on the same version.
    for role in ("standby", "master"):
        b.next_stage()
        for region, orch in orchs:
            if orch.role != role:
                continue
            if orch.name not in todo:
                add(region, orch, "upgrade", f"{orch.name} on {target}",
                    skip=f"already runs {target}")
            elif seen[orch.name].running:
                add(region, orch, "stop", "stop-wan.sh succeeded and the process exited")
    b.next_stage()
    for region, orch in orchs:
        if orch.name in todo and seen[orch.name].version != target:
            add(region, orch, "install",
                f"the kit root holds the {target} kit and terracotta-license.key")
    for role in ("master", "standby"):
        b.next_stage()
        for region, orch in orchs:
            if orch.role == role and orch.name in todo:
                add(region, orch, "start", f"start-wan.sh running on {target}")
    b.next_stage()
    b.add("orchestrators", inventory.cluster, "confirm-wan",
          "the master region's caches are available and every replica cache resynced",
          lane="orchestrators", kind="check")


# -- rendering ------------------------------------------------------------------------------
def render_plan(plan: Plan) -> str:
    """A numbered plan a person can review."""
    lines = [f"Upgrade plan for cluster {plan.cluster} -> {plan.target_version}"]
    opts = plan.options
    lines.append(f"  failback={opts.failback} delete_dirty_backups={opts.delete_dirty_backups} "
                 f"client_batch_size={opts.client_batch_size} "
                 f"parallel_stripes={opts.parallel_stripes}")
    phase: str | None = None
    for number, step in enumerate(plan.steps, start=1):
        if step.phase != phase:
            phase = step.phase
            lines.append(f"\n{phase.upper()}")
        where = f" [{step.region}/{step.stripe}]" if step.stripe else (
            f" [{step.region}]" if step.region else "")
        mark = f"  (skipped: {step.reason})" if step.skipped else ""
        lines.append(f"{number:>3}. {step.action:<16} {step.node}{where}{mark}")
        if not step.skipped:
            if step.detail:
                lines.append(f"       does: {step.detail}")
            lines.append(f"       waits for: {step.waits_for}")
    todo = plan.todo()
    lines.append(f"\n{len(todo)} change step(s) to do, "
                 f"{sum(s.skipped for s in plan.steps)} skipped. Stripes run in parallel up to "
                 f"{opts.parallel_stripes}; a stripe's steps run in order.")
    return "\n".join(lines)


def with_target(options: PlanOptions, target: str) -> PlanOptions:
    """The same options for another target version."""
    return replace(options, target_version=target)
