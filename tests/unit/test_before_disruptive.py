"""ServerOps.before_disruptive's branches, with a fake ``halted`` and a real window guard on a
fixed clock (no sandbox, no Dagster): a requested stop, an earlier failure of the run, the
maintenance window, in that order; nothing raised when all three allow the step."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any, cast

import pytest

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory
from bm_upgrade.procedure import halt
from bm_upgrade.procedure.servers import ServerOps
from bm_upgrade.remote import HostPool
from bm_upgrade.window import SERVER, WindowGuard
from tests.unit.inventories import minimal

NOW = datetime.datetime(2030, 1, 1, 2, 0, tzinfo=datetime.UTC)
STEP = "stop of tsa-a2 (stripe stripe1)"
EARLIER = (
    "step upgrade_mirrors_east_stripe2 of this run failed (tsa-w1b did not reach "
    "PASSIVE-STANDBY within 3 s); fix that, then re-execute from failure"
)


class FakeFailures:
    """The ``halted`` seam: what the Dagster layer would find in the run's event log."""

    def __init__(self, sentence: str | None) -> None:
        self.sentence = sentence
        self.asked = 0

    def __call__(self) -> str | None:
        self.asked += 1
        return self.sentence


def ops(halted: Any = None, minutes_left: float | None = None) -> ServerOps:
    inventory = Inventory.model_validate(minimal())
    ctx = ServerOps.create(inventory, cast(HostPool, None))
    ctx.halted = halted
    if minutes_left is not None:
        ctx.window = WindowGuard(
            NOW + datetime.timedelta(minutes=minutes_left),
            {SERVER: (600.0, "the timeouts")},
            clock=lambda: NOW,
        )
    return ctx


@pytest.fixture(autouse=True)
def no_stop_requested() -> Iterator[None]:
    halt.reset()
    yield
    halt.reset()


def test_nothing_stops_the_step() -> None:
    failures = FakeFailures(None)
    ops(failures, minutes_left=60).before_disruptive("tsa-a2", STEP, SERVER)
    ops().before_disruptive("tsa-a2", STEP, SERVER)
    assert failures.asked == 1


def test_an_earlier_failure_of_the_run_stops_it_naming_that_failure() -> None:
    with pytest.raises(StepFailed) as caught:
        ops(FakeFailures(EARLIER), minutes_left=60).before_disruptive("tsa-a2", STEP, SERVER)
    assert str(caught.value) == f"{STEP} not started: {EARLIER}"
    assert caught.value.node == "tsa-a2"


def test_a_requested_stop_comes_first_and_says_nothing_changed() -> None:
    halt.request_stop("interrupted (SIGINT)")
    halt.request_stop("a second reason is not kept")
    failures = FakeFailures(EARLIER)
    with pytest.raises(
        StepFailed,
        match=r"^stop of tsa-a2 \(stripe stripe1\) not started: "
        r"interrupted \(SIGINT\); nothing was changed by this step; rerun",
    ):
        ops(failures).before_disruptive("tsa-a2", STEP, SERVER)
    assert failures.asked == 0


def test_the_window_is_checked_last() -> None:
    with pytest.raises(StepFailed, match="not started: step upgrade_mirrors_east_stripe2"):
        ops(FakeFailures(EARLIER), minutes_left=1).before_disruptive("tsa-a2", STEP, SERVER)
    with pytest.raises(StepFailed, match="maintenance window closes"):
        ops(FakeFailures(None), minutes_left=1).before_disruptive("tsa-a2", STEP, SERVER)
