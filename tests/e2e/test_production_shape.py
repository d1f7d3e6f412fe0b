"""The production shape, as `make serve` starts it (deploy/serve.sh): run history in a real
PostgreSQL (tests/pg.py), the code location in its own gRPC code server, dagster-daemon and
dagster-webserver reading it through deploy/workspace-grpc.yaml; runs launched and
re-executed through GraphQL, a killed run worker marked failed by the daemon's run
monitoring, and SIGTERM to serve.sh stopping every process it started.

The module's tests share one sandbox and one serve.sh and run in file order.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bm_upgrade.definitions import INVENTORY_DIR_ENV
from bm_upgrade.defs.config import UpgradeConfig
from bm_upgrade.defs.storage import PG_URL_ENV
from bm_upgrade.procedure.kit import CACHE_DIR_ENV
from tests.dagster import processes
from tests.dagster.processes import alive, descendants, free_port
from tests.e2e.conftest import E2ESandbox, start_e2e_sandbox, stop_e2e_sandbox
from tests.e2e.fault_matrix import assert_fault_row, wait_served
from tests.e2e.graphql import GraphQL, answers, succeeded
from tests.e2e.journal_check import stops
from tests.e2e.serve_process import start_serve, stop_serve
from tests.e2e.ui_servers import BEFORE_STOPS, FROM_FIRST_STOP
from tests.pg import PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DATABASE = "production_shape"
JOB = "upgrade_small"
STEPS = BEFORE_STOPS | FROM_FIRST_STOP
"""Every step of the small sandbox's job."""
STARTED = re.compile(r"Started process for run \(pid: (\d+)\)")


@dataclass
class Shape:
    """serve.sh running against the module's sandbox and database."""

    serve: subprocess.Popen[bytes]
    log: Path
    home: Path
    ui: GraphQL
    sandbox: E2ESandbox
    postgres: PostgresServer

    def config(self, **changes: object) -> dict[str, object]:
        return {**UpgradeConfig.defaults_for(self.sandbox.inventory), **changes}

    def worker_pid(self, run_id: str) -> int | None:
        """The run worker's pid, from the run's engine event in PostgreSQL."""
        rows = self.postgres.query(
            DATABASE,
            "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
            run_id,
            "ENGINE_EVENT",
        )
        for (event,) in rows:
            found = STARTED.search(event)
            if found:
                return int(found.group(1))
        return None

    def messages(self, run_id: str) -> str:
        rows = self.postgres.query(
            DATABASE, "SELECT event FROM event_logs WHERE run_id = %s", run_id
        )
        return "\n".join(event for (event,) in rows)


@pytest.fixture(scope="module")
def shape(postgres: PostgresServer) -> Iterator[Shape]:
    url = postgres.create_database(DATABASE)
    home = Path(tempfile.mkdtemp(prefix="bm-upgrade-serve-"))
    # Run monitoring looks every second here (15 s in the shipped settings).
    settings = (REPO / "deploy" / "dagster-postgres.yaml").read_text()
    fast = settings.replace("poll_interval_seconds: 15", "poll_interval_seconds: 1")
    assert fast != settings
    (home / "dagster.yaml").write_text(fast)
    sandbox = start_e2e_sandbox("small")
    serve: subprocess.Popen[bytes] | None = None
    try:
        inventories = home / "inventories"
        inventories.mkdir()
        shutil.copy(sandbox.inventory_path, inventories / "small.yaml")
        port = free_port()
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "BIN": str(Path(sys.executable).parent),
            "UI_PORT": str(port),
            "BM_UPGRADE_CODE_SERVER_PORT": str(free_port()),
            PG_URL_ENV: url,
            INVENTORY_DIR_ENV: str(inventories),
            CACHE_DIR_ENV: str(home / "kits"),
        }
        log = home / "serve.log"
        serve, ui = start_serve(env, log)
        ui.location = ui.loaded_location()
        yield Shape(serve, log, home, ui, sandbox, postgres)
    finally:
        if serve is not None:
            stop_serve(serve)
        stop_e2e_sandbox(sandbox)
        shutil.rmtree(home, ignore_errors=True)


def test_upgrade_launched_through_graphql_succeeds(shape: Shape) -> None:
    run_id = shape.ui.launch(JOB, shape.config())
    run = shape.ui.wait(run_id)
    assert run["status"] == "SUCCESS", run
    assert succeeded(run) == STEPS
    # Launched by the code server: its worker was a process of its own.
    worker = shape.worker_pid(run_id)
    assert worker is not None and worker != shape.serve.pid
    assert shape.sandbox.verify()["lost"] == 0


