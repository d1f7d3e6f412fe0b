"""Maintenance windows: cron openings (checked against Dagster's own cron handling), the
window in progress, the check disruptive steps make, and the schedule's run config."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._utils.schedules import cron_string_iterator
from hypothesis import given, settings
from hypothesis import strategies as st

from bm_upgrade.cron import Cron
from bm_upgrade.defs.config import RunSettings, UpgradeConfig
from bm_upgrade.defs.schedules import build_window_schedule, schedule_name
from bm_upgrade.defs.window_plan import plan_window
from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory, Timeouts, Window
from bm_upgrade.window import (
    ACTIVE,
    CLIENT,
    ORCHESTRATORS,
    SERVER,
    WindowGuard,
    current_window_end,
    expected_outages,
    next_opening,
    openings,
    outage_spans,
    timeout_estimates,
    window_end_for_run,
)
from tests.unit.inventories import minimal

UTC = datetime.UTC
CRONS = [
    "0 2 * * 0",
    "0 1 * * sun",
    "30 23 * * 1-5",
    "*/15 3 * * *",
    "0 0 1 * *",
    "0 4 1,15 * 6",
    "5 2 * 3 0",
    "0 */6 * * 7",
    "0 12 * jan-mar mon",
    "0 2 */2 * 1",
    "30 2 * 10,11 *",
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]


def inventory(**window: object) -> Inventory:
    data = minimal()
    data["window"] = window
    return Inventory.model_validate(data)


@settings(max_examples=60, deadline=None)
@given(
    cron=st.sampled_from(CRONS),
    zone=st.sampled_from(ZONES),
    start=st.datetimes(
        min_value=datetime.datetime(2024, 1, 1), max_value=datetime.datetime(2030, 1, 1)
    ),
)
def test_openings_agree_with_dagsters_cron(cron: str, zone: str, start: datetime.datetime) -> None:
    after = start.replace(tzinfo=UTC)
    ours = openings(Window(cron=cron, timezone=zone), after)
    theirs = cron_string_iterator(after.timestamp(), cron, zone)
    expected = [t for _, t in zip(range(6), (t for t in theirs if t >= after), strict=False)]
    got = [next(ours) for _ in expected]
    assert [t.timestamp() for t in got] == [t.timestamp() for t in expected]


def test_29_february_is_found_years_ahead() -> None:
    after = datetime.datetime(2025, 3, 1, tzinfo=UTC)
    first = next_opening(Window(cron="0 2 29 2 *"), after)
    assert first == datetime.datetime(2028, 2, 29, 2, 0, tzinfo=ZoneInfo("UTC"))


def test_dst_gap_opens_when_the_gap_ends() -> None:
    # Europe/Berlin skips 02:00-03:00 on 2026-03-29: the 02:30 window opens at 03:00, once.
    window = Window(cron="30 2 * * *", timezone="Europe/Berlin")
    after = datetime.datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    it = openings(window, after)
    first, second = next(it), next(it)
    assert first.isoformat() == "2026-03-29T03:00:00+02:00"
    assert second.isoformat() == "2026-03-30T02:30:00+02:00"


def test_a_step_in_day_of_month_with_a_weekday_fires_on_either_as_dagster_does() -> None:
    # "*/2" restricts the day of month: croniter (so Dagster) fires on odd days OR Mondays.
    after = datetime.datetime(2026, 6, 1, tzinfo=UTC)  # a Monday
    it = openings(Window(cron="0 2 */2 * 1", timezone="UTC"), after)
    days = [next(it).day for _ in range(5)]
    assert days == [1, 3, 5, 7, 8]


def test_a_repeated_time_opens_once_at_its_second_occurrence() -> None:
    # Europe/Berlin repeats 02:00-03:00 on 2026-10-25: the 02:30 window opens once, at the
    # second 02:30 (+01:00), as Dagster's schedule fires.
    window = Window(cron="30 2 * * *", timezone="Europe/Berlin")
    after = datetime.datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    got = [t.isoformat() for _, t in zip(range(2), openings(window, after), strict=False)]
    assert got == ["2026-10-25T02:30:00+01:00", "2026-10-26T02:30:00+01:00"]
    theirs = cron_string_iterator(after.timestamp(), window.cron, window.timezone)
    assert [next(theirs).isoformat() for _ in got] == got


@pytest.mark.parametrize(
    "text, field",
    [
        ("0 2 * *", "5 fields"),
        ("61 2 * * 0", "minute"),
        ("0 2 * * funday", "day of week"),
        ("0 5-2 * * *", "backwards"),
        ("0 2 1-5,9-7 * *", "day of month range '9-7'"),
        ("R 2 * * *", "random"),
        ("0 2 */0 * *", "day of month"),
    ],
)
def test_bad_cron_names_the_field(text: str, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Cron.parse(text)


def test_window_in_progress_and_the_next_one() -> None:
    window = Window(cron="0 1 * * 0", timezone="Europe/Berlin", length_minutes=240)
    sunday = datetime.datetime(2026, 11, 29, 1, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    end = current_window_end(window, sunday)
    assert end is not None and end.astimezone(UTC).hour == 4  # 05:00 Berlin = 04:00 UTC
    assert current_window_end(window, sunday + datetime.timedelta(hours=4)) is None
    upcoming = next_opening(window, sunday)
    assert upcoming is not None and upcoming.date().isoformat() == "2026-12-06"
    assert next_opening(Window(enabled=False), sunday) is None


def test_respect_window_outside_fails_saying_when_the_next_opens() -> None:
    window = Window(cron="0 2 * * 0", timezone="UTC", length_minutes=60)
    monday = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    with pytest.raises(
        StepFailed,
        match=r"none is open now.*next window opens "
        r"2026-12-06T02:00:00\+00:00",
    ):
        window_end_for_run(window, monday)
    sunday = datetime.datetime(2026, 12, 6, 2, 10, tzinfo=UTC)
    assert window_end_for_run(window, sunday) == datetime.datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    assert window_end_for_run(Window(enabled=False), monday) is None


def test_guard_refuses_a_step_that_would_overrun() -> None:
    now = datetime.datetime(2026, 12, 6, 5, 0, tzinfo=UTC)
    guard = WindowGuard(
        end=now + datetime.timedelta(minutes=30),
        expected={
            SERVER: (600.0, "the longest in 2 past run(s)"),
            ACTIVE: (2400.0, "the timeouts"),
        },
        next_opening=now + datetime.timedelta(days=7),
        clock=lambda: now,
    )
    guard.check("s1", "stop of s1", SERVER)  # 10 min fit in 30
    with pytest.raises(
        StepFailed,
        match=r"failover-stop of s2 was not started: it is "
        r"expected to take 2400 s \(the timeouts\).*"
        r"next window opens 2026-12-13T05:00",
    ) as err:
        guard.check("s2", "failover-stop of s2", ACTIVE)
    assert err.value.node == "s2"


def test_outages_from_past_records_else_timeouts() -> None:
    inv = inventory(cron="0 2 * * 0")
    servers = [s.name for _, _, s in inv.servers()]
    mirror, active = servers[0], servers[1]

    def rec(node: str, action: str, start: float, end: float) -> dict[str, object]:
        return {"node": node, "action": action, "started": start, "ended": end, "skipped": False}

    run = [
        rec(mirror, "stop", 0, 2),
        rec(mirror, "install", 2, 3),
        rec(mirror, "confirm-standby", 3, 10),
        rec(active, "failover-stop", 11, 12),
        rec(active, "wait-failover", 12, 14),
        rec(active, "confirm-standby", 14, 30),
    ]
    assert outage_spans(inv, run) == {SERVER: 10.0, ACTIVE: 19.0}
    timeouts = Timeouts()
    expected = expected_outages(inv, timeouts, [run, run[:2]])
    assert expected[SERVER] == (10.0, "the longest in 2 past run(s)")
    assert expected[CLIENT] == (timeout_estimates(timeouts)[CLIENT], "the timeouts")
    assert expected[ORCHESTRATORS][1] == "the timeouts"


def test_schedule_per_window_carries_the_window_end() -> None:
    inv = inventory(cron="0 1 * * 0", timezone="Europe/Berlin", length_minutes=90)

    @dg.job(name="upgrade_x")
    def job() -> None:
        pass

    schedule = build_window_schedule(inv, job)
    assert schedule is not None and schedule.name == schedule_name(inv)
    assert schedule.cron_schedule == "0 1 * * 0"
    assert schedule.execution_timezone == "Europe/Berlin"
    tick = datetime.datetime(2026, 11, 29, 1, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    result = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick))
    assert result.run_requests
    config = result.run_requests[0].run_config["ops"]["preflight"]["config"]
    assert config["window_end"] == "2026-11-29T02:30:00+01:00"
    assert config["target_version"] == inv.target_version
    UpgradeConfig(**config)
    assert build_window_schedule(inventory(enabled=False), job) is None


def test_run_by_hand_ignores_the_window_unless_asked() -> None:
    inv = inventory(cron="0 2 * * 0", timezone="UTC", length_minutes=60)
    config = UpgradeConfig(**UpgradeConfig.defaults_for(inv))
    settings = RunSettings.from_config(config, inv)
    monday = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        assert (
            plan_window(
                instance, "upgrade_x", settings, inv, respect_window=False, now=monday
            ).window_guard()
            is None
        )
        with pytest.raises(StepFailed, match="none is open now"):
            plan_window(instance, "upgrade_x", settings, inv, respect_window=True, now=monday)
        sunday = datetime.datetime(2026, 12, 6, 2, 30, tzinfo=UTC)
        planned = plan_window(instance, "upgrade_x", settings, inv, respect_window=True, now=sunday)
        guard = planned.window_guard()
        assert guard is not None and guard.end == datetime.datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
        assert guard.expected[SERVER][1] == "the timeouts"  # no past runs
        assert planned.next_opening == datetime.datetime(2026, 12, 13, 2, 0, tzinfo=UTC)
