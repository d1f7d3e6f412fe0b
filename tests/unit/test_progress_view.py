"""A run's progress, from its events to the lines a terminal or a pipe shows: the state
(bm_upgrade/progress_state.py), the lines (progress_view.py) and their writing
(progress_terminal.py), without Dagster."""

from __future__ import annotations

import io
import logging
import re
from dataclasses import replace

from bm_upgrade import progress_view as view
from bm_upgrade.procedure.records import StepRecord, skipped
from bm_upgrade.progress_state import (
    Happening,
    RunState,
    StepProgress,
    StepState,
    StripeProgress,
    advance,
    finish,
    ordered,
)
from bm_upgrade.progress_terminal import ProgressDisplay

MIRRORS, FAILOVER = "upgrade_mirrors_east_stripe1", "failover_east_stripe1"
KEYS = ("preflight", "stage_kit", MIRRORS, FAILOVER, "restart_clients_1", "report")
STRIPE = StripeProgress("east/stripe1", ("s1-a", "s1-b"), MIRRORS, FAILOVER)
EXPECTED = {
    "preflight": 2.0,
    "stage_kit": 3.0,
    MIRRORS: 10.0,
    FAILOVER: 20.0,
    "restart_clients_1": 4.0,
    "report": 1.0,
}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def fresh(expected: dict[str, float] | None = None) -> RunState:
    return RunState(
        title="run abcd1234",
        steps=tuple(StepProgress(k) for k in KEYS),
        stripes=(STRIPE,),
        expected=expected if expected is not None else EXPECTED,
        basis="the last 3 successful runs",
    )


def play(state: RunState, *events: Happening) -> tuple[RunState, list[str], list[str]]:
    """Apply ``events``: the state after them, the plain lines and the warnings shown."""
    lines: list[str] = []
    warnings: list[str] = []
    for event in events:
        before = state
        state, said = advance(state, event)
        lines += view.changes(before, state, event.time)
        warnings += said
    return state, lines, warnings


def confirmed(server: str) -> str:
    """The procedure's own record line for a server confirmed on the target."""
    record = StepRecord(server, "confirm-standby", "", (f"confirmed {server} PASSIVE-STANDBY",))
    return record.summary()


def test_steps_run_in_order_one_plain_line_per_change() -> None:
    state, lines, warnings = play(
        fresh(),
        Happening("run_start", 100.0),
        Happening("start", 100.0, "preflight"),
        Happening("log", 100.5, "preflight", "preflight: every host reachable"),
        Happening("success", 102.0, "preflight"),
        Happening("start", 102.0, "stage_kit"),
    )
    assert lines == [
        "preflight: running",
        "preflight: done in 2.0 s; about 38 s left",
        "stage_kit: running",
    ]
    assert warnings == []
    assert state.step("stage_kit") == StepProgress("stage_kit", StepState.RUNNING, 102.0)


def test_time_left_counts_what_is_not_finished_a_running_step_less_its_time() -> None:
    state, _, _ = play(fresh(), Happening("start", 0.0, "preflight"))
    assert state.time_left(0.5) == 39.5  # 2 - 0.5, and the rest's 38
    assert state.time_left(10.0) == 38.0  # overrunning: floored at 0
    state, _, _ = play(state, Happening("success", 3.0, "preflight"))
    assert state.time_left(3.0) == 38.0
    assert fresh(expected={}).time_left(0.0) is None
    ended, _, _ = play(state, Happening("run_end", 4.0))
    assert ended.time_left(5.0) == 0.0
    # Stripes side by side: the run is predicted to take half its steps' time.
    assert replace(state, overlap=0.5).time_left(3.0) == 19.0


def test_a_prediction_from_the_timeouts_is_an_upper_bound() -> None:
    state = replace(fresh(), at_most=True, basis="the inventory's timeouts (no past run)")
    assert view.opening(state) == [
        "run abcd1234: 6 step(s) to run, predicted at most 40 s of step time "
        "(the inventory's timeouts (no past run))"
    ]
    _, lines, _ = play(
        state, Happening("start", 0, "preflight"), Happening("success", 1, "preflight")
    )
    assert lines[-1] == "preflight: done in 1.0 s; at most 38 s left"


