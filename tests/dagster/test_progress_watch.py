"""Following a run's events for the terminal (bm_upgrade/defs/progress.py), on a real Dagster
instance in a DAGSTER_HOME of its own: a run whose hosts nobody answers fails in preflight at
once, and what the display shows of it is every step's state read from the event log."""

from __future__ import annotations

import io
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from bm_upgrade.defs.instance import prepare_instance
from bm_upgrade.defs.launch import run_upgrade
from bm_upgrade.defs.progress import RunWatch, stripes_of
from bm_upgrade.inventory import load_inventory
from bm_upgrade.progress_terminal import ProgressDisplay
from tests.unit.inventories import UNANSWERED_STEPS, unanswered

pytestmark = pytest.mark.slow  # whole runs on an instance on disk: seconds each

AFTER_PREFLIGHT = UNANSWERED_STEPS[1:]


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """One instance for the module's tests (its storage is created once, in seconds)."""
    folder = Path(tempfile.mkdtemp(prefix="bm-upgrade-progress-"))
    prepare_instance(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(folder))
        yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_run_failing_in_preflight_shows_each_step_and_no_dagster_line(
    home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    outcome = run_upgrade(
        unanswered(tmp_path, "progress"),
        display=ProgressDisplay(out, live=False),
        on_run_id=lambda _: None,
        verbose=False,
    )
    assert not outcome.success and outcome.failure
    short = outcome.run_id[:8]
    lines = out.getvalue().splitlines()
    # No past run: the prediction comes from the timeouts, and says so.
    assert lines[0].startswith(f"run {short}: 8 step(s) to run, predicted at most ")
    assert lines[0].endswith("(the inventory's timeouts (no past run))")
    assert lines[1] == "preflight: running"
    assert re.fullmatch(r"preflight: failed after [0-9.]+ s", lines[2]), lines[2]
    assert lines[3:-1] == [f"{step}: skipped" for step in AFTER_PREFLIGHT]
    assert re.fullmatch(rf"run {short} ended in .*: 1 failed, 7 skipped", lines[-1]), lines[-1]
    # Dagster's console said nothing (its lines come with --verbose only).
    captured = capfd.readouterr()
    assert " - dagster - " not in captured.err + captured.out


def test_a_run_that_cannot_be_read_is_one_notice_and_the_watch_ends_quietly(home: Path) -> None:
    out = io.StringIO()
    display = ProgressDisplay(out, live=False)
    watch = RunWatch(display, [], None)
    with dg.DagsterInstance.get() as inst:
        watch.follow(inst, "no-such-run")
        watch.finish()
    assert (
        out.getvalue()
        == "progress: cannot read run no-such-run (no such run in the instance); not shown\n"
    )
    assert watch.state is None


def test_stripes_name_their_servers_and_their_two_steps(tmp_path: Path) -> None:
    (stripe,) = stripes_of(load_inventory(unanswered(tmp_path, "stripes")))
    assert (stripe.name, stripe.servers) == ("east/stripe1", ("tsa-a1", "tsa-a2"))
    assert (stripe.mirrors_step, stripe.failover_step) == (
        "upgrade_mirrors_east_stripe1",
        "failover_east_stripe1",
    )
