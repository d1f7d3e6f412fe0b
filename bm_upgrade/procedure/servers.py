"""The server steps of the upgrade: each mirror (:func:`upgrade_mirrors`), then the active
through a controlled failover and an optional failback (:func:`failover`), as plain functions
over a :class:`StepContext`; the job runs each as its own step per stripe.

The procedure cannot disagree with the plan because it *is* the plan, re-made before every
step: each function observes the stripe (:meth:`StepContext.observe`), asks
:func:`bm_upgrade.plan.make_plan` for the stripe's steps on that live state, runs the first
step not yet satisfied, and looks again. A step the real state already satisfies is never run,
so a rerun after success does nothing and a rerun after a failure resumes where it stopped.

Safety (docs/safety.md rules 2, 3, 4 and 8), checked again right before acting, whatever the
plan says:
- an ACTIVE is stopped only while another server of its stripe is PASSIVE-STANDBY, seen at that
  moment (and the kit's stop script refuses otherwise too: ``--force`` is given only to a
  stripe of one server, with the operator's consent to its downtime);
- nothing is stopped, or kept down for an install, while another server of the stripe is down
  or the stripe has no other ACTIVE;
- a server starts only once its kit root holds the license key;
- if no mirror takes over within the failover timeout, the stopped server is started again on
  its old kit at once and the step fails.
A failure raises :class:`~bm_upgrade.errors.StepFailed`: one sentence, the server, what next.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Self

from bm_upgrade.errors import RemoteError, StepFailed
from bm_upgrade.inventory import Inventory, Region, Server, Stripe
from bm_upgrade.inventory_checks import stripe_nodes
from bm_upgrade.license import LICENSE_FILE_NAME
from bm_upgrade.plan import ACTIVE, STANDBY, PlanOptions, Step, make_plan
from bm_upgrade.probes import ServerStatus, kit_version, probe_server_rest
from bm_upgrade.procedure import halt
from bm_upgrade.procedure.install import (
    console_log,
    console_tail,
    install_kit,
    start_server,
    stop_server,
)
from bm_upgrade.procedure.kit import StagedKit, kit_file_name, staging_targets
from bm_upgrade.procedure.records import StepRecord, StepRecorder, skipped
from bm_upgrade.procedure.waits import (
    POLL_S,
    Hosts,
    Poll,
    Seen,
    ServerProbe,
    Watch,
    describe,
    wait_for,
)
from bm_upgrade.remote import HostPool
from bm_upgrade.window import DISRUPTIVE, WindowGuard

log = logging.getLogger(__name__)

MAX_STEPS = 40
"""Steps one call may run; a stripe needs at most ~15. Guards against a step that never
takes effect."""


@dataclass
class StepContext(Watch):
    """What the server steps work with: how to look at servers (:class:`Watch`) over any
    :class:`~bm_upgrade.procedure.waits.Hosts`, the target and policy, and where the target
    kit is staged. A unit test builds one over a scripted fake host; a run builds a
    :class:`ServerOps`.

    Attributes:
        inventory: the cluster.
        pool: a command runner per host (one SSH connection per host in a run).
        options: target version and policy choices (failback, keep kit, dirty backups).
        staged: per host, the staged target kit and license (from ``stage_kit``); a host
            without an entry uses the default staging folder of ``procedure.kit``.
        log: where progress and records go.
        poll_s: pause between looks while waiting.
        window: when set, every disruptive step first checks it ends before the maintenance
            window closes (runs of a schedule, or started by hand asking for it).
        halted: when set, asked before every disruptive step; a sentence naming an earlier
            failure of the same run that stops new disruptive work, or None to go on
            (procedure/halt.py).
        probe_rest: how a server's REST port is asked (``probe_via: rest``).
    """

    inventory: Inventory
    pool: Hosts
    options: PlanOptions
    staged: Mapping[str, StagedKit] = field(default_factory=dict)
    log: logging.Logger = log
    poll_s: float = POLL_S
    window: WindowGuard | None = None
    halted: Callable[[], str | None] | None = None
    probe_rest: ServerProbe = probe_server_rest

    @classmethod
    def create(
        cls,
        inventory: Inventory,
        pool: Hosts,
        *,
        target: str | None = None,
        staged: Mapping[str, StagedKit] | None = None,
        logger: logging.Logger | None = None,
        **overrides: object,
    ) -> Self:
        """A context with options from the inventory's policy (``overrides`` win)."""
        options = PlanOptions.from_inventory(inventory, target_version=target, **overrides)
        return cls(inventory, pool, options, dict(staged or {}), logger or log)

    @property
    def target(self) -> str:
        return self.options.target_version

    def staged_paths(self, host: str) -> tuple[str, str]:
        """The staged target kit and license key on ``host``."""
        staged = self.staged.get(host)
        if staged is not None:
            return staged.kit_path, staged.license_path
        kit = self.inventory.kit_for(self.target)
        folder = staging_targets(self.inventory).get(host)
        if kit is None or folder is None:
            raise StepFailed(
                host,
                f"no kit of version {self.target} is listed in the "
                f"inventory of {self.inventory.cluster} for {host}; add it under "
                "kits and stage it, then rerun",
            )
        return (
            posixpath.join(folder, kit_file_name(kit)),
            posixpath.join(folder, LICENSE_FILE_NAME),
        )

    @property
    def target_sha256(self) -> str | None:
        """The inventory's sha256 of the target kit: a staged tarball is checked against it
        on its host right before it is unpacked."""
        kit = self.inventory.kit_for(self.target)
        return kit.sha256 if kit is not None else None

    def unpacked_bytes(self, host: str) -> int | None:
        """The target kit's unpacked size as staging measured it (None: read on the host)."""
        staged = self.staged.get(host)
        return staged.unpacked_bytes if staged is not None else None

    def before_disruptive(self, node: str, step: str, kind: str) -> None:
        """Before a disruptive step (stopping a server, a client, the orchestrators).

        Raises:
            StepFailed: a stop was requested (procedure/halt.py), an earlier step of the run
                failed (``halted``), or the step would outlast the maintenance window. Nothing
                was changed by this step.
        """
        requested = halt.stop_reason()
        if requested is not None:
            raise StepFailed(
                node,
                f"{step} not started: {requested}; nothing was changed by "
                "this step; rerun (or re-execute from failure) to go on",
            )
        earlier = self.halted() if self.halted is not None else None
        if earlier is not None:
            raise StepFailed(node, f"{step} not started: {earlier}")
        if self.window is not None:
            self.window.check(node, step, kind)

    def region_of(self, stripe: Stripe) -> Region:
        for region in self.inventory.regions:
            if stripe in region.stripes:
                return region
        raise StepFailed(
            stripe.name,
            f"stripe {stripe.name} is not in the inventory of "
            f"{self.inventory.cluster}; pass a stripe of that inventory",
        )


