"""How long a run is expected to take: per step of the job, per phase and in all, from the
step times of past runs (or, with none, from the inventory's timeouts).

Pure arithmetic, no I/O and no Dagster: :mod:`bm_upgrade.defs.prediction` reads past runs
from the Dagster instance into :class:`PastRun` values and calls :func:`estimate`.

The model, kept simple enough to explain in a sentence per part:

- A step of the job does some *units* of work: a stripe's ``upgrade_mirrors_*`` and
  ``failover_*`` steps one per server they restart, a ``restart_clients_*`` step one per
  batch of clients (a batch's clients go side by side), ``wan_cycle`` one, and the steps
  that only prepare, check or report one each. A step with nothing to change does 0 units.
- Past runs give, per kind of step, the *median* seconds per unit (an outlier run, slow for
  a reason of its own, does not move the median), and the median seconds of a step of that
  kind that had nothing to change. A kind no past run shows comes from the timeouts.
- Between steps Dagster itself takes time (starting the run, each step's process, its
  events); past runs give its median per step, counted once per step on the critical path.
- The critical path: preparation (preflight, download, stage_kit) in order; the canary
  stripe alone, if the run has one (the wait for its approval is a person's, not predicted);
  the stripes, each its mirrors then its failover, up to ``parallel_stripes`` side by side,
  each stripe taking the first free slot in graph order (a failover starts before another
  stripe's mirrors, so a slot holds one stripe until it is done), then verify_servers; the
  client batches in order; the WAN cycle; the report.
"""

from __future__ import annotations

import datetime
import functools
import heapq
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from bm_upgrade.inventory import Inventory, Timeouts, Window
from bm_upgrade.inventory_checks import FAILOVER_NODE_PREFIX, MIRRORS_NODE_PREFIX, stripe_nodes
from bm_upgrade.plan.model import Plan, PlanOptions, Step
from bm_upgrade.window import (
    ACTIVE,
    CLIENT,
    ORCHESTRATORS,
    SERVER,
    next_opening,
    timeout_estimates,
)

Kind = Literal[
    "preflight",
    "download",
    "stage_kit",
    "mirrors",
    "failover",
    "verify_servers",
    "clients",
    "wan_cycle",
    "report",
]
CLIENTS_NODE_PREFIX = "restart_clients_"
"""A client batch's node: ``restart_clients_<n>`` (defs/jobs.py)."""
PHASE_NAMES = ("preparation", "servers", "clients", "wan", "report")
"""The phases of a prediction, in the order they run."""
_PHASE_OF: Mapping[Kind, str] = {
    "preflight": "preparation",
    "download": "preparation",
    "stage_kit": "preparation",
    "mirrors": "servers",
    "failover": "servers",
    "verify_servers": "servers",
    "clients": "clients",
    "wan_cycle": "wan",
    "report": "report",
}
SERVER_KINDS: frozenset[Kind] = frozenset({"mirrors", "failover"})
"""Kinds whose units are the servers they restart (a ``start`` record each)."""
COUNTED_KINDS: frozenset[Kind] = SERVER_KINDS | {"clients", "wan_cycle"}
"""Kinds whose units depend on the work there is (the others always do one)."""
TIMEOUTS_BASIS = "the inventory's timeouts"
"""The basis of a prediction from no past run: how long each wait may take at most."""
NO_HISTORY = f"{TIMEOUTS_BASIS} (no past run)"
"""The basis of a prediction when the instance holds no past run."""


def step_kind(step_key: str) -> Kind | None:
    """The kind of a step of the upgrade job, by its key (None: not one of its steps)."""
    if step_key.startswith(MIRRORS_NODE_PREFIX):
        return "mirrors"
    if step_key.startswith(FAILOVER_NODE_PREFIX):
        return "failover"
    if step_key.startswith(CLIENTS_NODE_PREFIX):
        return "clients"
    if step_key in _PHASE_OF:
        return step_key  # type: ignore[return-value]  # one of the Literal's values, checked
    return None


