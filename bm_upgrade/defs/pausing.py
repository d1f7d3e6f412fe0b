"""Pause at the next safe point: `bm-upgrade pause RUN_ID`, or the UI's ``pause_<cluster>`` job.

A pause is asked of one run through its run tag :data:`PAUSE_TAG` (who asked, when, and the
run it is for). It differs from a stop (:mod:`bm_upgrade.defs.stopping`, Ctrl-C or SIGTERM on
`bm-upgrade run`, Dagster's terminate), which ends the work in progress at its next
disruptive action: a pause lets every stripe already started finish, its failover op to
the end, and keeps the run from starting anything new. Each op that would start new work
(a stripe's ``upgrade_mirrors``, a client batch, the WAN cycle; and the approval gate
while it waits) checks the tag first and, when asked, fails with one sentence saying the
run was paused at the operator's request, by whom and when, and that re-execution from
failure resumes it. A stripe's ``failover`` op never checks: its stripe was started.

That failure is marked (:data:`PAUSED_KEY` in its metadata) so that the rule "after a failed
step, no new disruptive work" (:func:`bm_upgrade.defs.stopping.earlier_failure`) does not
count it: a stripe still in progress finishes. The tag names its run, so a re-execution (the
UI copies the parent's tags to it) does not inherit the pause.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import dagster as dg

from bm_upgrade.defs.run_control import is_going, operator, upgrade_run, utc_now
from bm_upgrade.errors import UserError

PAUSE_TAG = "bm_upgrade/pause_requested"
PAUSED_KEY = "paused_by_operator"
"""Metadata key of a step failure that is a pause (not a failure of the work)."""


@dataclass(frozen=True)
class Pause:
    """A pause asked of one run."""

    run_id: str
    by: str
    at: str

    def tag(self) -> dict[str, str]:
        return {PAUSE_TAG: json.dumps({"run_id": self.run_id, "by": self.by, "at": self.at})}

    def sentence(self, before: str) -> str:
        """Why the step ends: ``before`` says what did not start."""
        return (
            f"paused at the operator's request (by {self.by}, at {self.at}) before {before} "
            "started; what was started before the pause finished and every stripe is served: "
            f"re-execute from failure (`bm-upgrade rerun {self.run_id}` or the UI's Re-execute) "
            "to resume"
        )


def requested_pause(instance: dg.DagsterInstance, run_id: str) -> Pause | None:
    """The pause asked of run ``run_id`` (its :data:`PAUSE_TAG` naming it), or None."""
    run = instance.get_run_by_id(run_id)
    value = run.tags.get(PAUSE_TAG) if run is not None else None
    try:
        asked = json.loads(value) if value else None
    except ValueError:
        return None
    if not isinstance(asked, dict) or asked.get("run_id") != run_id:
        return None  # none, or a parent's copied to this re-execution
    return Pause(run_id, str(asked.get("by") or "an operator"), str(asked.get("at") or "?"))


def request_pause(
    instance: dg.DagsterInstance, run_id: str, by: str | None, cluster: str | None = None
) -> Pause:
    """Ask the upgrade run ``run_id`` to pause at its next safe point.

    Asking again keeps the first request (who and when).

    Raises:
        UserError: no such upgrade run (of ``cluster`` when given), or it is not queued or in
            progress; one line.
    """
    run = upgrade_run(instance, run_id, cluster)
    if not is_going(run):
        raise UserError(
            f"run {run_id} has ended ({run.status.value}); there is nothing to pause "
            "(a paused run ends FAILURE; `bm-upgrade rerun` resumes it)"
        )
    earlier = requested_pause(instance, run_id)
    if earlier is not None:
        return earlier
    pause = Pause(run_id, operator(by), utc_now())
    instance.add_run_tags(run_id, pause.tag())
    return pause


def stop_if_paused(context: dg.OpExecutionContext, before: str) -> None:
    """Fail the step, starting nothing, when its run was asked to pause.

    Args:
        before: what would start, for the sentence (``stripe east/stripe2``).
    """
    pause = requested_pause(context.instance, context.run_id)
    if pause is not None:
        context.log.info(f"pause requested by {pause.by} at {pause.at}: {before} not started")
        raise dg.Failure(
            description=pause.sentence(before),
            metadata={PAUSED_KEY: True, "by": pause.by, "at": pause.at},
        )


def is_pause(event: dg.DagsterEvent) -> bool:
    """Whether a STEP_FAILURE event is a pause (:func:`stop_if_paused`)."""
    data = event.step_failure_data.user_failure_data
    return data is not None and PAUSED_KEY in (data.metadata or {})
