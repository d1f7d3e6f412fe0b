"""The upgrade job, run through Dagster's real execution APIs against a real sandbox, clients
writing throughout; every run's journal checked against the safety rules of docs/safety.md.

Tests of this module share one `small` sandbox (one stripe of two servers, one client) and run
in file order: dry run, upgrade, a rerun that changes nothing, rollback with backups deleted,
then the failure paths, each leaving the cluster healthy for the next.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from bm_upgrade.defs.launch import RunOutcome, rerun, run_upgrade
from bm_upgrade.probes import parse_version
from bm_upgrade.sandbox import faults
from tests.e2e.conftest import E2ESandbox, e2e_sandbox
from tests.e2e.fault_matrix import assert_fault_row
from tests.e2e.journal_check import changing_commands, stops, violations

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dagster_home")]


@pytest.fixture(scope="module")
def sandbox(dagster_home: Path) -> Iterator[E2ESandbox]:
    with e2e_sandbox("small") as sb:
        yield sb


def versions(sb: E2ESandbox) -> dict[str, str | None]:
    """Server -> version as the sandbox's own REST topology says (not the tool's probes)."""
    found: dict[str, str | None] = {name: None for name in sb.info["servers"]}
    for server in sb.info["servers"].values():
        url = (
            f"http://{server['host']}:{server['management_port']}"
            "/tc-management-api/v2/agents/topologies/servers"
        )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                data = json.loads(response.read())
        except (OSError, http.client.HTTPException):
            continue
        for entity in data["entities"]:
            for group in entity["serverGroupEntities"]:
                for srv in group["servers"]:
                    attrs = srv["attributes"]
                    said = attrs.get("Version") or ""
                    found[attrs["Name"]] = found[attrs["Name"]] or parse_version(said)
    return found


def states(sb: E2ESandbox) -> list[str]:
    from bm_upgrade.sandbox import cluster

    found = []
    for server in sb.info["servers"].values():
        stat = cluster.server_stat(server["host"], server["management_port"])
        found.append(stat["state"] if stat else "down")
    return sorted(found)


def assert_safe(sb: E2ESandbox, target: str, since: float) -> None:
    assert violations(sb.journal_path, sb.inventory, target, since=since, until=time.time()) == []
    assert sb.verify()["lost"] == 0


def crashed_rollback(sb: E2ESandbox) -> RunOutcome:
    """A run to 4.2.0 while that kit crashes on start: it fails at the stripe's mirror, the
    stripe keeps its ACTIVE, and the journal shows nothing unsafe but the mirror's crash."""
    since = time.time()
    with faults.injected(sb.directory, "crash-on-start", "4.2.0"):
        outcome = run_upgrade(sb.inventory_path, target="4.2.0")
    assert not outcome.success
    assert outcome.failure and "upgrade_mirrors_east_stripe1" in outcome.failure
    assert "ACTIVE-COORDINATOR" in states(sb), "the stripe lost its active"
    mirror = sb.inventory.regions[0].stripes[0].servers[1].name
    found = violations(
        sb.journal_path,
        sb.inventory,
        "4.2.0",
        since=since,
        until=time.time(),
        crash_expected=[mirror],
    )
    assert found == []
    return outcome


def test_dry_run_changes_nothing(sandbox: E2ESandbox) -> None:
    since = time.time()
    outcome = run_upgrade(sandbox.inventory_path, dry_run=True)
    assert outcome.success, outcome.failure
    assert outcome.report and "Dry run" in outcome.report
    assert "would failover-stop" in outcome.report
    assert changing_commands(sandbox.journal_path, since) == []
    assert stops(sandbox.journal_path, since) == []
    assert not [e for e in sandbox.journal(since) if e["event"] == "kit_unpacked"]


