"""The server steps of the upgrade, per stripe: :func:`upgrade_mirrors` (every mirror), then
:func:`failover` (the active through a controlled failover, then the failback when the
options ask); the job runs each as its own step, over a :class:`StepContext`.

Both are one loop: look at the stripe, ask :func:`bm_upgrade.plan.make_plan` for its steps on
that live state, do the first step still to do if it belongs to this op (the planner tags
every server step with its segment), look again. The procedure cannot disagree with the plan
because it *is* the plan, re-made before every step; a step the real state already satisfies
is never run, so a rerun after success does nothing and a rerun after a failure resumes where
it stopped.

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
The actions are :mod:`~bm_upgrade.procedure.server_actions`' and
:mod:`~bm_upgrade.procedure.takeover`'s. A failure raises
:class:`~bm_upgrade.errors.StepFailed`: one sentence, the server, what next.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import partial

from bm_upgrade.errors import RemoteError, StepFailed
from bm_upgrade.inventory import Region, Stripe
from bm_upgrade.inventory_checks import stripe_nodes
from bm_upgrade.plan import ACTIVE, SEGMENTS, STANDBY, Action, Segment, Step, make_plan
from bm_upgrade.procedure import halt, server_actions
from bm_upgrade.procedure.backup import ensure_backup
from bm_upgrade.procedure.context import ServerOps, StepContext
from bm_upgrade.procedure.records import StepRecord, StepRecorder, skipped
from bm_upgrade.procedure.seen import Seen, describe
from bm_upgrade.procedure.server_actions import ServerStep
from bm_upgrade.procedure.takeover import stop_active, wait_takeover
from bm_upgrade.window import DISRUPTIVE

__all__ = [
    "ACTIONS",
    "FAILOVER",
    "MAX_STEPS",
    "MIRRORS",
    "ServerOps",
    "StepContext",
    "failover",
    "run_step",
    "stripe_steps",
    "upgrade_mirrors",
]

MAX_STEPS = 40
"""Steps one op may run; a stripe needs at most ~15. Guards against a step that never
takes effect."""

MIRRORS: frozenset[Segment] = frozenset({"mirrors"})
"""The segments ``upgrade_mirrors`` does."""
FAILOVER: frozenset[Segment] = frozenset({"failover", "failback"})
"""The segments ``failover`` does (the failback steps are planned only when asked)."""

ACTIONS: Mapping[Action, ServerStep] = {
    "stop": server_actions.stop,
    "install": server_actions.install,
    "start": server_actions.start,
    "confirm-standby": partial(server_actions.confirm, state=STANDBY),
    "confirm-active": partial(server_actions.confirm, state=ACTIVE),
    "failover-stop": partial(stop_active, to_preferred=False),
    "failback-stop": partial(stop_active, to_preferred=True),
    "wait-failover": wait_takeover,
}
"""What each action the stripe planner emits to be done does."""


def stripe_steps(
    ctx: StepContext, region: Region, stripe: Stripe, seen: Mapping[str, Seen]
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
    plan = make_plan(alone, {name: s.node_state for name, s in seen.items()}, ctx.options)
    return [s for s in plan.steps if s.phase == "servers"]


def _run_segments(
    ctx: StepContext, region: Region, stripe: Stripe, segments: Collection[Segment]
) -> tuple[list[StepRecord], list[Step]]:
    """Do the stripe's steps of ``segments``, and those of no segment (a server to bring
    back), one at a time on a fresh look, until the next step belongs to a later segment
    or none is left; returns the records and the last plan made.

    Raises:
        StepFailed: the next step belongs to an earlier segment (nothing was done for it),
            a step did not take effect, or a step failed.
    """
    if stripe not in region.stripes:
        raise StepFailed(
            stripe.name,
            f"stripe {stripe.name} is not in region {region.name}; pass the stripe's own region",
        )
    first = min(SEGMENTS.index(s) for s in segments)
    records: list[StepRecord] = []
    last: tuple[str, str] | None = None
    for _ in range(MAX_STEPS):
        seen = ctx.observe_servers(stripe.servers)
        for name, now in seen.items():
            if now.node_state.state == ACTIVE:
                ctx.saw_active(stripe, name)
        steps = stripe_steps(ctx, region, stripe, seen)
        step = next((s for s in steps if not s.skipped), None)
        if step is None:
            return records, steps
        if step.segment is not None and step.segment not in segments:
            if SEGMENTS.index(step.segment) > first:
                return records, steps
            mirrors_node = stripe_nodes(region.name, stripe.name)[0]
            raise StepFailed(
                step.node,
                f"mirror {step.node} of stripe {stripe.name} is not on {ctx.target} yet and "
                f"mirrors are upgraded before the active; run {mirrors_node} "
                "(upgrade_mirrors) for it first (nothing was stopped)",
            )
        if not records and last is None:  # the first step this op does: before any stop
            records += ensure_backup(ctx, region, stripe, seen)
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
    outage = DISRUPTIVE.get(step.action)
    if outage is not None:
        ctx.before_disruptive(
            step.node, f"{step.action} of {step.node} (stripe {stripe.name})", outage
        )
    try:
        action(ctx, stripe, server, seen, rec)
    except StepFailed as exc:
        exc.add_note(f"{step.action} {step.node} had done: {'; '.join(rec.did) or 'nothing'}")
        raise
    except RemoteError as exc:
        raise StepFailed.talking_to(
            server.name,
            f"{step.action} of {server.name}",
            exc,
            f"the stripe was {describe(seen)}; fix the connection and rerun: the run resumes "
            "from the real state",
        ) from exc
    record = rec.record()
    ctx.log.info("%s", record.summary())
    return record


def _skips(steps: list[Step], segments: Collection[Segment]) -> list[StepRecord]:
    """The skipped steps of ``segments``, as records (an op with nothing to do says why)."""
    return [
        skipped(s.node, s.action, s.waits_for, s.reason)
        for s in steps
        if s.skipped and s.segment in segments
    ]


def upgrade_mirrors(ctx: StepContext, region: Region, stripe: Stripe) -> list[StepRecord]:
    """Upgrade every mirror of one stripe, one at a time, in the plan's order: stop, install,
    start, confirm PASSIVE-STANDBY and version; the active is not touched (:func:`failover`'s
    work). Returns every step's record, the skipped ones when every mirror already runs the
    target.

    Raises:
        StepFailed: a step failed (see the module), or a stop was requested while the mirrors
            were upgraded (procedure/halt.py): the mirror in progress was finished, and the
            stripe's failover must not start.
    """
    records, steps = _run_segments(ctx, region, stripe, MIRRORS)
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
    return records or _skips(steps, MIRRORS)


def failover(ctx: StepContext, region: Region, stripe: Stripe) -> list[StepRecord]:
    """Upgrade one stripe's active once its mirrors are done: stop it while a mirror is
    PASSIVE-STANDBY, wait for that mirror to take over, upgrade the old active, confirm it
    PASSIVE-STANDBY, then fail back if the options ask. Looks at the real state first, so a
    rerun does only what is missing.

    Raises:
        StepFailed: a mirror still needs its upgrade (nothing was stopped; its
            ``upgrade_mirrors`` step comes first), or a step failed (the stripe is left
            served; see the module).
    """
    records, steps = _run_segments(ctx, region, stripe, FAILOVER)
    return records or _skips(steps, FAILOVER)