def test_a_stripe_counts_servers_confirmed_then_its_steps_done() -> None:
    state, _, _ = play(
        fresh(),
        Happening("start", 0.0, MIRRORS),
        Happening("log", 1.0, MIRRORS, "confirm-standby s1-b [stripe1]: s1-b is PASSIVE-STANDBY"),
    )
    assert state.stripes[0].done == 0  # a plan line, not a record
    state, _, _ = play(state, Happening("log", 2.0, MIRRORS, confirmed("s1-b")))
    assert (state.stripes[0].done, state.stripes[0].total) == (1, 2)
    state, lines, _ = play(
        state,
        Happening("success", 3.0, MIRRORS),
        Happening("start", 3.0, FAILOVER),
        Happening(
            "log", 4.0, FAILOVER, skipped("s1-a", "confirm-standby", "", "already").summary()
        ),
    )
    assert state.stripes[0].done == 2
    assert lines[0].startswith(f"{MIRRORS}: done in 3.0 s; stripe east/stripe1 1/2 servers;")


def test_a_stripe_without_records_counts_from_its_steps() -> None:
    state, _, _ = play(
        fresh(), Happening("start", 0.0, MIRRORS), Happening("success", 1.0, MIRRORS)
    )
    assert state.stripes[0].done == 1
    state, lines, _ = play(
        state, Happening("start", 1.0, FAILOVER), Happening("success", 2.0, FAILOVER)
    )
    assert state.stripes[0].done == 2
    assert lines[-1].startswith(f"{FAILOVER}: done in 1.0 s; stripe east/stripe1 2/2 servers")


def test_a_failure_then_the_steps_not_run() -> None:
    state, lines, warnings = play(
        fresh(),
        Happening("start", 0.0, "preflight"),
        Happening("success", 1.0, "preflight"),
        Happening("start", 1.0, "stage_kit"),
        Happening("log", 2.0, "stage_kit", "disk nearly full on h1", logging.WARNING),
        Happening("failure", 3.0, "stage_kit"),
        # Dagster's word on a step it will not run: an error line about a step not started.
        Happening("log", 3.1, MIRRORS, "Dependencies for step failed", logging.ERROR),
        Happening("run_end", 4.0),
    )
    assert warnings == ["stage_kit: disk nearly full on h1"]
    assert lines[3:] == [
        "stage_kit: failed after 2.0 s",
        f"{MIRRORS}: skipped",
        f"{FAILOVER}: skipped",
        "restart_clients_1: skipped",
        "report: skipped",
    ]
    assert not any("failed: step" in line for line in lines)  # the command's own sentence
    assert view.closing(state, 4.0) == "run abcd1234 ended: 1 done, 1 failed, 4 skipped"


def test_a_run_that_ended_before_any_step_says_so_in_one_line() -> None:
    _, lines, _ = play(fresh(), Happening("run_start", 0.0), Happening("run_end", 0.5))
    assert lines == ["no step of the run started"]


def test_info_lines_and_lines_of_steps_not_running_are_not_warnings() -> None:
    _, _, warnings = play(
        fresh(),
        Happening("log", 0.0, "preflight", "an info line"),
        Happening("log", 0.0, None, "the run's own warning", logging.WARNING),
        Happening("start", 0.0, "preflight"),
        Happening("log", 0.5, "preflight", "gave up waiting", logging.ERROR),
        Happening("success", 1.0, "preflight"),
        Happening("log", 1.5, "preflight", "late", logging.WARNING),
    )
    assert warnings == ["the run's own warning", "preflight: gave up waiting"]


def test_a_retried_step_waits_again_and_an_unfinished_one_fails_with_the_run() -> None:
    state, lines, _ = play(
        fresh(), Happening("start", 0.0, "preflight"), Happening("retry", 1.0, "preflight")
    )
    assert lines[-1] == "preflight: waiting to be tried again"
    state, _, _ = play(state, Happening("start", 2.0, "preflight"))
    ended = finish(state, 5.0)
    assert ended.step("preflight") == StepProgress("preflight", StepState.FAILED, 2.0, 5.0)
    assert ended.count(StepState.SKIPPED) == len(KEYS) - 1


def test_a_stripes_failover_follows_its_mirrors() -> None:
    stripe2 = StripeProgress("east/stripe2", ("a", "b"), "upgrade_mirrors_e2", "failover_e2")
    topological = ["preflight", MIRRORS, "upgrade_mirrors_e2", FAILOVER, "failover_e2", "report"]
    assert ordered(topological, [STRIPE, stripe2]) == (
        "preflight",
        MIRRORS,
        FAILOVER,
        "upgrade_mirrors_e2",
        "failover_e2",
        "report",
    )
    # A re-execution of a failover alone.
    assert ordered(["failover_e2", "report"], [STRIPE, stripe2]) == ("failover_e2", "report")


