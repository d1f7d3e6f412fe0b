"""The canary's approval gate: the ``approve_canary`` op, and the decisions it waits for.

With ``policy.canary`` (a stripe, ``region/stripe``), the job upgrades that stripe first
(its ``upgrade_mirrors_*`` and ``failover_*`` ops), then runs ``approve_canary``, on which
every other stripe's ops depend (defs/jobs.py). The gate shows in the UI as a running step
whose log says how to decide; it ends when an operator approves (the other stripes go on)
or rejects (the run ends FAILURE, the canary upgraded and nothing else touched), or after
``timeouts.approval_s`` without a decision (the same safe end). A stop, a pause or a
terminate asked while it waits ends it too.

A decision is a set of run tags on the upgrade run, written by `bm-upgrade approve|reject
RUN_ID` or the UI's ``approve_<cluster>`` job (:func:`record_decision`):
:data:`APPROVAL_TAG` (approved | rejected), :data:`APPROVAL_BY_TAG`, :data:`APPROVAL_AT_TAG`
(ISO 8601, UTC), :data:`APPROVAL_NOTE_TAG`, and :data:`APPROVAL_RUN_TAG`, the run the
decision was made on: the UI copies a parent run's tags to its re-execution, and a
decision counts for the run it names.

After a timeout: approve the timed-out run itself (`bm-upgrade approve RUN_ID`; allowed once
its gate ended without a decision), then re-execute it from failure. The re-execution's gate
finds the approval on its parent (or an earlier ancestor), copies it to its own run's tags and
goes on at once. A rejection is never inherited: a re-execution of a rejected run waits for a
decision on itself.
"""

import time
from dataclasses import dataclass
from typing import Self

import dagster as dg

from bm_upgrade.defs.config import RunSettings
from bm_upgrade.defs.pausing import requested_pause
from bm_upgrade.defs.run_control import (
    StepState,
    has_step,
    is_going,
    operator,
    step_state,
    upgrade_run,
    utc_now,
)
from bm_upgrade.defs.runclaim import CLUSTER_TAG
from bm_upgrade.defs.stopping import requested_stop
from bm_upgrade.errors import UserError
from bm_upgrade.procedure import halt

GATE = "approve_canary"
"""The gate's node (and step) name."""
CANARY_TAG = "bm_upgrade/canary"
"""The gate node's tag: the canary stripe, ``region/stripe``."""

APPROVAL_TAG = "bm_upgrade/approval"
APPROVAL_BY_TAG = "bm_upgrade/approval_by"
APPROVAL_AT_TAG = "bm_upgrade/approval_at"
APPROVAL_NOTE_TAG = "bm_upgrade/approval_note"
APPROVAL_RUN_TAG = "bm_upgrade/approval_run"
APPROVED, REJECTED = "approved", "rejected"

POLL_S = 1.0
"""How often the gate reads its run's tags while it waits."""
REMINDER_S = 300.0
"""How often the waiting gate repeats how to decide."""


@dataclass(frozen=True)
class Decision:
    """An operator's decision on a canary."""

    decision: str
    by: str
    at: str
    note: str
    run_id: str
    """The run it was made on."""

    @property
    def approved(self) -> bool:
        return self.decision == APPROVED

    def tags(self) -> dict[str, str]:
        return {
            APPROVAL_TAG: self.decision,
            APPROVAL_BY_TAG: self.by,
            APPROVAL_AT_TAG: self.at,
            APPROVAL_NOTE_TAG: self.note,
            APPROVAL_RUN_TAG: self.run_id,
        }

    def said(self) -> str:
        """``approved by X at T (note)``."""
        note = f" ({self.note})" if self.note else ""
        return f"{self.decision} by {self.by} at {self.at}{note}"

    @classmethod
    def of(cls, run: dg.DagsterRun) -> Self | None:
        """The decision made on ``run`` itself (its tags naming it), or None."""
        tags = run.tags
        if tags.get(APPROVAL_RUN_TAG) != run.run_id or tags.get(APPROVAL_TAG) not in (
            APPROVED,
            REJECTED,
        ):
            return None
        return cls(
            tags[APPROVAL_TAG],
            tags.get(APPROVAL_BY_TAG, "?"),
            tags.get(APPROVAL_AT_TAG, "?"),
            tags.get(APPROVAL_NOTE_TAG, ""),
            run.run_id,
        )