@dataclass
class ServerOps(StepContext):
    """A :class:`StepContext` over the real :class:`~bm_upgrade.remote.HostPool`: the client
    and WAN steps also fan out over its hosts and check the whole cluster through it."""

    pool: HostPool


# -- the plan on live state -------------------------------------------------------------------
def stripe_steps(
    ctx: StepContext,
    region: Region,
    stripe: Stripe,
    seen: Mapping[str, Seen],
    failback: bool | None = None,
) -> list[Step]:
    """The plan's server steps for one stripe, made on the observed state."""
    # Plan this stripe alone: other stripes' refusals are not this stripe's business.
    alone = ctx.inventory.model_copy(
        update={
            "regions": [
                region.model_copy(update={"stripes": [stripe], "clients": [], "orchestrators": []})
            ],
            "wan_master_region": None,
        }
    )
    options = ctx.options if failback is None else replace(ctx.options, failback=failback)
    plan = make_plan(alone, {name: s.node_state for name, s in seen.items()}, options)
    return [s for s in plan.steps if s.phase == "servers"]


def segment_of(steps: list[Step], seen: Mapping[str, Seen]) -> dict[int, str]:
    """Which function owns each step (by index): ``mirrors``, ``active`` or ``failback``."""
    return segments_for(
        steps, next((n for n, s in seen.items() if s.node_state.state == ACTIVE), None)
    )


def segments_for(steps: list[Step], active: str | None) -> dict[int, str]:
    """:func:`segment_of` for a stripe whose ACTIVE now is ``active`` (None: none is)."""
    segment, owners = "mirrors", {}
    for index, step in enumerate(steps):
        if step.action == "failover-stop" or (step.action == "stop" and step.node == active):
            segment = "active"
        elif step.action == "failback-stop":
            segment = "failback"
        owners[index] = segment
    return owners


