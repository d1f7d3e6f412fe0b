"""The window check of disruptive steps, in real runs of the upgrade job against a sandbox:
a step that would outlast the window is not started (from the timeouts when there is no
history), once a run has shown how long the steps take, that history decides, and a run the
history says cannot finish before the window closes is refused in preflight."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bm_upgrade.defs.launch import run_upgrade
from tests.e2e.conftest import E2ESandbox, dagster_home_env, e2e_sandbox
from tests.e2e.journal_check import changing_commands, stops

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def dagster_home() -> Iterator[Path]:
    with dagster_home_env("bm-upgrade-window-") as home:
        yield home


@pytest.fixture(scope="module")
def sandbox(dagster_home: Path) -> Iterator[E2ESandbox]:
    with e2e_sandbox("small") as sb:
        yield sb


def closes_in(minutes: float) -> str:
    return (datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)).isoformat()


def two_minutes_left() -> dict[str, object]:
    return {"window_end": closes_in(2), "timeouts": {"sync_s": 600.0}}


def test_a_stop_that_would_outlast_the_window_is_not_started(sandbox: E2ESandbox) -> None:
    since = time.time()
    # No past run: a mirror's outage is expected to take stop + start + sync timeouts
    # (30 + 60 + 600 s here), more than the 2 minutes left.
    outcome = run_upgrade(sandbox.inventory_path, overrides=two_minutes_left())
    assert not outcome.success
    mirror = sandbox.inventory.regions[0].stripes[0].servers[1].name
    assert outcome.failure and f"stop of {mirror}" in outcome.failure
    assert "the timeouts" in outcome.failure and "window closes at" in outcome.failure
    assert stops(sandbox.journal_path, since) == []
    assert changing_commands(sandbox.journal_path, since) == []


def test_history_of_a_run_decides_the_next_window_check(sandbox: E2ESandbox) -> None:
    by_hand = run_upgrade(sandbox.inventory_path)  # no window_end: the window is ignored
    assert by_hand.success, by_hand.failure
    # The sandbox's outages took seconds: with the same 2 minutes left, a rollback fits.
    back = run_upgrade(sandbox.inventory_path, target="4.2.0", overrides=two_minutes_left())
    assert back.success, back.failure


def test_a_run_past_runs_say_cannot_finish_is_refused_in_preflight(sandbox: E2ESandbox) -> None:
    """After the runs above, the prediction comes from their step times; a window closing
    in a few seconds cannot take a whole run: preflight refuses it, nothing stops."""
    since = time.time()
    outcome = run_upgrade(sandbox.inventory_path, overrides={"window_end": closes_in(0.05)})
    assert not outcome.success
    failure = outcome.failure or ""
    assert "the run is expected to take" in failure and "successful runs)" in failure
    assert "nothing was touched" in failure and "ignore_prediction: true" in failure
    assert stops(sandbox.journal_path, since) == []
    assert changing_commands(sandbox.journal_path, since) == []
