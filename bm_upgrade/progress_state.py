"""Where a run stands, step by step and stripe by stripe, built from its events one at a time.

Pure: no Dagster, no terminal. :mod:`bm_upgrade.defs.progress` turns the run's Dagster events
into :class:`Happening` values and feeds them to :func:`advance`; :mod:`bm_upgrade.progress_view`
turns a :class:`RunState` into lines for a terminal.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

Kind = Literal["run_start", "start", "success", "failure", "skipped", "retry", "log", "run_end"]


class StepState(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


FINISHED = frozenset({StepState.DONE, StepState.FAILED, StepState.SKIPPED})


@dataclass(frozen=True)
class Happening:
    """One event of the run, in the terms the progress needs.

    Attributes:
        kind: ``start``, ``success``, ``failure``, ``skipped`` (of ``step``), ``retry`` (the
            step waits to be tried again), ``log`` (a log line, ``text`` at ``level``),
            ``run_start``, ``run_end``.
        time: unix seconds, when it was written.
    """

    kind: Kind
    time: float
    step: str | None = None
    text: str = ""
    level: int = logging.INFO


@dataclass(frozen=True)
class StepProgress:
    key: str
    state: StepState = StepState.WAITING
    started: float | None = None
    ended: float | None = None

    def elapsed(self, now: float) -> float:
        """Seconds it ran (so far, while running)."""
        if self.started is None:
            return 0.0
        return max(0.0, (self.ended if self.ended is not None else now) - self.started)


@dataclass(frozen=True)
class StripeProgress:
    """One stripe: its servers, which of them are upgraded, and its two steps.

    Attributes:
        name: ``<region>/<stripe>``.
        confirmed: servers a step confirmed PASSIVE-STANDBY on the target (or found so).
        floor: servers known done from finished steps (its mirrors step: every server but
            the active; its failover step: all), the count when no confirmation was seen.
    """

    name: str
    servers: tuple[str, ...]
    mirrors_step: str
    failover_step: str
    confirmed: frozenset[str] = frozenset()
    floor: int = 0

    @property
    def done(self) -> int:
        return min(len(self.servers), max(self.floor, len(self.confirmed)))

    @property
    def total(self) -> int:
        return len(self.servers)


@dataclass(frozen=True)
class RunState:
    """A run as the terminal shows it.

    Attributes:
        steps: the steps this run executes, in the order shown.
        expected: step key -> predicted seconds (empty: no prediction).
        basis: what the prediction rests on, in words.
        at_most: the prediction is an upper bound (the timeouts: the most each wait may
            take), not an expectation.
        ended: when the run ended (None while it goes on).
        overlap: the job's predicted wall time over the sum of its steps' predicted times
            (below 1 when stripes run side by side): what a second of step time left costs.
    """

    title: str
    steps: tuple[StepProgress, ...]
    stripes: tuple[StripeProgress, ...] = ()
    expected: Mapping[str, float] = field(default_factory=dict)
    basis: str = ""
    at_most: bool = False
    started: float | None = None
    ended: float | None = None
    overlap: float = 1.0

    def step(self, key: str) -> StepProgress | None:
        return next((s for s in self.steps if s.key == key), None)

    def count(self, *states: StepState) -> int:
        return sum(1 for s in self.steps if s.state in states)

    def time_left(self, now: float) -> float | None:
        """Predicted seconds of the steps not finished (a running one's less its elapsed
        time, never below 0), times ``overlap`` (steps run side by side share the wall
        clock); None without a prediction."""
        if not self.expected:
            return None
        if self.ended is not None:
            return 0.0
        left = 0.0
        for step in self.steps:
            if step.state in FINISHED:
                continue
            expected = self.expected.get(step.key, 0.0)
            if step.state is StepState.RUNNING:
                expected -= step.elapsed(now)
            left += max(0.0, expected)
        return left * self.overlap


def ordered(keys: Iterable[str], stripes: Iterable[StripeProgress]) -> tuple[str, ...]:
    """``keys`` in execution order, each stripe's failover step moved right behind its
    mirrors step (the order the in-process executor runs them, and the one a reader expects)."""
    keys = list(keys)
    follows = {s.mirrors_step: s.failover_step for s in stripes if s.mirrors_step in keys}
    moved = set(follows.values()) & set(keys)
    result: list[str] = []
    for key in keys:
        if key in moved:
            continue
        result.append(key)
        if key in follows and follows[key] in moved:
            result.append(follows[key])
    return tuple(result)


# A step record's summary line (procedure/records.py, StepRecord.summary) for a server
# confirmed PASSIVE-STANDBY on the target, or found so: "confirm-standby <server>: ...".
_CONFIRMED = re.compile(r"confirm-standby (\S+): ")


def _set_step(state: RunState, key: str, to: StepState, *, at: float) -> RunState:
    """``state`` with step ``key`` in state ``to`` since ``at``."""

    def changed(step: StepProgress) -> StepProgress:
        if to is StepState.RUNNING:
            return replace(step, state=to, started=at, ended=None)
        if to is StepState.WAITING:
            return replace(step, state=to, ended=None)
        return replace(step, state=to, ended=at)

    return replace(state, steps=tuple(changed(s) if s.key == key else s for s in state.steps))


def _stripe_seen(state: RunState, step: str, text: str) -> RunState:
    match = _CONFIRMED.match(text)
    if match is None:
        return state
    server = match.group(1)
    stripes = tuple(
        replace(s, confirmed=s.confirmed | {server})
        if step in (s.mirrors_step, s.failover_step) and server in s.servers
        else s
        for s in state.stripes
    )
    return replace(state, stripes=stripes)


def _stripe_step_done(state: RunState, step: str) -> RunState:
    def floor(stripe: StripeProgress) -> int:
        if step == stripe.mirrors_step:
            return max(stripe.floor, stripe.total - 1)
        return stripe.total if step == stripe.failover_step else stripe.floor

    return replace(state, stripes=tuple(replace(s, floor=floor(s)) for s in state.stripes))


_STEP_KINDS = {
    "start": StepState.RUNNING,
    "retry": StepState.WAITING,
    "success": StepState.DONE,
    "failure": StepState.FAILED,
    "skipped": StepState.SKIPPED,
}


def advance(state: RunState, happening: Happening) -> tuple[RunState, list[str]]:
    """The state after ``happening``, and the warnings it brings to show (a log line at
    WARNING or above from a running step, or from the run itself)."""
    h = happening
    current = state.step(h.step) if h.step else None
    if h.kind == "run_start":
        return replace(state, started=state.started or h.time), []
    if h.kind == "run_end":
        return finish(state, h.time), []
    if h.kind == "log":
        if current is not None and current.state is StepState.WAITING:
            # Dagster speaks of a step that never started only to say it will not run it
            # (its dependencies failed).
            if h.level >= logging.ERROR:
                return _set_step(state, current.key, StepState.SKIPPED, at=h.time), []
            return state, []
        state = _stripe_seen(state, h.step, h.text) if h.step else state
        shown = h.level >= logging.WARNING and (
            current is None or current.state is StepState.RUNNING
        )
        return state, [f"{h.step}: {h.text}" if h.step else h.text] if shown else []
    if current is None:
        return state, []
    to = _STEP_KINDS[h.kind]
    if to is StepState.DONE:
        state = _stripe_step_done(state, current.key)
    return _set_step(state, current.key, to, at=h.time), []


def finish(state: RunState, when: float) -> RunState:
    """The run ended: a step still waiting will not run, one still running ended with it."""
    steps = tuple(
        replace(s, state=StepState.SKIPPED, ended=when)
        if s.state is StepState.WAITING
        else replace(s, state=StepState.FAILED, ended=when)
        if s.state is StepState.RUNNING
        else s
        for s in state.steps
    )
    return replace(state, steps=steps, ended=state.ended or when)