Decision = Callable[[Step, str], bool]
"""Given the next step and its segment: True to run it, False to return (may raise)."""


def _drive(
    ctx: StepContext,
    stripe: Stripe,
    decide: Decision,
    failback: bool | None = None,
) -> tuple[list[StepRecord], list[Step]]:
    """Run the stripe's next plan steps while ``decide`` accepts them; returns the records and
    the last plan made."""
    region = ctx.region_of(stripe)
    records: list[StepRecord] = []
    last: tuple[str, str] | None = None
    for _ in range(MAX_STEPS):
        seen = ctx.observe(stripe)
        steps = stripe_steps(ctx, region, stripe, seen, failback)
        owners = segment_of(steps, seen)
        todo = [(i, s) for i, s in enumerate(steps) if not s.skipped]
        if not todo:
            return records, steps
        index, step = todo[0]
        if not decide(step, owners[index]):
            return records, steps
        if last == (step.node, step.action):
            raise StepFailed(
                step.node,
                f"{step.action} of {step.node} did not take effect "
                f"(the stripe still shows {describe(seen)}); check "
                f"{step.node}'s console log, then rerun",
            )
        last = (step.node, step.action)
        records.append(run_step(ctx, stripe, step, seen))
    raise StepFailed(
        stripe.name,
        f"stripe {stripe.name} did not settle after {MAX_STEPS} "
        "steps; check `bm-upgrade status`, then rerun",
    )


def run_step(ctx: StepContext, stripe: Stripe, step: Step, seen: Mapping[str, Seen]) -> StepRecord:
    """Run one plan step on live state and return its record.

    Raises:
        StepFailed: the step could not finish; the cluster was left safe (see the module).
    """
    server = next(s for s in stripe.servers if s.name == step.node)
    rec = StepRecorder(step.node, step.action)
    rec.saw(describe(seen))
    ctx.log.info("%s %s [%s]: %s", step.action, step.node, stripe.name, step.waits_for)
    action = ACTIONS.get(step.action)
    if action is None:
        raise StepFailed(
            step.node,
            f"the plan asked for {step.action!r} on {step.node}, which "
            "the server procedure does not know; this is a bug, please report it",
        )
    if step.action in DISRUPTIVE:
        ctx.before_disruptive(
            step.node,
            f"{step.action} of {step.node} (stripe {stripe.name})",
            DISRUPTIVE[step.action],
        )
    try:
        action(ctx, stripe, server, seen, rec)
    except StepFailed as exc:
        exc.add_note(f"{step.action} {step.node} had done: {'; '.join(rec.did) or 'nothing'}")
        raise
    except RemoteError as exc:
        raise StepFailed(
            server.name,
            f"{step.action} of {server.name} failed talking to "
            f"{exc.host} ({exc}); the stripe was {describe(seen)}; fix the "
            "connection and rerun: the run resumes from the real state",
        ) from exc
    record = rec.record()
    ctx.log.info("%s", record.summary())
    return record


def _skips(steps: list[Step], keep: Callable[[Step], bool]) -> list[StepRecord]:
    return [
        skipped(s.node, s.action, s.waits_for, s.reason) for s in steps if s.skipped and keep(s)
    ]


# -- the steps' actions -----------------------------------------------------------------------
Action = Callable[[StepContext, Stripe, Server, Mapping[str, Seen], StepRecorder], None]


def _serving(seen: Mapping[str, Seen], excluding: str) -> str:
    active = [n for n, s in seen.items() if n != excluding and s.node_state.state == ACTIVE]
    return (
        f"stripe still served by {active[0]} (ACTIVE)"
        if active
        else "check the stripe at once with `bm-upgrade status`"
    )


def _guard_others_up(stripe: Stripe, server: Server, seen: Mapping[str, Seen]) -> None:
    down = [s.describe() for name, s in seen.items() if name != server.name and not s.running]
    if down:
        raise StepFailed(
            server.name,
            f"{server.name} was not stopped: {', '.join(down)}, and "
            f"at most one server of stripe {stripe.name} may be down; bring it "
            "back first (rerun the upgrade), then retry",
        )


