"""What `bm-upgrade run` and `rerun` show while a run goes on, on a real sandbox: output to a
file is not a terminal, so the progress comes as plain lines, one per step state change, with
no Dagster log line unless --verbose asks for them; a failed step, the steps not run and the
final sentence show, never a traceback.

The tests share one `small` sandbox and run in file order: an upgrade, then a rollback that
fails (a fault) and its re-execution.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bm_upgrade.sandbox import faults
from tests.e2e.conftest import E2ESandbox
from tests.e2e.test_interrupted_run import Command, bm_upgrade
from tests.e2e.ui_servers import BEFORE_STOPS, FROM_FIRST_STOP

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("dagster_home")]

STEPS = [
    "preflight",
    "download",
    "stage_kit",
    "upgrade_mirrors_east_stripe1",
    "failover_east_stripe1",
    "verify_servers",
    "restart_clients_1",
    "report",
]
assert set(STEPS) == BEFORE_STOPS | FROM_FIRST_STOP
DAGSTER_LINE = re.compile(r" - dagster - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - ")


def finished(args: list[str], folder: Path, name: str) -> Command:
    command = bm_upgrade(args, folder, name)
    try:
        command.proc.wait(timeout=300)
    finally:
        command.stop()
    assert "Traceback" not in command.stderr
    return command


def said(command: Command, step: str) -> list[str]:
    """The command's lines about ``step``."""
    return [line for line in command.stderr.splitlines() if line.startswith(f"{step}: ")]


def test_a_run_shows_one_line_per_step_state_and_no_dagster_line(
    small_sandbox: E2ESandbox, tmp_path: Path
) -> None:
    command = finished(["run", str(small_sandbox.inventory_path)], tmp_path, "run")
    assert command.proc.returncode == 0, command.stderr[-3000:]
    assert "Every node runs 4.2.1." in command.stdout
    err = command.stderr.splitlines()
    assert not [line for line in err if DAGSTER_LINE.search(line)]
    short = command.run_id()[:8]
    # Once, at the start: what runs and what the time left rests on.
    assert err[0].startswith(f"run {short}: 8 step(s) to run, predicted ")
    for step in STEPS:
        running, done = said(command, step)
        assert running == f"{step}: running"
        assert re.fullmatch(rf"{step}: done in [0-9.]+ (s|min \d\d s)(; .*)?", done), done
    # The stripe's servers counted as its two steps end; the time left as steps end.
    assert "; stripe east/stripe1 1/2 servers" in said(command, STEPS[3])[1]
    assert "; stripe east/stripe1 2/2 servers" in said(command, STEPS[4])[1]
    assert "left" in said(command, "preflight")[1]
    assert [line for line in err if line.startswith(f"run {short} ended in ")] == [err[-1]]
    assert err[-1].endswith(": 8 done")
    assert len(err) == 1 + 2 * len(STEPS) + 1


def test_a_failed_step_shows_with_dagster_lines_then_rerun_shows_the_steps_it_runs(
    small_sandbox: E2ESandbox, tmp_path: Path
) -> None:
    """A rollback whose mirror cannot start, run with --verbose: Dagster's log lines are back,
    among the progress lines; re-executed without, they are gone again."""
    inventory = str(small_sandbox.inventory_path)
    with faults.injected(small_sandbox.directory, "crash-on-start", "4.2.0"):
        failed = finished(["run", "--verbose", "--to", "4.2.0", inventory], tmp_path, "rollback")
    assert failed.proc.returncode == 1, failed.stderr[-3000:]
    err = failed.stderr.splitlines()
    dagster = [line for line in err if DAGSTER_LINE.search(line)]
    assert any(" - preflight - preflight: " in line for line in dagster), dagster[:5]
    assert any(" - upgrade_mirrors_east_stripe1 - stop " in line for line in dagster)
    first = "upgrade_mirrors_east_stripe1"
    assert re.fullmatch(
        rf"{first}: failed after .*; stripe east/stripe1 0/2 servers", said(failed, first)[1]
    )
    for step in FROM_FIRST_STOP - {first}:
        assert said(failed, step) == [f"{step}: skipped"]
    # The command's one sentence naming the failed step, then the way on.
    sentences = [line for line in err if line.startswith("failed: ")]
    assert len(sentences) == 1 and sentences[0].startswith(f"failed: step {first} failed: ")
    assert err[-1] == f"after fixing the cause: bm-upgrade rerun {failed.run_id()}"

    again = finished(["rerun", failed.run_id()], tmp_path, "rerun")
    assert again.proc.returncode == 0, again.stderr[-3000:]
    assert "Every node runs 4.2.0." in again.stdout
    lines = again.stderr.splitlines()
    assert lines[0].startswith(
        f"run {again.run_id()[:8]} (re-execution of {failed.run_id()[:8]}): 5 step(s) to run"
    )
    for step in BEFORE_STOPS:
        assert said(again, step) == []
    for step in FROM_FIRST_STOP:
        assert [line.split(" in ")[0] for line in said(again, step)] == [
            f"{step}: running",
            f"{step}: done",
        ]
    assert not [line for line in lines if DAGSTER_LINE.search(line)]
