"""What `bm-upgrade run` and `rerun` show while a run goes on, on a real sandbox: output to a
file is not a terminal, so the progress comes as plain lines, one per step state change, with
no Dagster log line unless --verbose asks for them; a failed step, the steps not run and the
final sentence show, never a traceback.

One `small` sandbox, two commands: an upgrade that fails on a fault, run with --verbose, then
its re-execution without. (tests/dagster/test_progress_watch.py follows a whole plan failing
in preflight; tests/unit/test_progress_view.py the lines themselves.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bm_upgrade.sandbox import faults
from tests.e2e.conftest import E2ESandbox
from tests.e2e.test_interrupted_run import Command, bm_upgrade
from tests.e2e.ui_servers import BEFORE_STOPS

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("dagster_home")]

MIRRORS = "upgrade_mirrors_east_stripe1"
AFTER = ["failover_east_stripe1", "verify_servers", "restart_clients_1", "report"]
"""The small job's steps after the stripe's mirrors step, in the order they run."""
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


def test_a_failed_run_with_verbose_then_its_rerun_show_one_line_per_step_state(
    small_sandbox: E2ESandbox, tmp_path: Path
) -> None:
    inventory = str(small_sandbox.inventory_path)
    with faults.injected(small_sandbox.directory, "crash-on-start", "4.2.1"):
        failed = finished(["run", "--verbose", inventory], tmp_path, "run")
    assert failed.proc.returncode == 1, failed.stderr[-3000:]
    err = failed.stderr.splitlines()
    # --verbose: Dagster's lines of each step are there, the progress lines among them.
    dagster = [line for line in err if DAGSTER_LINE.search(line)]
    assert any(" - preflight - preflight: " in line for line in dagster), dagster[:5]
    assert any(f" - {MIRRORS} - stop " in line for line in dagster), dagster[-5:]
    for step in BEFORE_STOPS:
        running, done = said(failed, step)
        assert running == f"{step}: running"
        assert re.fullmatch(rf"{step}: done in [0-9.]+ s(; .* left)?", done), done
    assert said(failed, MIRRORS)[0] == f"{MIRRORS}: running"
    assert re.fullmatch(
        rf"{MIRRORS}: failed after [0-9.]+ s; stripe east/stripe1 0/2 servers",
        said(failed, MIRRORS)[1],
    )
    for step in AFTER:
        assert said(failed, step) == [f"{step}: skipped"]
    # The command's one sentence naming the failed step, then the way on.
    sentences = [line for line in err if line.startswith("failed: ")]
    assert len(sentences) == 1 and sentences[0].startswith(f"failed: step {MIRRORS} failed: ")
    assert err[-1] == f"after fixing the cause: bm-upgrade rerun {failed.run_id()}"

    again = finished(["rerun", failed.run_id()], tmp_path, "rerun")
    assert again.proc.returncode == 0, again.stderr[-3000:]
    assert "Every node runs 4.2.1." in again.stdout
    lines = [line for line in again.stderr.splitlines() if not line.startswith("warning: ")]
    assert not [line for line in lines if DAGSTER_LINE.search(line)]
    short, parent = again.run_id()[:8], failed.run_id()[:8]
    # Once, at the start: what runs (the re-executed steps only) and what the time left
    # rests on; then two lines a step, in order; then how the run ended.
    assert lines[0].startswith(f"run {short} (re-execution of {parent}): 5 step(s) to run, ")
    assert "predicted" in lines[0]
    steps = [MIRRORS, *AFTER]
    assert [line.split(" in ")[0].split(";")[0] for line in lines[1:-1]] == [
        f"{step}: {state}" for step in steps for state in ("running", "done")
    ]
    assert "; stripe east/stripe1 1/2 servers" in said(again, MIRRORS)[1]
    assert "; stripe east/stripe1 2/2 servers" in said(again, AFTER[0])[1]
    assert re.fullmatch(rf"run {short} \(re-execution of {parent}\) ended in .*: 5 done", lines[-1])
