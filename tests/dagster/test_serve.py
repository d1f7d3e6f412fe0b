"""`make serve` (deploy/serve.sh): what it refuses before starting anything, in one sentence
and exit 2; and the rehearsal without BM_UPGRADE_PG_URL, on a PostgreSQL of its own reachable
through a Unix socket only, stopped with everything else by SIGTERM.
(tests/e2e/test_production_shape.py runs upgrades through it against the tests' PostgreSQL.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bm_upgrade.definitions import INVENTORY_DIR_ENV
from bm_upgrade.defs.instance import INSTANCE_YAML
from bm_upgrade.defs.storage import PG_URL_ENV
from tests.dagster import processes
from tests.dagster.processes import alive, descendants, free_port
from tests.e2e.serve_process import REPO, SERVE, start_serve, stop_serve
from tests.pg import server_programs


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder the postgres user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="bm-upgrade-serve-"))
    path.chmod(0o711)
    (path / "inventories").mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def env_for(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {PG_URL_ENV, INVENTORY_DIR_ENV}}
    return {
        **env,
        "DAGSTER_HOME": str(folder / "home"),
        "BIN": str(Path(sys.executable).parent),
        "UI_PORT": str(free_port()),
        "BM_UPGRADE_CODE_SERVER_PORT": str(free_port()),
        **extra,
    }


def refused(env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", str(SERVE)],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    return line


def test_without_inventories_nothing_starts(folder: Path) -> None:
    line = refused(env_for(folder))
    assert line.startswith(f"error: {INVENTORY_DIR_ENV} is not set: set it to the folder of ")
    assert not (folder / "home").exists()


def test_an_instance_on_sqlite_is_not_served(folder: Path) -> None:
    home = folder / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    env = env_for(
        folder,
        **{
            INVENTORY_DIR_ENV: str(folder / "inventories"),
            PG_URL_ENV: "postgresql+psycopg2://u:pw-never-shown@127.0.0.1:1/d",
        },
    )
    line = refused(env)
    assert line == (
        f"error: {home / 'dagster.yaml'} keeps the run history in SQLite; make serve runs "
        "against PostgreSQL: point DAGSTER_HOME at another folder, or start from "
        f"{REPO / 'deploy' / 'dagster-postgres.yaml'}"
    )
    assert sorted(p.name for p in home.iterdir()) == ["dagster.yaml"]


def test_a_url_for_another_driver_is_refused(folder: Path) -> None:
    env = env_for(
        folder,
        **{
            INVENTORY_DIR_ENV: str(folder / "inventories"),
            PG_URL_ENV: "postgresql://u:pw-never-shown@127.0.0.1:1/d",
        },
    )
    line = refused(env)
    assert line.startswith(f"error: ${PG_URL_ENV} starts with 'postgresql://'; ")
    assert "pw-never-shown" not in line


@pytest.mark.slow
def test_rehearsal_on_its_own_postgresql_stops_with_everything(folder: Path) -> None:
    if server_programs() is None:
        pytest.skip("PostgreSQL's server programs are missing: install postgresql")
    env = env_for(folder, **{INVENTORY_DIR_ENV: str(folder / "inventories")})
    log = folder / "serve.log"
    serve, ui = start_serve(env, log)
    try:
        assert ui.loaded_location() == "bm_upgrade"
        text = log.read_text()
        found = re.search(r"local PostgreSQL for the rehearsal: pid (\d+), socket in (\S+)", text)
        assert found, text[-3000:]
        pg_pid, socket_dir = int(found.group(1)), Path(found.group(2))
        assert socket_dir == folder / "home" / "postgres-socket"
        assert (socket_dir / ".s.PGSQL.5432").is_socket()
        assert (folder / "home" / "postgres" / "PG_VERSION").is_file()
        # Only the socket: postmaster.pid's sixth line, the first TCP address, is empty.
        pid_file = (folder / "home" / "postgres" / "postmaster.pid").read_text().splitlines()
        assert pid_file[0] == str(pg_pid) and pid_file[4] == str(socket_dir)
        assert pid_file[5] == ""
        started = descendants(serve.pid)
        assert pg_pid in started and len(started) >= 4
    finally:
        stop_serve(serve)
    assert serve.returncode == 0, log.read_text()[-3000:]
    processes.wait_until(
        lambda: not any(alive(pid) for pid in started), 30, "every process serve.sh started"
    )
