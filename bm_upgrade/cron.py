"""Cron expressions of maintenance windows: check a 5-field cron and list when it fires.

The cron grammar and its iteration are croniter's (the library Dagster's schedules are built
on, vendored inside Dagster), so a window opens when the schedule Dagster builds from it fires:
``*``, lists, ranges, steps, month and weekday names, Sunday as 0 or 7, day-of-month OR
day-of-week when both are restricted. What stays here is what croniter leaves to its caller:
errors that name the field, refusing a cron that never fires (at inventory load), and time
zones: croniter lists wall-clock times, and a time a DST change skips fires when the gap ends,
one it repeats fires once (the second), as Dagster's schedules do.

No bm_upgrade imports, so the inventory checks a window's cron when it is loaded and the
window arithmetic (:mod:`bm_upgrade.window`) uses the same code.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass

from croniter import CroniterBadDateError, CroniterError, croniter

_FIELDS = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
]
_RANGE = re.compile(r"^(\w+)-(\w+)")
_ANY_YEAR = datetime.datetime(2024, 1, 1)
"""Where :func:`parse_cron` looks for a first firing (croniter searches decades ahead)."""


def _alone(index: int, part: str) -> str:
    """The cron that restricts only field ``index``, to ``part``: croniter checks a whole
    expression, so each field is checked alone to say which one is wrong."""
    return " ".join(part if i == index else "*" for i in range(5))


def _check_field(index: int, part: str) -> None:
    what, low, high = _FIELDS[index]
    tokens = re.split(r"[,/-]", part.lower())
    if "r" in tokens or "h" in tokens:
        raise ValueError(
            f"{what} {part!r}: random (R) and hashed (H) values are not "
            "supported; a window opens at times you choose"
        )
    try:
        croniter.expand(_alone(index, part))
    except CroniterError:
        raise ValueError(
            f"{what} {part!r} is not a number from {low} to {high} (or a name, "
            "list, range or step of them)"
        ) from None
    for item in part.split(","):
        # croniter reads 5-2 as 5 to 2 round the clock; Vixie cron (and this tool) refuses it.
        if (match := _RANGE.match(item)) and _number(index, match[1]) > _number(index, match[2]):
            raise ValueError(f"{what} range {item!r} runs backwards")


def _number(index: int, value_text: str) -> int:
    if index == 4 and value_text == "7":
        return 7  # Sunday at the end of a range (croniter folds it to 0)
    value = croniter.expand(_alone(index, value_text))[0][index][0]
    return value if isinstance(value, int) else -1  # 'l' (last day) sorts first: no range


@dataclass(frozen=True)
class Cron:
    """A checked 5-field cron expression."""

    text: str

    @classmethod
    def parse(cls, text: str) -> Cron:
        """Raises: ValueError naming the field that is wrong."""
        parts = text.split()
        if len(parts) != 5:
            raise ValueError("cron needs 5 fields: minute hour day-of-month month day-of-week")
        for index, part in enumerate(parts):
            _check_field(index, part)
        return cls(" ".join(parts))

    def times_from(self, start: datetime.datetime) -> Iterator[datetime.datetime]:
        """Every matching time at or after ``start`` (aware), in ``start``'s zone, in order
        (none when the cron never fires)."""
        zone = start.tzinfo
        assert zone is not None
        # croniter gives the wall-clock times after the one it starts from; starting a
        # minute early includes ``start`` itself.
        walls = croniter(self.text, start.replace(tzinfo=None) - datetime.timedelta(minutes=1))
        last: datetime.datetime | None = None
        while True:
            try:
                wall = walls.get_next(datetime.datetime)
            except CroniterBadDateError:
                return  # no firing within croniter's search (decades)
            instant = _instant(wall.replace(tzinfo=zone))
            if instant >= start and (last is None or instant > last):
                last = instant
                yield instant


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
    while (
        moment < max(early, late)
        and moment.astimezone(zone).utcoffset() == min(early, late).astimezone(zone).utcoffset()
    ):
        moment += datetime.timedelta(minutes=1)
    return moment.astimezone(zone)


def parse_cron(text: str) -> Cron:
    """A window's cron, checked the way Dagster's schedules check theirs.

    Raises:
        ValueError: a field out of range (naming it), or a cron that never fires (such as
            ``0 0 31 2 *``, which Dagster refuses too, as it refuses 30 or 31 February with a
            day of week).
    """
    cron = Cron.parse(text)
    fields = croniter.expand(cron.text)[0]
    if fields[3] == [2] and fields[2] != ["*"] and set(fields[2]) <= {30, 31}:
        # Vixie cron would still fire on the day of week; Dagster refuses it outright.
        raise ValueError("February has no 30th or 31st day")
    if next(cron.times_from(_ANY_YEAR.replace(tzinfo=datetime.UTC)), None) is None:
        raise ValueError("it never fires: no day matches its day-of-month, month and day-of-week")
    return cron