def test_killed_worker_is_marked_failed_by_run_monitoring_then_reexecuted(
    shape: Shape,
) -> None:
    """Fault matrix row: the run worker killed (SIGKILL) mid-failover, once the active has
    stopped. Run monitoring marks the run failed naming the unfinished step and the way out,
    the stripe is served (its mirror took over), and re-execution from failure completes."""
    since = time.time()
    run_id = shape.ui.launch(JOB, shape.config(target_version="4.2.0"))
    processes.wait_until(
        lambda: len(stops(shape.sandbox.journal_path, since)) >= 2,
        180,
        "the rollback's failover to stop the stripe's active (its second stop)",
    )
    worker = shape.worker_pid(run_id)
    assert worker is not None
    # The worker and the code server process that spawned it die together (a crash of the
    # code server's machine or container): nobody is left to report the run but the daemon.
    parent = int(Path(f"/proc/{worker}/stat").read_text().rpartition(")")[2].split()[1])
    assert "api grpc" in Path(f"/proc/{parent}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    os.kill(parent, signal.SIGKILL)
    os.kill(worker, signal.SIGKILL)
    failed = shape.ui.wait(run_id, timeout=120)
    assert failed["status"] == "FAILURE", failed
    # Marked by run monitoring, from the launcher's look at the worker's pid: one sentence.
    found = re.search(r"worker status FAILED: '([^']*is gone[^']*)'", shape.messages(run_id))
    assert found, shape.messages(run_id)[-3000:]
    sentence = found.group(1)
    assert f"its worker, process {worker} on this host, is gone" in sentence
    # The stripe is served before anyone acts: the mirror took over from the stopped active.
    assert wait_served(shape.sandbox) == {}
    # The code location comes back (the UI's Reload starts a new code server process), and
    # the failed run is re-executed from its failed step.
    shape.ui.reload()
    again = shape.ui.wait(shape.ui.reexecute_from_failure(run_id), timeout=300)
    assert again["status"] == "SUCCESS", again
    assert "failover_east_stripe1" in succeeded(again)
    assert "preflight" not in succeeded(again) and "upgrade_mirrors_east_stripe1" not in succeeded(
        again
    )
    assert_fault_row(
        shape.sandbox,
        target="4.2.0",
        since=since,
        failure=sentence,
        names=["step failover_east_stripe1"],
        way_out=["re-execute", "bm-upgrade rerun"],
    )


def test_run_history_is_in_postgresql(shape: Shape) -> None:
    rows = shape.postgres.query(DATABASE, "SELECT status FROM runs ORDER BY create_timestamp")
    assert [status for (status,) in rows] == ["SUCCESS", "FAILURE", "SUCCESS"]
    # No SQLite run history beside it, and the database's password in no stored run.
    assert [p.name for p in shape.home.rglob("*.db")] == []
    bodies = shape.postgres.query(DATABASE, "SELECT run_body FROM runs")
    assert all(shape.postgres.password not in body for (body,) in bodies)
    # Each run's evidence report is in the same database: the two successful runs' from their
    # report step, the failed one's from the daemon's run-failure sensor.
    runs = [r for (r,) in shape.postgres.query(DATABASE, "SELECT run_id FROM runs ORDER BY id")]

    def reports() -> list[str]:
        rows = shape.postgres.query(
            DATABASE,
            "SELECT event FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
            "AND asset_key LIKE %s",
            '%"upgrade_report"%',
        )
        return [body for (body,) in rows]

    processes.wait_until(lambda: len(reports()) == 3, 60, "a report of each of the 3 runs")
    failed = runs[1]
    assert any(failed in body and "run-failure sensor" in body for body in reports())


def test_sigterm_to_serve_stops_everything_it_started(shape: Shape) -> None:
    started = descendants(shape.serve.pid)
    assert len(started) >= 3  # code server (and its server process), webserver, daemon
    stop_serve(shape.serve)
    assert shape.serve.returncode == 0, shape.log.read_text()[-3000:]
    processes.wait_until(
        lambda: not any(alive(pid) for pid in started), 30, "every process serve.sh started"
    )
    assert not answers(f"{shape.ui.url}/server_info")