def phase_of(step_key: str) -> str | None:
    """The phase (:data:`PHASE_NAMES`) a step of the upgrade job belongs to."""
    kind = step_kind(step_key)
    return _PHASE_OF[kind] if kind is not None else None


@dataclass(frozen=True)
class Prediction:
    """How long a run of the job is expected to take.

    Attributes:
        steps: step key of the job (``upgrade_mirrors_east_stripe1``) -> expected seconds of
            the step itself.
        phases: ``preparation`` (preflight, download, stage_kit), ``servers``, ``clients``,
            ``wan``, ``report`` -> seconds on the critical path, Dagster's time between steps
            included.
        total_s: expected wall time of the whole run (the phases' sum: ``parallel_stripes``
            taken into account).
        basis: where the figures come from, in words.
    """

    steps: dict[str, float]
    phases: dict[str, float]
    total_s: float
    basis: str

    @property
    def from_history(self) -> bool:
        """The figures come from past runs (not the timeouts alone)."""
        return not self.basis.startswith(TIMEOUTS_BASIS)

    def as_dict(self) -> dict[str, object]:
        return {
            "total_s": round(self.total_s, 1),
            "phases": {k: round(v, 1) for k, v in self.phases.items()},
            "steps": {k: round(v, 1) for k, v in self.steps.items()},
            "basis": self.basis,
        }


@dataclass(frozen=True)
class PastStep:
    """One step of a past run: its key, how long it took (STEP_START to STEP_SUCCESS), and
    the units of work it did (see the module)."""

    key: str
    seconds: float
    units: int


@dataclass(frozen=True)
class PastRun:
    """One past successful run.

    Attributes:
        steps: the steps it ran.
        idle_s: the run's time in no step (its wall time minus the time some step ran), when
            it ran every step of the job (None: a re-execution, a part of a run).
    """

    steps: tuple[PastStep, ...]
    idle_s: float | None = None


@dataclass(frozen=True)
class Work:
    """What a run has to do: the units of work of each step of the job, in graph order.

    Attributes:
        units: step key -> units (see the module).
        stripes: each stripe's (mirrors key, failover key), in graph order.
    """

    units: dict[str, int]
    stripes: tuple[tuple[str, str], ...]
    parallel: int = 1
    timeouts: Timeouts = field(default_factory=Timeouts)
    canary: tuple[str, str] | None = None
    """The canary stripe's keys (``policy.canary``): it runs alone and first; the others
    wait for the approval gate after it (whose wait for a person is not predicted)."""


def shape_options(options: PlanOptions) -> PlanOptions:
    """Options to plan the work with: a stripe the plan would refuse (no mirror, no consent
    given yet) still takes its time."""
    return replace(options, allow_downtime=True, accept_data_loss=True)


def _starts(steps: Iterable[Step]) -> int:
    return sum(1 for s in steps if s.action == "start" and not s.skipped)