def decision_for(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Decision | None:
    """The decision that ends ``run``'s wait: one made on the run itself, else an approval
    made on its nearest ancestor that has a decision (the way on after a timeout); None
    while there is none."""
    own = Decision.of(run)
    if own is not None:
        return own
    parent_id = run.parent_run_id
    while parent_id:
        parent = instance.get_run_by_id(parent_id)
        if parent is None:
            return None
        earlier = Decision.of(parent)
        if earlier is not None:
            return earlier if earlier.approved else None
        parent_id = parent.parent_run_id
    return None


def record_decision(
    instance: dg.DagsterInstance,
    run_id: str,
    decision: str,
    *,
    by: str | None,
    note: str = "",
    cluster: str | None = None,
) -> tuple[Decision, str]:
    """Record ``decision`` (approved or rejected) on the upgrade run ``run_id``, whose gate
    waits, or, for an approval, whose gate ended without a decision (a timeout: its
    re-execution goes on). Returns the decision and one line saying what happens next.

    Raises:
        UserError: no such upgrade run (of ``cluster`` when given), no gate in its job, or no
            gate waiting for a decision; one line each.
    """
    if decision not in (APPROVED, REJECTED):
        raise UserError(f"decision {decision!r}: write approved or rejected")
    run = upgrade_run(instance, run_id, cluster)
    if not has_step(instance, run, GATE):
        raise UserError(
            f"run {run_id} has no approval gate (its inventory has no policy.canary); "
            "there is nothing to approve or reject"
        )
    earlier = Decision.of(run)
    if earlier is not None:
        raise UserError(f"run {run_id}'s canary was already {earlier.said()}")
    state = step_state(instance, run_id, GATE)
    waiting = is_going(run) and state is StepState.RUNNING
    after_timeout = not is_going(run) and state is StepState.FAILED and decision == APPROVED
    if not (waiting or after_timeout):
        raise UserError(f"run {run_id} has no gate waiting for a decision ({_where(run, state)})")
    made = Decision(decision, operator(by), utc_now(), note.strip(), run_id)
    instance.add_run_tags(run_id, made.tags())
    if waiting:
        goes = "the other stripes go on" if made.approved else "the run ends, the canary done"
        return made, f"run {run_id}: canary {made.said()}; {goes}"
    return made, (
        f"run {run_id}: canary {made.said()}, recorded for its re-execution: "
        f"`bm-upgrade rerun {run_id}` (or the UI's Re-execute, From failure) goes on past the gate"
    )


def _where(run: dg.DagsterRun, state: StepState) -> str:
    """Why a run's gate takes no decision now, in a few words."""
    if is_going(run) and state is StepState.NOT_STARTED:
        return "its canary stripe is still being upgraded; decide once approve_canary waits"
    if state is StepState.SUCCEEDED:
        return "its gate has passed"
    return f"the run is {run.status.value}, its gate {state.value}"


def _how_to_decide(run_id: str, cluster: str) -> str:
    return (
        f"approve with `bm-upgrade approve {run_id} [--by NAME] [--note TEXT]`, reject with "
        f"`bm-upgrade reject {run_id} ...`, or from the UI launch approve_{cluster} with "
        f"run_id {run_id} and decision approved or rejected"
    )


def _why_stop(context: dg.OpExecutionContext) -> str | None:
    """A stop, terminate or pause asked of the run while the gate waits, in words."""
    asked = halt.stop_reason() or requested_stop(context.instance, context.run_id)
    if asked is not None:
        return asked
    pause = requested_pause(context.instance, context.run_id)
    if pause is not None:
        return f"paused at the operator's request (by {pause.by}, at {pause.at})"
    return None


@dg.op(
    # Not GATE: op and graph names share one namespace in a code location, and the
    # control job of a cluster named "canary" is approve_canary. The node is GATE (jobs.py).
    name="canary_gate",
    description="The canary's approval gate: waits, after the canary stripe's upgrade, until "
    "an operator approves (the other stripes go on) or rejects (the run ends, nothing else "
    "touched), or timeouts.approval_s passes. Decide with `bm-upgrade approve|reject RUN_ID` "
    "or the approve_<cluster> job.",
    ins={"before": dg.In(dg.Nothing)},
    out=dg.Out(dg.Nothing),
)
def approve_canary_op(context: dg.OpExecutionContext, settings: RunSettings) -> None:
    canary = context.op.tags.get(CANARY_TAG, "?")
    options = settings.options
    if settings.dry_run or options.canary is None:
        why = "a dry run" if settings.dry_run else "this run's config sets no canary"
        context.log.info(f"canary {canary}: {why}, so no approval is waited for")
        context.add_output_metadata({"decision": f"none ({why})"})
        return
    cluster = context.run.tags.get(CLUSTER_TAG, "?")
    limit = options.timeouts.approval_s
    started = time.monotonic()
    reminded = started - REMINDER_S
    while True:
        run = context.instance.get_run_by_id(context.run_id)
        made = decision_for(context.instance, run) if run is not None else None
        if made is not None:
            break
        stop = _why_stop(context)
        if stop is not None:
            raise dg.Failure(
                description=f"{stop} while approve_canary waited for a decision on canary "
                f"stripe {canary}; the canary is upgraded, no other stripe was touched: "
                "re-execute from failure to go on (its gate waits again)"
            )
        waited = time.monotonic() - started
        if waited >= limit:
            raise dg.Failure(
                description=f"no decision on canary stripe {canary} within "
                f"timeouts.approval_s ({limit:g} s); the canary is upgraded to "
                f"{options.target_version}, no other stripe was touched: approve it with "
                f"`bm-upgrade approve {context.run_id}`, then re-execute from failure "
                f"(`bm-upgrade rerun {context.run_id}`), or roll the canary back with a "
                "run to the version it had",
                metadata={"decision": "none (timed out)", "waited_s": round(waited, 1)},
            )
        if time.monotonic() - reminded >= REMINDER_S:
            reminded = time.monotonic()
            # A warning: it asks for an operator (and shows in `bm-upgrade run`'s terminal).
            context.log.warning(
                f"waiting for a decision on canary stripe {canary} (upgraded to "
                f"{options.target_version}), up to {limit - waited:.0f} s more: "
                + _how_to_decide(context.run_id, cluster)
            )
        time.sleep(POLL_S)
    if made.run_id != context.run_id:
        # An approval made on an ancestor after its gate timed out: recorded on this run
        # too, which is the run that goes on (the evidence report reads this run's tags).
        context.instance.add_run_tags(context.run_id, made.tags())
    metadata: dict[str, str | float] = {
        "decision": made.decision,
        "by": made.by,
        "at": made.at,
        "note": made.note or "none",
        "recorded_on_run": made.run_id,
        "waited_s": round(time.monotonic() - started, 1),
    }
    if not made.approved:
        raise dg.Failure(
            description=f"canary stripe {canary} was {made.said()}; it is upgraded to "
            f"{options.target_version}, no other stripe was touched and every stripe is "
            "served: roll the canary back with a run to the version it had, or re-execute "
            "from failure and approve the new run's gate to go on",
            metadata=metadata,
        )
    context.log.info(f"canary stripe {canary} {made.said()}: the other stripes go on")
    context.add_output_metadata(metadata)