def test_upgrade_through_the_cli(sandbox: E2ESandbox) -> None:
    since = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "bm_upgrade.cli", "run", str(sandbox.inventory_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first = result.stdout.splitlines()[0]
    assert first.startswith("run_id: ")
    assert "Every node runs 4.2.1." in result.stdout
    assert states(sandbox) == ["ACTIVE-COORDINATOR", "PASSIVE-STANDBY"]
    assert_safe(sandbox, "4.2.1", since)
    # The mirror first, then the active through a failover, then the failback.
    a, b = (s.name for s in sandbox.inventory.regions[0].stripes[0].servers)
    assert stops(sandbox.journal_path, since)[:2] == [b, a]
    # The procedure's progress shows in the failover step's log in the UI (relayed to Dagster
    # off the step's thread), every line stored before the step's outcome.
    run_id = first.removeprefix("run_id: ").strip()
    records = [
        r
        for r in dg.DagsterInstance.get().all_logs(run_id)
        if r.step_key == "failover_east_stripe1"
    ]
    lines = [r for r in records if r.dagster_event is None]
    ended = next(
        r
        for r in records
        if r.dagster_event is not None and r.dagster_event.event_type_value == "STEP_SUCCESS"
    )
    assert any(
        "waited" in r.user_message and f"{b} PASSIVE-STANDBY" in r.user_message for r in lines
    ), [r.user_message for r in lines]
    assert any(r.user_message.startswith(f"failover-stop {a}") for r in lines)
    assert max(r.timestamp for r in lines) <= ended.timestamp
    assert records.index(ended) > max(records.index(r) for r in lines)


def test_a_second_run_changes_nothing(sandbox: E2ESandbox) -> None:
    since = time.time()
    outcome = run_upgrade(sandbox.inventory_path)
    assert outcome.success, outcome.failure
    assert changing_commands(sandbox.journal_path, since) == []
    assert outcome.report and "0 done" in outcome.report


def test_rollback_deleting_dirty_backups(sandbox: E2ESandbox) -> None:
    since = time.time()
    outcome = run_upgrade(
        sandbox.inventory_path, target="4.2.0", overrides={"delete_dirty_backups": True}
    )
    assert outcome.success, outcome.failure
    assert set(versions(sandbox).values()) == {"4.2.0"}
    deleted = [
        e
        for e in sandbox.journal(since)
        if e["event"] == "dirty_backup" and e["action"] == "deleted"
    ]
    assert deleted, "the upgrade made dirty backups earlier; the rollback deletes them"
    assert_safe(sandbox, "4.2.0", since)


def test_a_mirror_that_never_syncs_then_rerun(sandbox: E2ESandbox) -> None:
    a, b = (s.name for s in sandbox.inventory.regions[0].stripes[0].servers)
    since = time.time()
    with faults.injected(sandbox.directory, "no-sync", b):
        outcome = run_upgrade(sandbox.inventory_path, overrides={"timeouts": {"sync_s": 3.0}})
    assert not outcome.success
    assert (
        outcome.failure
        and "upgrade_mirrors_east_stripe1" in outcome.failure
        and b in outcome.failure
    )
    assert a not in stops(sandbox.journal_path, since), "the active was stopped"
    before_rerun = time.time()
    again = rerun(outcome.run_id)
    assert again.success, again.failure
    assert set(versions(sandbox).values()) == {"4.2.1"}
    # The mirror, upgraded by the failed run, is not stopped again (failback aside, which
    # stops the then-active b only after a took over).
    rerun_stops = stops(sandbox.journal_path, before_rerun)
    assert rerun_stops[0] == a
    assert_fault_row(
        sandbox,
        target="4.2.1",
        since=since,
        failure=outcome.failure,
        names=[b, "upgrade_mirrors_east_stripe1"],
        way_out=["rerun", "re-execute"],
    )


def test_expired_license_is_refused_before_anything_stops(sandbox: E2ESandbox) -> None:
    since = time.time()
    with faults.injected(sandbox.directory, "expired-license", "license"):
        outcome = run_upgrade(sandbox.inventory_path, target="4.2.0")
    assert not outcome.success
    assert outcome.failure and "preflight" in outcome.failure and "expires" in outcome.failure
    assert changing_commands(sandbox.journal_path, since) == []
    assert_fault_row(
        sandbox,
        target="4.2.0",
        since=since,
        failure=outcome.failure,
        names=[str(sandbox.inventory.license_file)],
        way_out=["license"],
    )


def test_a_kit_that_crashes_on_start_leaves_the_stripe_served(sandbox: E2ESandbox) -> None:
    since = time.time()
    outcome = crashed_rollback(sandbox)
    # Cleared: the rerun finishes the rollback.
    again = rerun(outcome.run_id)
    assert again.success, again.failure
    assert set(versions(sandbox).values()) == {"4.2.0"}
    mirror = sandbox.inventory.regions[0].stripes[0].servers[1].name
    assert_fault_row(
        sandbox,
        target="4.2.0",
        since=since,
        failure=outcome.failure,
        names=[mirror],
        way_out=["rerun", "re-execute"],
        crash_expected=[mirror],
    )
