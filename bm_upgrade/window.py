"""Maintenance windows: when they open (5-field cron in the window's time zone), when the one
in progress closes, and whether a disruptive step still fits before it does.

Plain Python, no Dagster (the schedule in ``defs/schedules.py`` uses it, and so do the
procedure's disruptive steps). Cron follows Vixie cron: ``*``, lists, ranges, steps, month and
weekday names, Sunday as 0 or 7, and day-of-month OR day-of-week when both are restricted.
Times are wall-clock times of the window's zone; a time a DST change skips opens the window when
the gap ends, one it repeats opens it once (the second), as Dagster's schedules do.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory, Timeouts, Window

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_FIELDS: list[tuple[str, int, int, dict[str, int]]] = [
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {name: i for i, name in enumerate(_DAYS)}),
]
SEARCH_DAYS = 366 * 8
"""How far ahead an opening is searched (covers 29 February on a given weekday)."""


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _value(text: str, what: str, low: int, high: int, names: dict[str, int]) -> int:
    number = names.get(text.lower()) if not text.isdigit() else int(text)
    if number is None or not low <= number <= high:
        raise ValueError(f"{what} {text!r} is not a number from {low} to {high}")
    return number


def _parse_field(text: str, what: str, low: int, high: int,
                 names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = _value(step_text, f"{what} step", 1, high, {}) if step_text else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            first, last = _value(a, what, low, high, names), _value(b, what, low, high, names)
        else:
            first = _value(base, what, low, high, names)
            last = high if step_text else first
        if first > last:
            raise ValueError(f"{what} range {base!r} runs backwards")
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed 5-field cron expression."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Sunday ... 6 = Saturday."""
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        """Raises: ValueError naming the field that is wrong."""
        parts = text.split()
        if len(parts) != 5:
            raise ValueError("cron needs 5 fields: minute hour day-of-month month day-of-week")
        sets = [_parse_field(p, what, low, high, names)
                for p, (what, low, high, names) in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(sets[0], sets[1], sets[2], sets[3], weekdays,
                   any_day=parts[2].startswith("*"), any_weekday=parts[4].startswith("*"))

    def matches_day(self, day: datetime.date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week

    def times_from(self, start: datetime.datetime) -> Iterator[datetime.datetime]:
        """Every matching time at or after ``start`` (aware), in ``start``'s zone, in order."""
        zone = start.tzinfo
        assert zone is not None
        day = start.date()
        last: datetime.datetime | None = None
        for _ in range(SEARCH_DAYS):
            if self.matches_day(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        wall = _instant(datetime.datetime(day.year, day.month, day.day,
                                                          hour, minute, tzinfo=zone))
                        if wall >= start and (last is None or wall > last):
                            last = wall
                            yield wall
            day += datetime.timedelta(days=1)


def _instant(wall: datetime.datetime) -> datetime.datetime:
    """The instant a wall-clock time opens the window, as Dagster's schedules fire: a time a
    DST change skips when the gap ends, a time it repeats at its second occurrence.
    (A skipped time may land on an instant already given: callers drop repeats.)"""
    zone = wall.tzinfo
    early = wall.astimezone(datetime.UTC)  # fold=0: the offset before the change
    late = wall.replace(fold=1).astimezone(datetime.UTC)  # the offset after it
    back = early.astimezone(zone)
    if (back.hour, back.minute) == (wall.hour, wall.minute):
        return late.astimezone(zone) if late != early else back  # repeated: the second
    # Skipped: the change happened between the two readings; find it to the minute.
    moment = min(early, late)
    while moment < max(early, late) and moment.astimezone(zone).utcoffset() \
            == min(early, late).astimezone(zone).utcoffset():
        moment += datetime.timedelta(minutes=1)
    return moment.astimezone(zone)


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
        raise StepFailed("preflight", f"the run asked to respect the maintenance window, but "
                         f"none is open now ({now.isoformat()}); nothing was touched; the "
                         f"next window opens {when}; run then, or without respect_window")
    return end


# -- will the next step fit? ------------------------------------------------------------------
SERVER, ACTIVE, CLIENT, ORCHESTRATORS = "server", "active", "client", "orchestrators"
DISRUPTIVE = {"stop": SERVER, "failover-stop": ACTIVE, "failback-stop": ACTIVE}
"""Server actions that take a server down, and the kind of outage they start."""


def timeout_estimates(timeouts: Timeouts) -> dict[str, float]:
    """How long each kind of outage may take at most, from the timeouts alone."""
    server = timeouts.stop_s + timeouts.start_s + timeouts.sync_s
    return {SERVER: server, ACTIVE: timeouts.failover_s + server,
            CLIENT: 2 * timeouts.client_s, ORCHESTRATORS: 2 * timeouts.orchestrator_s}


def _kinds(inventory: Inventory) -> dict[str, str]:
    kinds = {s.name: SERVER for _, _, s in inventory.servers()}
    for region in inventory.regions:
        kinds.update({c.name: CLIENT for c in region.clients})
        kinds.update({o.name: ORCHESTRATORS for o in region.orchestrators})
    return kinds


def outage_spans(inventory: Inventory, records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The longest outage of each kind in one run's step records (``StepRecord.as_dict``):
    from a node's stop to the end of its last step before its next stop (orchestrators: from
    the first stop to the end of the cycle)."""
    kinds = _kinds(inventory)
    done = sorted((r for r in records if not r.get("skipped")), key=lambda r: r["started"])
    spans: dict[str, float] = {}
    open_since: dict[str, tuple[str, float, float]] = {}  # node -> (kind, start, last end)
    for r in done:
        kind = kinds.get(r["node"], ORCHESTRATORS if r["action"] == "confirm-wan" else "")
        node = "*" if kind == ORCHESTRATORS else r["node"]
        stops = r["action"] == "stop" or r["action"] in DISRUPTIVE
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


def expected_outages(inventory: Inventory, timeouts: Timeouts,
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

    def check(self, node: str, step: str, kind: str) -> None:
        """Raises: StepFailed naming the step that would overrun and the next window."""
        seconds, basis = self.expected[kind]
        now = self.clock()
        if now + datetime.timedelta(seconds=seconds) <= self.end:
            return
        when = self.next_opening.isoformat() if self.next_opening else "not known"
        raise StepFailed(node, f"{step} was not started: it is expected to take "
                         f"{seconds:.0f} s ({basis}) and the maintenance window closes at "
                         f"{self.end.isoformat()}; the cluster stays as the previous step left "
                         f"it, every stripe served; the next window opens {when}: rerun then "
                         "(finished steps are skipped)")