def _act_stop(
    ctx: StepContext, stripe: Stripe, server: Server, seen: Mapping[str, Seen], rec: StepRecorder
) -> None:
    _guard_others_up(stripe, server, seen)
    alone = len(stripe.servers) == 1
    if seen[server.name].node_state.state == ACTIVE and not alone:
        raise StepFailed(
            server.name,
            f"{server.name} is the ACTIVE of stripe {stripe.name}; "
            "it is stopped only through a failover (upgrade_active); nothing "
            "was stopped",
        )
    # A stripe of one server is planned only with the operator's consent to its downtime
    # (plan.refusals), so its stop may override the script's no-mirror refusal.
    stop_server(ctx, server, rec, downtime_consented=alone and ctx.options.allow_downtime)


def _act_install(
    ctx: StepContext, stripe: Stripe, server: Server, seen: Mapping[str, Seen], rec: StepRecorder
) -> None:
    me = seen[server.name]
    if me.running:
        raise StepFailed(
            server.name,
            f"{server.name} is running, and its kit is replaced "
            "only while it is stopped; rerun the upgrade",
        )
    others_active = any(s.node_state.state == ACTIVE for n, s in seen.items() if n != server.name)
    if len(stripe.servers) > 1 and not others_active:
        # It may be the only server holding the stripe's data: back on its own kit, now.
        start_server(ctx, server, rec)
        raise StepFailed(
            server.name,
            f"no other server of stripe {stripe.name} is "
            f"{ACTIVE}, so {server.name} cannot stay down for its install; it "
            f"was started again on its {me.installed or 'current'} kit; check "
            "the stripe with `bm-upgrade status`, then rerun",
        )
    conn = ctx.pool.get(server.host)
    try:
        kit_path, license_path = ctx.staged_paths(server.host)
        install_kit(
            conn,
            server,
            target=ctx.target,
            staged_kit=kit_path,
            staged_license=license_path,
            keep_previous=ctx.options.keep_previous_kit,
            delete_backups=ctx.options.delete_dirty_backups,
            rec=rec,
            kit_sha256=ctx.target_sha256,
            unpacked_bytes=ctx.unpacked_bytes(server.host),
        )
    except (StepFailed, RemoteError) as exc:
        if me.installed is None or kit_version(conn, server.install_dir) != me.installed:
            raise
        # The old kit is untouched: bring the server back on it, so the stripe keeps its
        # mirror while the operator fixes the cause.
        start_server(ctx, server, rec)
        raise StepFailed(
            server.name,
            f"{exc}; {server.name} was started again on its untouched {me.installed} kit",
        ) from exc


def _act_start(
    ctx: StepContext, stripe: Stripe, server: Server, seen: Mapping[str, Seen], rec: StepRecorder
) -> None:
    if seen[server.name].running:
        rec.saw(f"{server.name} already runs")
        return
    start_server(ctx, server, rec)
    timeout = ctx.options.timeouts.start_s
    outcome = ctx.wait_state(server, None, timeout)
    if not outcome.ok:
        raise StepFailed(
            server.name,
            f"{server.name} on {server.host} did not start "
            f"({outcome.why_not(timeout)}); {console_tail(ctx, server)}; "
            f"{_serving(seen, server.name)}; fix the cause, then rerun",
        )
    rec.done(f"{server.name} answers ({outcome.last}) after {outcome.waited_s:.1f} s")


def _confirm(
    ctx: StepContext,
    server: Server,
    seen: Mapping[str, Seen],
    rec: StepRecorder,
    *,
    state: str,
    timeout: float,
) -> None:
    outcome = ctx.wait_state(server, {state}, timeout)
    if outcome.value is None:
        raise StepFailed(
            server.name,
            f"{server.name} did not reach {state} within "
            f"{timeout:g} s ({outcome.why_not(timeout)}); "
            f"{_serving(seen, server.name)}; see {console_log(server)}, then "
            "rerun (or roll back to the previous version)",
        )
    version = kit_version(ctx.pool.get(server.host), server.install_dir)
    running = outcome.value.version
    if version != ctx.target or (running is not None and running != ctx.target):
        raise StepFailed(
            server.name,
            f"{server.name} is {state} but runs "
            f"{running or version or 'an unknown version'} (version.sh prints "
            f"{version or 'nothing'}), not {ctx.target}; check its kit root "
            f"{server.install_dir}, then rerun",
        )
    rec.done(
        f"confirmed {server.name} {state} after {outcome.waited_s:.1f} s; version.sh "
        f"prints {version}"
    )


