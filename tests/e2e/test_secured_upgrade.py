"""A secured region (HTTPS, user and password on its management ports) upgraded through the
Dagster job beside a plain one: no acknowledged write lost, the safety rules kept, and the
management password nowhere in the hosts' journal, the run's event log or its step records
(it travels only in the REST requests and on the scripts' standard input)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from bm_upgrade.defs.launch import run_upgrade
from tests.e2e.conftest import E2ESandbox, e2e_sandbox
from tests.e2e.journal_check import violations

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dagster_home")]
TOPOLOGIES = Path(__file__).parent / "topologies"


@pytest.fixture(scope="module")
def secured() -> Iterator[E2ESandbox]:
    with e2e_sandbox(str(TOPOLOGIES / "secured.yaml")) as sb:
        yield sb


def test_a_secured_region_is_upgraded_and_its_password_stays_secret(
    secured: E2ESandbox,
) -> None:
    password = (secured.directory / "security" / "management-password").read_text().strip()
    assert len(password) >= 16
    east = next(r for r in secured.inventory.regions if r.name == "east")
    assert east.management_security is not None
    assert secured.inventory.management_for(east) is not None
    since = time.time()
    outcome = run_upgrade(secured.inventory_path)
    assert outcome.success, outcome.failure
    assert outcome.report and "Every node runs 4.2.1." in outcome.report
    until = time.time()
    assert (
        violations(secured.journal_path, secured.inventory, "4.2.1", since=since, until=until) == []
    )
    assert secured.verify()["lost"] == 0
    # The secured servers were stopped by their script with the connection options.
    commands = [e["command"] for e in secured.journal(since) if e["event"] == "command"]
    stops = [c for c in commands if "stop-tc-server.sh" in c and "--secured" in c]
    assert len(stops) >= 2
    assert all('-u bm-admin -w "$(cat)"' in c for c in stops)
    # Each stripe's data was backed up first, the secured one over HTTPS with the login.
    backups = [e for e in secured.journal(since) if e["event"] == "data_backup"]
    assert sorted(e["server"] for e in backups) == ["east-s1-a", "west-s1-a"]
    for backup in backups:  # before the first stop of its own stripe's servers
        region = backup["server"].split("-")[0]
        stop_times = [
            e["t"]
            for e in secured.journal(since)
            if e["event"] == "command"
            and "stop-tc-server.sh" in e["command"]
            and f"-n {region}-" in e["command"]
        ]
        assert stop_times and backup["t"] < min(stop_times), backup
    secured_backup = [c for c in commands if "backup-data.sh" in c and "https://" in c]
    assert len(secured_backup) == 1 and '-u bm-admin -w "$(cat)"' in secured_backup[0]
    # The password is in no journal line, no event of the run, no step record.
    journal = secured.journal_path.read_text(encoding="utf-8")
    assert password not in journal
    records = dg.DagsterInstance.get().all_logs(outcome.run_id)
    assert records
    assert all(password not in dg.serialize_value(record) for record in records)
    assert password not in (outcome.report or "")
