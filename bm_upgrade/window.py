"""Maintenance windows: when they open (5-field cron in the window's time zone), when the one
in progress closes, and whether a disruptive step still fits before it does.

Plain Python, no Dagster (the schedule in ``defs/schedules.py`` uses it, and so do the
procedure's disruptive steps). The cron itself is parsed by :mod:`bm_upgrade.cron` (which the
inventory also uses to refuse a bad cron when it is loaded).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from bm_upgrade.cron import Cron
from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory, Timeouts, Window
from bm_upgrade.plan.model import Action


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def openings(window: Window, after: datetime.datetime) -> Iterator[datetime.datetime]:
    """When the window opens, at or after ``after``, as aware times of the window's zone."""
    zone = ZoneInfo(window.timezone)
    start = after.astimezone(zone)
    if start.second or start.microsecond:
        start = start.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
    return Cron.parse(window.cron).times_from(start)


def next_opening(window: Window, after: datetime.datetime) -> datetime.datetime | None:
    """The first opening at or after ``after`` (None: the window is off or never opens)."""
    if not window.enabled:
        return None
    return next(openings(window, after), None)


def window_end(window: Window, opening: datetime.datetime) -> datetime.datetime:
    """When the window that opened at ``opening`` closes."""
    return opening + datetime.timedelta(minutes=window.length_minutes)


def current_window_end(window: Window, now: datetime.datetime) -> datetime.datetime | None:
    """When the window in progress at ``now`` closes (None: none is in progress)."""
    if not window.enabled:
        return None
    length = datetime.timedelta(minutes=window.length_minutes)
    end = None
    for opening in openings(window, now - length):
        if opening > now:
            break
        end = max(end or opening + length, opening + length)
    return end


def window_end_for_run(window: Window, now: datetime.datetime) -> datetime.datetime | None:
    """For a run started by hand that asked to respect the window: when it closes.

    Raises:
        StepFailed: no window is in progress (saying when the next one opens).
    """
    if not window.enabled:
        return None  # the inventory has no window: nothing to respect
    end = current_window_end(window, now)
    if end is None:
        upcoming = next_opening(window, now)
        when = upcoming.isoformat() if upcoming else "never (check window.cron)"
        raise StepFailed(
            "preflight",
            f"the run asked to respect the maintenance window, but "
            f"none is open now ({now.isoformat()}); nothing was touched; the "
            f"next window opens {when}; run then, or without respect_window",
        )
    return end


# -- will the next step fit? ------------------------------------------------------------------
Outage = Literal["server", "active", "client", "orchestrators"]
"""A kind of outage a disruptive step starts: a server (a mirror) down, an ACTIVE down
through a failover, a client down, the WAN orchestrators down."""
SERVER: Final = "server"
ACTIVE: Final = "active"
CLIENT: Final = "client"
ORCHESTRATORS: Final = "orchestrators"

DISRUPTIVE: Mapping[Action, Outage] = {
    "stop": SERVER,
    "failover-stop": ACTIVE,
    "failback-stop": ACTIVE,
}
"""Actions that take a node down, and the kind of outage they start on a server (a client's
or an orchestrator's stop starts its own kind)."""
CLUSTER_STEPS: Mapping[Action, Outage] = {"confirm-wan": ORCHESTRATORS}
"""Cluster steps that end an outage: the WAN cycle's last step."""


def timeout_estimates(timeouts: Timeouts) -> dict[str, float]:
    """How long each kind of outage may take at most, from the timeouts alone."""
    server = timeouts.stop_s + timeouts.start_s + timeouts.sync_s
    return {
        SERVER: server,
        ACTIVE: timeouts.failover_s + server,
        CLIENT: 2 * timeouts.client_s,
        ORCHESTRATORS: 2 * timeouts.orchestrator_s,
    }


def _kinds(inventory: Inventory) -> dict[str, Outage]:
    kinds: dict[str, Outage] = {s.name: SERVER for _, _, s in inventory.servers()}
    kinds.update({c.name: CLIENT for _, c in inventory.clients()})
    kinds.update({o.name: ORCHESTRATORS for _, o in inventory.orchestrators()})
    return kinds


def outage_spans(inventory: Inventory, records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The longest outage of each kind in one run's step records (``StepRecord.as_dict``):
    from a node's stop to the end of its last step before its next stop (orchestrators: from
    the first stop to the end of the cycle)."""
    kinds = _kinds(inventory)
    done = sorted((r for r in records if not r.get("skipped")), key=lambda r: r["started"])
    spans: dict[str, float] = {}
    open_since: dict[str, tuple[Outage, float, float]] = {}  # node -> (kind, start, last end)
    for r in done:
        kind = kinds.get(r["node"]) or CLUSTER_STEPS.get(r["action"])
        if kind is None:
            continue
        node = "*" if kind == ORCHESTRATORS else r["node"]
        stops = r["action"] in DISRUPTIVE
        if stops and node in open_since and node != "*":
            k, start, end = open_since.pop(node)
            spans[k] = max(spans.get(k, 0.0), end - start)
        if stops and node not in open_since:
            k = DISRUPTIVE.get(r["action"], SERVER) if kind == SERVER else kind
            open_since[node] = (k, float(r["started"]), float(r["ended"]))
        elif node in open_since:
            k, start, _ = open_since[node]
            open_since[node] = (k, start, float(r["ended"]))
    for k, start, end in open_since.values():
        spans[k] = max(spans.get(k, 0.0), end - start)
    return spans


def expected_outages(
    inventory: Inventory,
    timeouts: Timeouts,
    past_runs: Iterable[Iterable[Mapping[str, Any]]],
) -> dict[str, tuple[float, str]]:
    """Per kind of outage, the seconds to expect and where the figure comes from: the longest
    seen in past runs, else the timeouts."""
    seen: dict[str, float] = {}
    count = 0
    for records in past_runs:
        count += 1
        for kind, span in outage_spans(inventory, records).items():
            seen[kind] = max(seen.get(kind, 0.0), span)
    out = {k: (v, "the timeouts") for k, v in timeout_estimates(timeouts).items()}
    out.update({k: (v, f"the longest in {count} past run(s)") for k, v in seen.items()})
    return out


@dataclass(frozen=True)
class WindowGuard:
    """Checks, before a disruptive step, that it will finish before the window closes."""

    end: datetime.datetime
    expected: Mapping[str, tuple[float, str]]
    next_opening: datetime.datetime | None = None
    clock: Callable[[], datetime.datetime] = field(default=utcnow)

    def check(self, node: str, step: str, kind: Outage) -> None:
        """Raises: StepFailed naming the step that would overrun and the next window."""
        seconds, basis = self.expected[kind]
        now = self.clock()
        if now + datetime.timedelta(seconds=seconds) <= self.end:
            return
        when = self.next_opening.isoformat() if self.next_opening else "not known"
        raise StepFailed(
            node,
            f"{step} was not started: it is expected to take "
            f"{seconds:.0f} s ({basis}) and the maintenance window closes at "
            f"{self.end.isoformat()}; the cluster stays as the previous step left "
            f"it, every stripe served; the next window opens {when}: rerun then "
            "(finished steps are skipped)",
        )
