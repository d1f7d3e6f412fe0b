"""A run's progress as lines of text: plain lines for a pipe or a log file (one per step state
change), and the block a terminal redraws in place (a line per step, a bar per stripe).

Pure: a :class:`~bm_upgrade.progress_state.RunState` and the time in, lines out; colour only
when asked. :mod:`bm_upgrade.progress_terminal` writes them.
"""

from __future__ import annotations

from bm_upgrade.progress_state import FINISHED, RunState, StepProgress, StepState, StripeProgress

_COLOURS = {
    StepState.WAITING: "\x1b[2m",  # dim
    StepState.RUNNING: "\x1b[36m",  # cyan
    StepState.DONE: "\x1b[32m",  # green
    StepState.FAILED: "\x1b[31;1m",  # bold red
    StepState.SKIPPED: "\x1b[33m",  # yellow
}
_RESET = "\x1b[0m"
BAR_WIDTH = 20


def duration(seconds: float) -> str:
    """``4.2 s``, ``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[##########..........]``: ``done`` of ``total`` as a bar ``width`` characters inside."""
    filled = 0 if total <= 0 else min(width, round(width * done / total))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _stripe_of(state: RunState, step: str) -> StripeProgress | None:
    return next((s for s in state.stripes if step in (s.mirrors_step, s.failover_step)), None)


def _left(state: RunState, now: float) -> str:
    """``about 42 s left`` (nothing without a prediction, or under a second left)."""
    left = state.time_left(now)
    if left is None or left < 1:
        return ""
    return f"{'at most' if state.at_most else 'about'} {duration(left)} left"


def opening(state: RunState) -> list[str]:
    """The first line: what the run executes and, once, what its time left rests on."""
    line = f"{state.title}: {len(state.steps)} step(s) to run"
    if state.expected:
        total = sum(state.expected.get(s.key, 0.0) for s in state.steps)
        bound = "at most " if state.at_most else ""
        line += f", predicted {bound}{duration(total)} of step time ({state.basis})"
    return [line]


def step_line(state: RunState, step: StepProgress, now: float) -> str:
    """One plain line for a step that just changed state."""
    if step.state is StepState.RUNNING:
        return f"{step.key}: running"
    if step.state is StepState.WAITING:
        return f"{step.key}: waiting to be tried again"
    if step.state is StepState.SKIPPED:
        return f"{step.key}: skipped"
    verb = "done in" if step.state is StepState.DONE else "failed after"
    parts = [f"{step.key}: {verb} {duration(step.elapsed(now))}"]
    stripe = _stripe_of(state, step.key)
    if stripe is not None:
        parts.append(f"stripe {stripe.name} {stripe.done}/{stripe.total} servers")
    if step.state is StepState.DONE and state.ended is None and _left(state, now):
        parts.append(_left(state, now))
    return "; ".join(parts)


def changes(before: RunState, after: RunState, now: float) -> list[str]:
    """Plain lines, one per step whose state differs between ``before`` and ``after``; a run
    that ended before any step started says so in one line instead of one per step."""
    ended_now = after.ended is not None and before.ended is None
    if ended_now and all(s.started is None for s in after.steps):
        return ["no step of the run started"]
    old = {s.key: s.state for s in before.steps}
    return [step_line(after, s, now) for s in after.steps if old.get(s.key) is not s.state]


def closing(state: RunState, now: float) -> str:
    """The last line: how many steps ended which way, and the run's time."""
    counts = [
        f"{state.count(kind)} {kind.value}"
        for kind in (StepState.DONE, StepState.FAILED, StepState.SKIPPED)
        if state.count(kind)
    ]
    took = ""
    if state.started is not None:
        took = f" in {duration((state.ended or now) - state.started)}"
    return f"{state.title} ended{took}: {', '.join(counts) or 'no step'}"


def _paint(text: str, kind: StepState, colour: bool) -> str:
    return f"{_COLOURS[kind]}{text}{_RESET}" if colour else text


def _row(kind: StepState, label: str, detail: str, width: int, colour: bool) -> str:
    """``  <state>  <label>  <detail>`` cut to ``width`` visible characters, the state's word
    coloured."""
    word = f"{kind.value:<8}"
    rest = f" {label}  {detail}".rstrip()
    visible = ("  " + word + rest)[:width]
    if len(visible) <= 2 + len(word):
        return visible
    return "  " + _paint(word, kind, colour) + visible[2 + len(word) :]


def _step_row(step: StepProgress, pad: int, now: float, width: int, colour: bool) -> str:
    detail = "" if step.state is StepState.WAITING else duration(step.elapsed(now))
    if step.state is StepState.SKIPPED:
        detail = ""
    return _row(step.state, step.key.ljust(pad), detail, width, colour)


def _stripe_row(stripe: StripeProgress, pad: int, width: int) -> str:
    line = f"  {stripe.name.ljust(pad)}  {bar(stripe.done, stripe.total)}"
    return f"{line} {stripe.done}/{stripe.total} servers"[:width]


def header(state: RunState, now: float) -> str:
    done = state.count(*FINISHED)
    parts = [f"{state.title}: {done}/{len(state.steps)} steps finished"]
    if state.started is not None:
        parts.append(f"{duration((state.ended or now) - state.started)} elapsed")
    if _left(state, now) and state.ended is None:
        parts.append(_left(state, now))
    return ", ".join(parts)


def live_block(
    state: RunState, now: float, *, width: int = 100, height: int = 40, colour: bool = False
) -> list[str]:
    """The lines a terminal redraws: a header, a line per step, a bar per stripe, at most
    ``height`` lines of at most ``width`` characters. When they do not fit, the steps done
    become one line, then the waiting ones after the first few become one line."""
    width = max(20, width)
    pad = max((len(s.key) for s in state.steps), default=0)
    stripe_pad = max((len(s.name) for s in state.stripes), default=0)
    stripes = [_stripe_row(s, stripe_pad, width) for s in state.stripes]
    room = max(1, height - 1 - len(stripes))
    rows = [(s.state, _step_row(s, pad, now, width, colour)) for s in state.steps]
    if len(rows) > room:
        done = [s for s in state.steps if s.state is StepState.DONE]
        rows = [(kind, row) for kind, row in rows if kind is not StepState.DONE]
        if done:
            summary = f"{len(done)} step(s), the last {done[-1].key}"
            rows.insert(0, (StepState.DONE, _row(StepState.DONE, summary, "", width, colour)))
    if len(rows) > room:
        others = sum(1 for kind, _ in rows if kind is not StepState.WAITING)
        allowed = max(0, room - 1 - others)
        kept, hidden = [], 0
        for kind, row in rows:
            if kind is StepState.WAITING:
                if allowed == 0:
                    hidden += 1
                    continue
                allowed -= 1
            kept.append((kind, row))
        more = f"and {hidden} more step(s)"
        rows = [*kept, (StepState.WAITING, _row(StepState.WAITING, more, "", width, colour))]
    lines = [header(state, now)[:width], *(row for _, row in rows), *stripes]
    return lines[: max(1, height)]