def _act_confirm_standby(
    ctx: StepContext, stripe: Stripe, server: Server, seen: Mapping[str, Seen], rec: StepRecorder
) -> None:
    _confirm(ctx, server, seen, rec, state=STANDBY, timeout=ctx.options.timeouts.sync_s)


def _act_confirm_active(
    ctx: StepContext, stripe: Stripe, server: Server, seen: Mapping[str, Seen], rec: StepRecorder
) -> None:
    timeouts = ctx.options.timeouts
    _confirm(ctx, server, seen, rec, state=ACTIVE, timeout=timeouts.start_s + timeouts.failover_s)


def _stop_active(
    ctx: StepContext,
    stripe: Stripe,
    server: Server,
    seen: Mapping[str, Seen],
    rec: StepRecorder,
    *,
    successor: str | None,
) -> None:
    """Stop the ACTIVE once a mirror (``successor`` if named) is PASSIVE-STANDBY, seen at that
    moment."""
    _guard_others_up(stripe, server, seen)
    mirrors = [
        s
        for s in stripe.servers
        if s.name != server.name and (successor is None or s.name == successor)
    ]

    def check() -> Poll[ServerStatus]:
        me = ctx.probe(server)
        if me.state != ACTIVE:
            return Poll(
                now=f"{server.name} {me.state}",
                hopeless=f"{server.name} is no longer {ACTIVE} ({me.state})",
            )
        states = [ctx.probe(m) for m in mirrors]
        standby = next((st for st in states if st.state == STANDBY), None)
        now = ", ".join(f"{st.name} {st.state}" for st in states)
        return Poll(standby, now)

    timeout = ctx.options.timeouts.sync_s
    outcome = wait_for(
        check,
        what=f"a PASSIVE-STANDBY mirror before stopping {server.name}",
        timeout_s=timeout,
        log=ctx.log,
        poll_s=ctx.pause,
    )
    if outcome.value is None:
        raise StepFailed(
            server.name,
            f"{server.name} (ACTIVE) was not stopped: no mirror of "
            f"stripe {stripe.name} was {STANDBY} ({outcome.why_not(timeout)}); "
            f"the stripe keeps running on {server.name}; get a mirror synced "
            "(`bm-upgrade status`), then rerun",
        )
    rec.done(f"confirmed {outcome.value.name} {STANDBY} right before the stop")
    # The wait may have lasted minutes, long enough for another step to fail: ask again.
    ctx.before_disruptive(
        server.name,
        f"stop of {server.name} (the ACTIVE of stripe {stripe.name})",
        DISRUPTIVE["failover-stop"],
    )
    stop_server(ctx, server, rec)


def _act_failover_stop(
    ctx: StepContext, stripe: Stripe, server: Server, seen: Mapping[str, Seen], rec: StepRecorder
) -> None:
    _stop_active(ctx, stripe, server, seen, rec, successor=None)


def _act_failback_stop(
    ctx: StepContext, stripe: Stripe, server: Server, seen: Mapping[str, Seen], rec: StepRecorder
) -> None:
    preferred = stripe.preferred_active()
    _stop_active(ctx, stripe, server, seen, rec, successor=preferred.name if preferred else None)


def _act_wait_failover(
    ctx: StepContext, stripe: Stripe, server: Server, seen: Mapping[str, Seen], rec: StepRecorder
) -> None:
    timeouts = ctx.options.timeouts
    outcome = ctx.wait_active(stripe, timeouts.failover_s)
    if outcome.value is not None:
        rec.done(f"confirmed {outcome.value.name} {ACTIVE} after {outcome.waited_s:.1f} s")
        return
    # Nobody took over: the stripe is down. Start what was stopped again, on the kit it had.
    restarted = []
    for name, now in ctx.observe(stripe).items():
        if not now.running:
            start_server(ctx, now.server, rec)
            restarted.append(f"{name} on its {now.installed or 'current'} kit")
    back = ctx.wait_active(stripe, timeouts.start_s + timeouts.failover_s)
    result = (
        f"{back.value.name} is {ACTIVE} again"
        if back.value is not None
        else f"no server is {ACTIVE} yet: check the stripe at once"
    )
    why = outcome.why_not(timeouts.failover_s)
    stopped = next((n for n, now in seen.items() if not now.running), server.name)
    raise StepFailed(
        stopped,
        f"no mirror of stripe {stripe.name} became {ACTIVE} within "
        f"{timeouts.failover_s:g} s of the stop ({why}); started "
        f"{', '.join(restarted) or 'nothing'} again at once and "
        f"{result}; check the mirror's console log, then rerun",
    )


