"""The instance on PostgreSQL (deploy/dagster-postgres.yaml): bm_upgrade's settings with run,
event log and schedule storage in a real PostgreSQL server (tests/pg.py), the URL read from
the environment, and one sentence (never the password) for every setting Dagster would fail on.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from bm_upgrade.defs.instance import INSTANCE_YAML, prepare_instance
from bm_upgrade.defs.launcher import LocalRunLauncher
from bm_upgrade.defs.storage import PG_URL_ENV, check_storage
from bm_upgrade.errors import UserError
from tests.pg import PostgresServer

DEPLOY_YAML = Path(__file__).resolve().parents[2] / "deploy" / "dagster-postgres.yaml"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    shutil.copy(DEPLOY_YAML, tmp_path / "dagster.yaml")
    return tmp_path


def test_postgres_settings_are_bm_upgrades_on_postgres() -> None:
    settings = yaml.safe_load(DEPLOY_YAML.read_text())
    storage = {"postgres": {"postgres_url": {"env": PG_URL_ENV}}}
    # The run queue (one run per cluster) and run monitoring with the pid-checking launcher.
    assert settings == {**yaml.safe_load(INSTANCE_YAML), "storage": storage}


def test_unset_url_is_refused_naming_the_variable(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PG_URL_ENV, raising=False)
    with pytest.raises(UserError) as caught:
        prepare_instance(home)
    assert f"${PG_URL_ENV}, which is not set: export {PG_URL_ENV}=postgresql+psycopg2://" in str(
        caught.value
    )
    assert not list(home.glob("*.db")) and not (home / "history").exists()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_a_url_for_another_driver_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    monkeypatch.setenv(PG_URL_ENV, f"{scheme}://dagster:s3cret-pw@127.0.0.1:5432/dagster")
    with pytest.raises(UserError) as caught:
        check_storage(home)
    message = str(caught.value)
    assert message.startswith(f"${PG_URL_ENV} starts with '{scheme}://'; ")
    assert "needs 'postgresql+psycopg2://'" in message
    assert "s3cret-pw" not in message


def test_a_password_in_the_file_is_refused(home: Path) -> None:
    text = (home / "dagster.yaml").read_text()
    url = "postgresql+psycopg2://dagster:s3cret-pw@127.0.0.1/dagster"
    (home / "dagster.yaml").write_text(
        text.replace(f"env: {PG_URL_ENV}", "").replace("postgres_url:\n", f"postgres_url: {url}\n")
    )
    with pytest.raises(UserError) as caught:
        check_storage(home)
    assert "storage.postgres.postgres_url holds a password; read the URL from the environment" in (
        str(caught.value)
    )
    assert "s3cret-pw" not in str(caught.value)


def test_sqlite_settings_need_no_check(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text(INSTANCE_YAML)
    check_storage(tmp_path)  # nothing to log in to


def test_a_server_that_is_not_there_is_named(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on while the test runs
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        monkeypatch.setenv(
            PG_URL_ENV, f"postgresql+psycopg2://dagster:s3cret-pw@127.0.0.1:{port}/history"
        )
        with pytest.raises(UserError) as caught:
            prepare_instance(home)
    message = str(caught.value)
    assert message.startswith(
        f"the PostgreSQL server at 127.0.0.1:{port} (database history, named by "
        f"{home / 'dagster.yaml'}) cannot be used: "
    )
    assert "Connection refused" in message and "s3cret-pw" not in message


@pytest.mark.slow
def test_a_refused_login_is_named_without_the_password(
    postgres: PostgresServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = postgres.url().replace(postgres.password, "not-the-pw-123")
    monkeypatch.setenv(PG_URL_ENV, wrong)
    with pytest.raises(UserError) as caught:
        check_storage(home)
    message = str(caught.value)
    assert f"127.0.0.1:{postgres.port} (database postgres" in message
    assert 'password authentication failed for user "bm_upgrade"' in message
    assert "not-the-pw-123" not in message


@dg.op
def hello() -> int:
    return 1


@dg.job
def tiny() -> None:
    hello()


@pytest.mark.slow
def test_run_event_and_schedule_storage_live_in_postgres(
    postgres: PostgresServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PG_URL_ENV, postgres.create_database("storage_test"))
    prepare_instance(home)
    prepare_instance(home)  # a second start finds the schema made and stamped
    with dg.DagsterInstance.from_config(str(home)) as inst:
        assert isinstance(inst.run_storage, PostgresRunStorage)
        assert isinstance(inst.event_log_storage, PostgresEventLogStorage)
        assert isinstance(inst.schedule_storage, PostgresScheduleStorage)
        assert isinstance(inst.run_launcher, LocalRunLauncher)
        assert inst.run_monitoring_enabled
        result = tiny.execute_in_process(instance=inst)
        assert result.success
    # No SQLite database in DAGSTER_HOME (its storage/ folder keeps the op outputs and logs).
    assert [p.name for p in home.rglob("*.db")] == []
    assert not (home / "history").exists() and not (home / "schedules").exists()
    runs = postgres.query("storage_test", "SELECT run_id, status FROM runs")
    assert runs == [(result.run_id, "SUCCESS")]
    steps = postgres.query(
        "storage_test",
        "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
        result.run_id,
        "STEP_SUCCESS",
    )
    assert steps == [(1,)]
    tables = {
        row[0]
        for row in postgres.query(
            "storage_test", "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    assert {"runs", "event_logs", "instigators", "jobs", "job_ticks", "alembic_version"} <= tables
    # The URL (and its password) is in no stored row: the instance refers to the variable.
    dump = postgres.query("storage_test", "SELECT string_agg(run_body, '') FROM runs")[0][
        0
    ] + "".join(r[0] for r in postgres.query("storage_test", "SELECT event FROM event_logs"))
    assert postgres.password not in dump