def work_of(plan: Plan, inventory: Inventory) -> Work:
    """The work of each step of the ``upgrade_<cluster>`` job, from a plan of the cluster
    (made on an observed state, or on none: every node to upgrade).

    A stripe's steps of no segment (a server found down, brought back first) count for its
    mirrors step, which looks first. Client batches are the graph's (the inventory's
    ``client_batch_size``); a run's smaller size makes the last batch step take the rest,
    one batch after another.
    """
    units: dict[str, int] = {"preflight": 1, "download": 1, "stage_kit": 1}
    stripes = []
    for region, stripe in inventory.stripes():
        mirrors, failover = stripe_nodes(region.name, stripe.name)
        mine = [
            s
            for s in plan.steps
            if s.phase == "servers" and s.region == region.name and s.stripe == stripe.name
        ]
        units[mirrors] = _starts(s for s in mine if s.segment in (None, "mirrors"))
        units[failover] = _starts(s for s in mine if s.segment in ("failover", "failback"))
        stripes.append((mirrors, failover))
    canary = None
    if plan.options.canary is not None:
        canary_region, _, canary_stripe = plan.options.canary.partition("/")
        canary = stripe_nodes(canary_region, canary_stripe)
        if canary in stripes:
            stripes.remove(canary)
        else:
            canary = None
    units["verify_servers"] = 1
    clients = [client.name for _, client in inventory.clients()]
    to_do = {s.node for s in plan.steps if s.phase == "clients" and not s.skipped}
    graph_size = inventory.policy.client_batch_size
    run_size = plan.options.client_batch_size
    nodes = -(-len(clients) // graph_size)
    for index in range(nodes):
        units[f"{CLIENTS_NODE_PREFIX}{index + 1}"] = 0
    for start in range(0, len(clients), run_size):
        if to_do & set(clients[start : start + run_size]):
            index = min(start // run_size, nodes - 1)
            units[f"{CLIENTS_NODE_PREFIX}{index + 1}"] += 1
    if inventory.has_wan():
        wan = any(s.phase == "orchestrators" and s.kind == "change" for s in plan.todo())
        units["wan_cycle"] = int(wan)
    units["report"] = 1
    return Work(units, tuple(stripes), plan.options.parallel_stripes, plan.options.timeouts, canary)


@dataclass(frozen=True)
class _Rates:
    """Per kind: seconds per unit, seconds of a step with nothing to change, and Dagster's
    seconds between steps; with how many runs gave them."""

    per_unit: dict[Kind, float]
    idle_step: dict[Kind, float]
    gap_s: float
    runs: int
    learned: frozenset[Kind]
    """The kinds past runs gave a rate of (the others: the timeouts)."""


def _timeout_rates(timeouts: Timeouts) -> dict[Kind, float]:
    """Seconds per unit from the timeouts: a mirror's whole outage (stop, start, sync), an
    active's with the failover, a client's stop and start, the orchestrators' stop and start
    (:func:`bm_upgrade.window.timeout_estimates`). The steps that only prepare, check or
    report have no timeout of their own: 0."""
    outage = timeout_estimates(timeouts)
    return {
        "mirrors": outage[SERVER],
        "failover": outage[ACTIVE],
        "clients": outage[CLIENT],
        "wan_cycle": outage[ORCHESTRATORS],
    }


def _rates(history: Sequence[PastRun], timeouts: Timeouts) -> _Rates:
    per_unit: dict[Kind, list[float]] = {}
    idle: dict[Kind, list[float]] = {}
    gaps: list[float] = []
    for run in history:
        for step in run.steps:
            kind = step_kind(step.key)
            if kind is None:
                continue
            if step.units > 0:
                per_unit.setdefault(kind, []).append(step.seconds / step.units)
            else:
                idle.setdefault(kind, []).append(step.seconds)
        if run.idle_s is not None and run.steps:
            gaps.append(run.idle_s / len(run.steps))
    rates: dict[Kind, float] = {k: statistics.median(v) for k, v in per_unit.items()}
    return _Rates(
        per_unit={**_timeout_rates(timeouts), **rates},
        idle_step={k: statistics.median(v) for k, v in idle.items()},
        gap_s=statistics.median(gaps) if gaps else 0.0,
        runs=len(history),
        learned=frozenset(rates),
    )


def _basis(rates: _Rates, kinds: Iterable[Kind]) -> str:
    """Where the figures of a prediction doing work of ``kinds`` come from."""
    if not rates.runs:
        return NO_HISTORY
    runs = (
        "the last successful run" if rates.runs == 1 else f"the last {rates.runs} successful runs"
    )
    missing = [k for k in dict.fromkeys(kinds) if k not in rates.learned]
    if missing:
        runs += f" ({', '.join(missing)}: the timeouts, no past run did one)"
    return runs


def stripes_span(stripe_seconds: Sequence[float], parallel: int) -> tuple[float, int]:
    """How long the stripes take, each in the first free of ``parallel`` slots in order,
    and how many stripes the longest slot ran (its steps are on the critical path)."""
    if not stripe_seconds:
        return 0.0, 0
    slots: list[tuple[float, int]] = [(0.0, 0)] * max(1, parallel)
    heapq.heapify(slots)
    for seconds in stripe_seconds:
        end, count = heapq.heappop(slots)
        heapq.heappush(slots, (end + seconds, count + 1))
    return max(slots)


def estimate(work: Work, history: Sequence[PastRun]) -> Prediction:
    """The prediction of a run doing ``work``, from ``history`` (the past successful runs,
    newest first; empty: from the timeouts)."""
    rates = _rates(history, work.timeouts)
    steps: dict[str, float] = {}
    for key, units in work.units.items():
        kind = step_kind(key)
        assert kind is not None, key  # work_of names the job's steps only
        if units:
            steps[key] = rates.per_unit.get(kind, 0.0) * units
        else:
            steps[key] = rates.idle_step.get(kind, 0.0)
    gap = rates.gap_s
    phases = dict.fromkeys(PHASE_NAMES, 0.0)
    for key, seconds in steps.items():
        kind = step_kind(key)
        assert kind is not None
        if kind not in SERVER_KINDS:
            phases[_PHASE_OF[kind]] += seconds + gap
    span, on_path = stripes_span([steps[m] + steps[f] for m, f in work.stripes], work.parallel)
    phases["servers"] += span + 2 * on_path * gap
    if work.canary is not None:
        mirrors, failover = work.canary
        phases["servers"] += steps[mirrors] + steps[failover] + 2 * gap
    kinds = (step_kind(k) for k, units in work.units.items() if units)
    basis = _basis(rates, (k for k in kinds if k in _timeout_rates(work.timeouts)))
    if work.canary is not None:
        basis += "; the wait for the canary's approval not counted"
    return Prediction(steps, phases, sum(phases.values()), basis)


def from_timeouts(work: Work, why: str) -> Prediction:
    """The prediction from the timeouts alone, the basis saying ``why`` no past run counts."""
    return replace(estimate(work, []), basis=f"{TIMEOUTS_BASIS} ({why})")


def minutes(seconds: float) -> str:
    """``seconds`` as a person reads a duration: ``45 s``, ``12 min``, ``2 h 05 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    whole = round(seconds / 60)
    if whole < 120:
        return f"{whole} min"
    return f"{whole // 60} h {whole % 60:02d} min"


def window_fit(prediction: Prediction, window: Window, now: datetime.datetime) -> str:
    """Whether a run started when the next maintenance window opens would finish inside it,
    in one sentence."""
    if not window.enabled:
        return "the inventory has no maintenance window (window.enabled is false)"
    opening = _next_opening(window, now)
    if opening is None:
        return "the maintenance window never opens (check window.cron)"
    length = window.length_minutes * 60
    verdict = "fits" if prediction.total_s <= length else "does NOT fit"
    return (
        f"{verdict} the next maintenance window ({opening.isoformat()}, "
        f"{window.length_minutes} min)"
    )


@functools.lru_cache(maxsize=64)
def _next_opening(window: Window, now: datetime.datetime) -> datetime.datetime | None:
    """:func:`next_opening`, once per window and time: the code location's load asks it of
    every cluster at one time, and clusters often share a window."""
    return next_opening(window, now)


def late_start(
    prediction: Prediction, end: datetime.datetime, now: datetime.datetime
) -> str | None:
    """Why a run that must finish by ``end`` should not start at ``now``: the prediction from
    past runs is longer than the time left, in words (None: it fits, or the prediction comes
    from the timeouts alone, which say how long each wait may take at most, not how long it
    takes; the check before each disruptive step still applies)."""
    left = (end - now).total_seconds()
    if not prediction.from_history or prediction.total_s <= left:
        return None
    return (
        f"the run is expected to take {minutes(prediction.total_s)} ({prediction.basis}) "
        f"and only {minutes(max(0.0, left))} are left before the maintenance window closes "
        f"at {end.isoformat()}"
    )
