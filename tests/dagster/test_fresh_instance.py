"""A fresh DAGSTER_HOME, prepared once, then dagster-webserver and dagster-daemon started at the
same moment (as `make ui` and the UI tests do): the code location loads and the daemon runs,
every time. Before :func:`prepare_instance`, both servers created the SQLite storage at once and
alembic found two heads now and then."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from bm_upgrade.definitions import INVENTORY_DIR_ENV
from bm_upgrade.defs.instance import INSTANCE_YAML, prepare_instance
from bm_upgrade.defs.sensors import INTERVAL_ENV
from tests.dagster import processes
from tests.unit.inventories import minimal

LOCATIONS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def graphql(url: str, query: str) -> dict[str, Any] | None:
    """The answer's data, or None while the webserver does not answer yet."""
    body = json.dumps({"query": query}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except OSError:
        return None
    assert "errors" not in answer, answer["errors"]
    data: dict[str, Any] = answer["data"]
    return data


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_both_and_check(home: Path, inventories: Path) -> None:
    """Webserver and daemon started together on ``home``; the location loads in the webserver
    and every daemon the instance needs beats without errors."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {INVENTORY_DIR_ENV: str(inventories), INTERVAL_ENV: "3600"}
    module = ["-m", "bm_upgrade.definitions"]
    web_log, daemon_log = home / "webserver.log", home / "daemon.log"
    started = [
        processes.start(
            "dagster-webserver", ["-h", "127.0.0.1", "-p", str(port), *module], home, web_log, env
        ),
        processes.start("dagster-daemon", ["run", *module], home, daemon_log, env),
    ]
    try:
        entries: list[dict[str, Any]] = []

        def loaded() -> bool:
            data = graphql(url, LOCATIONS)
            if data is None:
                return False
            entries[:] = data["workspaceOrError"]["locationEntries"]
            return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)

        processes.wait_until(
            loaded, 120, f"the code location to load (log: {web_log})", interval=0.5
        )
        (entry,) = entries
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry

        with dg.DagsterInstance.from_config(str(home)) as inst:
            required = set(inst.get_required_daemon_types())

            def beating() -> bool:
                beats = inst.get_daemon_heartbeats()
                return required <= set(beats)

            processes.wait_until(
                beating, 120, f"every daemon's heartbeat (log: {daemon_log})", interval=0.5
            )
            errors = {
                kind: beat.errors
                for kind, beat in inst.get_daemon_heartbeats().items()
                if beat.errors
            }
        assert not errors, errors
        for log in (web_log, daemon_log):
            assert "alembic" not in log.read_text(errors="replace"), log.read_text()
        assert all(proc.poll() is None for proc in started), daemon_log.read_text()
    finally:
        for proc in started:
            processes.stop(proc)


@pytest.mark.slow
def test_webserver_and_daemon_start_together_on_a_fresh_home_every_time(tmp_path: Path) -> None:
    inventories = tmp_path / "inventories"
    inventories.mkdir()
    (inventories / "test.yaml").write_text(yaml.safe_dump(minimal()))
    for attempt in range(3):
        home = Path(tempfile.mkdtemp(prefix=f"bm-upgrade-fresh{attempt}-"))
        try:
            prepare_instance(home)
            assert (home / "dagster.yaml").read_text() == INSTANCE_YAML
            assert (home / "history" / "runs.db").exists()
            assert (home / "schedules" / "schedules.db").exists()
            start_both_and_check(home, inventories)
        finally:
            shutil.rmtree(home, ignore_errors=True)


def test_prepare_instance_keeps_an_operators_own_settings(tmp_path: Path) -> None:
    own = "telemetry:\n  enabled: false\n"
    (tmp_path / "dagster.yaml").write_text(own)
    assert prepare_instance(tmp_path) == tmp_path / "dagster.yaml"
    assert (tmp_path / "dagster.yaml").read_text() == own
    assert (tmp_path / "history" / "runs" / "index.db").exists()


def test_prepare_instance_stamps_every_database_once(tmp_path: Path) -> None:
    """The servers then find every database created and at alembic's one head."""
    prepare_instance(tmp_path)
    for db in ("history/runs.db", "history/runs/index.db", "schedules/schedules.db"):
        with sqlite3.connect(tmp_path / db) as conn:
            heads = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        assert len(heads) == 1, (db, heads)


OPEN_INSTANCE = "from bm_upgrade.defs.instance import instance; instance()"


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_command_lines_starting_at_once_on_a_fresh_home_stamp_it_once(
    tmp_path: Path, attempt: int
) -> None:
    """Four processes open a fresh DAGSTER_HOME through `bm-upgrade run`'s own path
    (defs/instance.py's ``instance``) at the same moment: one at a time creates the storage, so
    every database ends at alembic's one head and every process succeeds."""
    openers = [
        processes.start("python", ["-c", OPEN_INSTANCE], tmp_path, tmp_path / f"open{i}.log")
        for i in range(4)
    ]
    try:
        codes = [proc.wait(timeout=120) for proc in openers]
    finally:
        for proc in openers:
            processes.stop(proc)
    logs = [(tmp_path / f"open{i}.log").read_text() for i in range(4)]
    assert codes == [0, 0, 0, 0], logs
    for db in ("history/runs.db", "history/runs/index.db", "schedules/schedules.db"):
        with sqlite3.connect(tmp_path / db) as conn:
            heads = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        assert len(heads) == 1, (db, heads)
