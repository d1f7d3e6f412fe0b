"""A plan as a person reviews it (``bm-upgrade plan``), and its expected duration."""

from __future__ import annotations

from bm_upgrade.plan.estimate import Prediction, minutes
from bm_upgrade.plan.model import Plan


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


def render_prediction(prediction: Prediction) -> list[str]:
    """The expected duration of each phase and of the whole run, and where it comes from."""
    phases = ", ".join(
        f"{name} {minutes(seconds)}" for name, seconds in prediction.phases.items() if seconds
    )
    return [
        f"Expected duration: {minutes(prediction.total_s)} ({phases or 'nothing to do'})",
        f"  from {prediction.basis}",
    ]