ACTIONS: dict[str, Action] = {
    "stop": _act_stop,
    "install": _act_install,
    "start": _act_start,
    "confirm-standby": _act_confirm_standby,
    "confirm-active": _act_confirm_active,
    "failover-stop": _act_failover_stop,
    "failback-stop": _act_failback_stop,
    "wait-failover": _act_wait_failover,
}


# -- the procedure ----------------------------------------------------------------------------
def upgrade_mirror(ctx: StepContext, stripe: Stripe, server: Server) -> list[StepRecord]:
    """Upgrade one mirror: stop, install, start, confirm PASSIVE-STANDBY and version.

    A server of the stripe that is down or still starting is brought back first (never two
    down at once). Does nothing for a mirror already on the target, or for the ACTIVE (that is
    :func:`upgrade_active`'s work).
    """

    def decide(step: Step, segment: str) -> bool:
        return segment == "mirrors" and (step.node == server.name or step.action != "stop")

    records, steps = _drive(ctx, stripe, decide)
    if records:
        return records
    done = _skips(steps, lambda s: s.node == server.name)
    if not done:
        done = [
            skipped(
                server.name,
                "upgrade",
                "",
                "it is the ACTIVE (or not this mirror's "
                "turn): the active is upgraded through a failover by upgrade_active",
            )
        ]
    return done


def upgrade_active(ctx: StepContext, stripe: Stripe) -> list[StepRecord]:
    """Upgrade the active through a controlled failover to a PASSIVE-STANDBY mirror.

    Raises:
        StepFailed: a mirror still needs its upgrade (nothing was stopped), or the failover,
            install or restart failed (the stripe is left served; see the module).
    """

    def decide(step: Step, segment: str) -> bool:
        if segment == "mirrors" and step.action == "stop":
            mirrors_node = stripe_nodes(ctx.region_of(stripe).name, stripe.name)[0]
            raise StepFailed(
                step.node,
                f"mirror {step.node} of stripe {stripe.name} is not on "
                f"{ctx.target} yet and mirrors are upgraded before the active; "
                f"run {mirrors_node} (upgrade_mirror) for it first (nothing was "
                "stopped)",
            )
        return segment in ("mirrors", "active")

    records, steps = _drive(ctx, stripe, decide, failback=False)
    return records or _skips(steps, lambda s: s.action == "upgrade")


def fail_back(ctx: StepContext, stripe: Stripe) -> list[StepRecord]:
    """Return the ACTIVE role to the stripe's preferred server (stop the current active once
    the preferred one is PASSIVE-STANDBY, wait for the takeover, restart and confirm it)."""

    def decide(step: Step, segment: str) -> bool:
        if segment != "failback" and step.action in ("stop", "failover-stop"):
            raise StepFailed(
                step.node,
                f"stripe {stripe.name} is not fully on {ctx.target} "
                f"({step.node} still needs its upgrade); upgrade it before "
                "failing back (nothing was stopped)",
            )
        return True

    records, steps = _drive(ctx, stripe, decide, failback=True)
    return records or _skips(steps, lambda s: s.action == "failback")


Segment = Callable[[Step], list[StepRecord]]
"""Runs a stripe's segment from its next step (the step names the mirror to upgrade)."""