def test_durations_and_bars() -> None:
    assert [view.duration(s) for s in (0.04, 9.94, 42.4, 125, 3725)] == [
        "0.0 s",
        "9.9 s",
        "42 s",
        "2 min 05 s",
        "1 h 02 min",
    ]
    assert view.bar(1, 2, width=10) == "[#####.....]"
    assert view.bar(0, 0, width=4) == "[....]"
    assert view.bar(3, 2, width=4) == "[####]"


def test_the_live_block_a_line_per_step_and_a_bar_per_stripe() -> None:
    state, _, _ = play(
        fresh(),
        Happening("run_start", 0.0),
        Happening("start", 0.0, "preflight"),
        Happening("success", 2.0, "preflight"),
        Happening("start", 2.0, "stage_kit"),
        Happening("success", 5.0, "stage_kit"),
        Happening("start", 5.0, MIRRORS),
        Happening("log", 9.0, MIRRORS, confirmed("s1-b")),
    )
    block = view.live_block(state, 12.0, width=100, height=40)
    assert block == [
        "run abcd1234: 2/6 steps finished, 12 s elapsed, about 28 s left",
        "  done     preflight                     2.0 s",
        "  done     stage_kit                     3.0 s",
        "  running  upgrade_mirrors_east_stripe1  7.0 s",
        "  waiting  failover_east_stripe1",
        "  waiting  restart_clients_1",
        "  waiting  report",
        "  east/stripe1  [##########..........] 1/2 servers",
    ]
    coloured = view.live_block(state, 12.0, colour=True)
    assert "\x1b[32mdone    \x1b[0m" in coloured[1] and "\x1b[36mrunning " in coloured[3]
    assert [ANSI.sub("", line) for line in coloured] == block


def test_the_live_block_fits_a_small_terminal() -> None:
    state, _, _ = play(
        fresh(),
        Happening("start", 0.0, "preflight"),
        Happening("success", 2.0, "preflight"),
        Happening("start", 2.0, "stage_kit"),
        Happening("success", 5.0, "stage_kit"),
        Happening("start", 5.0, MIRRORS),
    )
    block = view.live_block(state, 6.0, width=30, height=6)
    assert len(block) <= 6 and all(len(line) <= 30 for line in block)
    assert block[1] == "  done     2 step(s), the last"
    assert block[2].startswith("  running  upgrade_mirrors_e")
    assert block[3] == "  waiting  failover_east_strip"
    assert block[4] == "  waiting  and 2 more step(s)"
    assert block[-1].startswith("  east/stripe1  [")


def test_plain_display_writes_lines_notices_and_warnings_in_order() -> None:
    out = io.StringIO()
    display = ProgressDisplay(out, live=False)
    display.notice("before the run")
    state = fresh()
    display.begin(state)
    after, warnings = advance(state, Happening("start", 0.0, "preflight"))
    display.changed(state, after, warnings, 0.0)
    display.notice("SIGINT received: finishing the current step safely")
    display.tick(after, 0.5)
    later, warnings = advance(after, Happening("log", 0.6, "preflight", "slow", logging.WARNING))
    display.changed(after, later, warnings, 0.6)
    display.end(finish(later, 1.0), 1.0)
    assert out.getvalue().splitlines() == [
        "before the run",
        "run abcd1234: 6 step(s) to run, predicted 40 s of step time (the last 3 successful runs)",
        "preflight: running",
        "SIGINT received: finishing the current step safely",
        "warning: preflight: slow",
        "run abcd1234 ended: 1 failed, 5 skipped",
    ]
    assert "\x1b" not in out.getvalue()


def test_live_display_redraws_its_block_in_place() -> None:
    out = io.StringIO()
    display = ProgressDisplay(out, live=True, colour=False)
    state = fresh(expected={})
    display.begin(state)
    running, _ = advance(state, Happening("start", 0.0, "preflight"))
    display.changed(state, running, [], 0.0)  # no line of its own: the block shows it
    display.tick(running, 1.0)
    first = out.getvalue()
    assert first.endswith("  east/stripe1  [....................] 0/2 servers\n")
    print("SIGTERM received", file=display.notice_stream(), flush=True)
    display.tick(running, 2.0)
    second = out.getvalue()[len(first) :]
    lines = len(view.live_block(running, 1.0))
    # Up to the block's first line, cleared, the notice, the block again.
    assert second.startswith(f"\r\x1b[{lines}A\x1b[JSIGTERM received\nrun abcd1234: 0/6")
    assert "  running  preflight" in second and "2.0 s\n" in second
    display.end(finish(running, 3.0), 3.0)
    assert out.getvalue().endswith("run abcd1234 ended: 1 failed, 5 skipped\n")
