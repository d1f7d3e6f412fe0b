"""Cron expressions of maintenance windows: parse a 5-field cron and list when it fires.

Plain Python with no bm_upgrade imports, so the inventory checks a window's cron when it is
loaded and the window arithmetic (:mod:`bm_upgrade.window`) uses the same parser. Cron follows
Vixie cron: ``*``, lists, ranges, steps, month and weekday names, Sunday as 0 or 7, and
day-of-month OR day-of-week when both are restricted. Times are wall-clock times of the
window's zone; a time a DST change skips fires when the gap ends, one it repeats fires once
(the second), as Dagster's schedules do.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass

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


_ANY_YEAR = datetime.date(2024, 1, 1)
"""Where :func:`parse_cron` looks for a day the cron fires on: SEARCH_DAYS from a leap year's
first day cover every month-day and weekday combination."""


def parse_cron(text: str) -> Cron:
    """A window's cron, checked the way Dagster's schedules check theirs.

    Raises:
        ValueError: a field out of range (naming it), or a cron that never fires (such as
            ``0 0 31 2 *``, which Dagster refuses too, as it refuses 30 or 31 February with a
            day of week).
    """
    cron = Cron.parse(text)
    if cron.months == {2} and not cron.any_day and cron.days <= {30, 31}:
        # Vixie cron would still fire on the day of week; Dagster refuses it outright.
        raise ValueError("February has no 30th or 31st day")
    day = _ANY_YEAR
    for _ in range(SEARCH_DAYS):
        if cron.matches_day(day):
            return cron
        day += datetime.timedelta(days=1)
    raise ValueError("it never fires: no day matches its day-of-month, month and day-of-week")