def _segments(
    ctx: StepContext,
    region: Region,
    stripe: Stripe,
    run: Mapping[str, Segment],
) -> tuple[list[StepRecord], list[Step], str | None]:
    """Run the stripe's segments that ``run`` names, in the plan's order, until its next step
    to do belongs to another segment or none is left; returns the records, the last plan
    and the ACTIVE it was made on."""
    if stripe not in region.stripes:
        raise StepFailed(
            stripe.name,
            f"stripe {stripe.name} is not in region {region.name}; pass the stripe's own region",
        )
    records: list[StepRecord] = []
    not_run: tuple[str, str] | None = None
    for _ in range(MAX_STEPS):
        seen = ctx.observe(stripe)
        steps = stripe_steps(ctx, region, stripe, seen)
        owners = segment_of(steps, seen)
        active = next((n for n, s in seen.items() if s.node_state.state == ACTIVE), None)
        todo = [(i, s) for i, s in enumerate(steps) if not s.skipped]
        if not todo or owners[todo[0][0]] not in run:
            return records, steps, active
        index, step = todo[0]
        batch = run[owners[index]](step)
        if all(r.skipped for r in batch):
            # The stripe may have moved on by itself between this look and the segment's own
            # (a mirror finished its sync): look again. Planned twice and not run is a bug.
            if not_run == (step.node, step.action):
                raise StepFailed(
                    step.node,
                    f"the {owners[index]} step {step.action} of "
                    f"{step.node} was planned but not run; this is a bug, please "
                    "report it",
                )
            not_run = (step.node, step.action)
            continue
        not_run = None
        records += batch
    raise StepFailed(
        stripe.name,
        f"stripe {stripe.name} did not settle after {MAX_STEPS} "
        "rounds; check `bm-upgrade status`, then rerun",
    )


def upgrade_mirrors(ctx: StepContext, region: Region, stripe: Stripe) -> list[StepRecord]:
    """Upgrade every mirror of one stripe, one at a time, in the plan's order; the active is
    not touched (:func:`failover`'s work). Returns every step's record, the skipped ones when
    every mirror already runs the target.

    Raises:
        StepFailed: a step failed (see the module), or a stop was requested while the mirrors
            were upgraded (procedure/halt.py): the mirror in progress was finished, and the
            stripe's failover must not start.
    """

    def mirror(step: Step) -> list[StepRecord]:
        server = next(s for s in stripe.servers if s.name == step.node)
        return upgrade_mirror(ctx, stripe, server)

    records, steps, active = _segments(ctx, region, stripe, {"mirrors": mirror})
    requested = halt.stop_reason()
    if requested is not None:
        # What the stripe's next stop would say (before_disruptive), said at the end of this
        # step: its process may have received the signal, and the step ends naming it.
        failed = StepFailed(
            stripe.name,
            f"failover of stripe {stripe.name} not started: "
            f"{requested}; the mirror in progress was finished first; rerun "
            "(or re-execute from failure) to go on",
        )
        failed.add_note("mirrors done: " + ("; ".join(r.summary() for r in records) or "nothing"))
        raise failed
    return records or _skips(steps, lambda s: s.action == "upgrade" and s.node != active)


def failover(ctx: StepContext, region: Region, stripe: Stripe) -> list[StepRecord]:
    """Upgrade one stripe's active once its mirrors are done: stop it while a mirror is
    PASSIVE-STANDBY, wait for that mirror to take over, upgrade the old active, confirm it
    PASSIVE-STANDBY, then fail back if the policy asks. Looks at the real state first, so a
    rerun does only what is missing.

    Raises:
        StepFailed: a mirror still needs its upgrade (nothing was stopped; its
            ``upgrade_mirrors`` step comes first), or a step failed (the stripe is left
            served; see the module).
    """

    def active(step: Step) -> list[StepRecord]:
        # A mirror step still to do that is not a stop (a mirror down or still syncing is
        # brought back) is the active's to finish; a mirror's stop is refused there.
        return upgrade_active(ctx, stripe)

    run = {"mirrors": active, "active": active, "failback": lambda _: fail_back(ctx, stripe)}
    records, steps, current = _segments(ctx, region, stripe, run)
    return records or _skips(
        steps, lambda s: s.action == "failback" or (s.action == "upgrade" and s.node == current)
    )


def upgrade_stripe(ctx: StepContext, region: Region, stripe: Stripe) -> list[StepRecord]:
    """Upgrade one stripe in the plan's order: :func:`upgrade_mirrors`, then :func:`failover`
    (failback included if the policy asks); returns every step's record (all skipped when the
    stripe is already done)."""
    records = upgrade_mirrors(ctx, region, stripe) + failover(ctx, region, stripe)
    return [r for r in records if not r.skipped] or records
