"""Which runs `rerun` re-executes: failed and canceled ones, and one left STARTED by a worker
process that is gone (marked FAILURE first, and said so); a run whose worker still runs is
refused. Also Ctrl-C handling of the command (interrupts.py) on this very process.

The cluster's hosts are loopback addresses on a port where nothing listens: a re-execution
fails in preflight at once ("cannot be reached"), proof enough that it was started.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from bm_upgrade.cli import main
from bm_upgrade.defs.jobs import CLUSTER_TAG, INVENTORY_TAG
from bm_upgrade.defs.launch import rerun, run_upgrade
from bm_upgrade.defs.launcher import WORKER_PID_TAG, worker_tags
from bm_upgrade.errors import UserError
from bm_upgrade.interrupts import FinishSafelyOnSignals
from bm_upgrade.procedure import halt
from tests.e2e.conftest import dagster_home_env
from tests.unit.inventories import unanswered

# Whole runs on an instance on disk, with worker processes: seconds each.
pytestmark = pytest.mark.slow

UNREACHABLE = "cannot be reached"


@pytest.fixture
def home() -> Iterator[Path]:
    with dagster_home_env("bm-upgrade-rerun-") as folder:
        yield folder


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    """A valid inventory whose servers nobody answers for (refused at once)."""
    return unanswered(tmp_path, "rerun")


def add_run(
    inventory: Path,
    status: dg.DagsterRunStatus,
    tags: dict[str, str],
    config: dict[str, object] | None = None,
) -> str:
    """A run of the inventory's job in ``status``: a copy of a real run (one that failed in
    preflight), so that it has the execution plan a re-execution starts from; ``config``
    replaces its preflight config."""
    real = run_upgrade(inventory)
    assert real.failure and UNREACHABLE in real.failure
    run_id = str(uuid.uuid4())
    with dg.DagsterInstance.get() as inst:
        parent = inst.get_run_by_id(real.run_id)
        assert parent is not None
        inst.add_run(
            parent._replace(
                run_id=run_id,
                status=status,
                tags={CLUSTER_TAG: "test", INVENTORY_TAG: str(inventory), **tags},
                run_config=parent.run_config
                if config is None
                else {**parent.run_config, "ops": {"preflight": {"config": config}}},
            )
        )
    return run_id


def status_of(run_id: str) -> dg.DagsterRunStatus:
    with dg.DagsterInstance.get() as inst:
        run = inst.get_run_by_id(run_id)
    assert run is not None
    return run.status


def dead_worker_tags() -> dict[str, str]:
    """The worker tags of a process that ran and is gone (reaped)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import os; print(os.getpid())"], stdout=subprocess.PIPE, text=True
    )
    out, _ = proc.communicate(timeout=30)
    return {**worker_tags(), WORKER_PID_TAG: out.strip(), "bm_upgrade/worker_start": "gone"}


@pytest.mark.usefixtures("home")
def test_a_run_whose_worker_runs_is_refused(inventory: Path) -> None:
    run_id = add_run(inventory, dg.DagsterRunStatus.STARTED, worker_tags())
    with pytest.raises(
        UserError,
        match=rf"run {run_id} is still STARTED \(its worker, "
        rf"process {os.getpid()} on .*, is running\)",
    ):
        rerun(run_id)
    assert status_of(run_id) == dg.DagsterRunStatus.STARTED


@pytest.mark.usefixtures("home")
def test_a_run_whose_worker_is_gone_is_marked_failed_and_re_executed(inventory: Path) -> None:
    run_id = add_run(inventory, dg.DagsterRunStatus.STARTED, dead_worker_tags())
    notices: list[str] = []
    outcome = rerun(run_id, on_notice=notices.append)
    assert status_of(run_id) == dg.DagsterRunStatus.FAILURE
    (notice,) = notices
    assert notice.startswith(f"run {run_id} was left STARTED but its worker, process ")
    assert "is gone (killed?): marked it FAILURE" in notice
    assert outcome.failure and UNREACHABLE in outcome.failure  # re-executed


@pytest.mark.usefixtures("home")
def test_a_canceled_run_is_re_executed_and_a_successful_one_refused(inventory: Path) -> None:
    canceled = add_run(inventory, dg.DagsterRunStatus.CANCELED, {})
    outcome = rerun(canceled)
    assert outcome.failure and UNREACHABLE in outcome.failure
    done = add_run(inventory, dg.DagsterRunStatus.SUCCESS, {})
    with pytest.raises(UserError, match="ended SUCCESS, not FAILURE or CANCELED"):
        rerun(done)


@pytest.mark.usefixtures("home")
def test_a_run_whose_config_is_not_run_config_any_more_is_refused_naming_the_key(
    inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run made with run config keys this version does not take (flat timeout keys, as
    before the run config read like the inventory's policy): one message, exit code 2,
    nothing re-executed."""
    config = {"target_version": "4.2.1", "sync_timeout_s": 3.0}
    run_id = add_run(inventory, dg.DagsterRunStatus.FAILURE, {}, config=config)
    with dg.DagsterInstance.get() as inst:
        runs_before = len(inst.get_runs())
    assert main(["rerun", run_id]) == 2
    # Only the CLI's own lines: an earlier test's Dagster log handler may still write here.
    (err,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert err.startswith("error: run config: sync_timeout_s is not a run config key")
    assert f"run {run_id} cannot be re-executed; start a new run with `bm-upgrade run " in err
    with dg.DagsterInstance.get() as inst:
        assert len(inst.get_runs()) == runs_before


def test_signals_ask_for_a_safe_stop_and_never_raise() -> None:
    out = io.StringIO()
    before = signal.getsignal(signal.SIGINT)
    halt.reset()
    try:
        with FinishSafelyOnSignals(out) as signals:
            os.kill(os.getpid(), signal.SIGINT)  # handled before kill() returns
            assert halt.stop_reason() == "the operator interrupted bm-upgrade (SIGINT)"
            os.kill(os.getpid(), signal.SIGTERM)
            # A run starts by forgetting earlier stops: announcing its id asks again.
            halt.reset()
            announced: list[str] = []
            signals.on_run_id(announced.append)("r1")
            assert announced == ["r1"] and halt.stop_reason() is not None
        first, second = out.getvalue().splitlines()
        assert first.startswith("SIGINT received: finishing the current step safely")
        assert second.startswith("SIGTERM received: still finishing the current step safely")
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        halt.reset()
