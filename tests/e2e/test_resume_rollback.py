"""A run's target is the run's own (`--to`), never the inventory's: a rollback interrupted
midway is resumed by another run to the same target. And the staging folders: private while a
run needs them, removed after a successful run, the previous kits kept.

The tests share one `small` sandbox (one stripe of two servers, one client) and run in file
order: upgrade to 4.2.1, then a rollback to 4.2.0 that a kit crashing on start interrupts,
then its resumption.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bm_upgrade.defs.launch import run_upgrade
from bm_upgrade.license import LICENSE_FILE_NAME
from bm_upgrade.procedure.kit import staging_targets
from tests.e2e.conftest import E2ESandbox, e2e_sandbox
from tests.e2e.journal_check import violations
from tests.e2e.test_upgrade_job import crashed_rollback, states, versions

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dagster_home")]


@pytest.fixture(scope="module")
def sandbox(dagster_home: Path) -> Iterator[E2ESandbox]:
    with e2e_sandbox("small") as sb:
        yield sb


def staging(sb: E2ESandbox) -> list[Path]:
    """Every host's staging folder (the sandbox's hosts are folders of this machine)."""
    return [Path(folder) for folder in staging_targets(sb.inventory).values()]


def test_a_successful_run_removes_staging_and_keeps_the_previous_kit(sandbox: E2ESandbox) -> None:
    outcome = run_upgrade(sandbox.inventory_path)
    assert outcome.success, outcome.failure
    assert outcome.report and "## Staging" in outcome.report
    assert [folder for folder in staging(sandbox) if folder.exists()] == []
    for _, _, server in sandbox.inventory.servers():
        kept = Path(server.kit_root.previous_kit("4.2.0"))
        assert (kept / "server" / "bin" / "version.sh").is_file(), kept


def test_an_interrupted_rollback_is_resumed_by_a_run_to_its_target(sandbox: E2ESandbox) -> None:
    # Interrupted after the mirror's install: it holds 4.2.0 and is down; the active serves.
    crashed_rollback(sandbox)
    # The failed run keeps its staged kit, private to the login user.
    for folder in staging(sandbox):
        assert os.stat(folder).st_mode & 0o777 == 0o700
        assert os.stat(folder / LICENSE_FILE_NAME).st_mode & 0o777 == 0o600

    # A dry run to the rollback's target passes preflight and cleans nothing.
    dry = run_upgrade(sandbox.inventory_path, target="4.2.0", dry_run=True)
    assert dry.success, dry.failure
    assert all(folder.exists() for folder in staging(sandbox))

    # The operator resumes the rollback: preflight compares with 4.2.0, the run's target.
    resumed_at = time.time()
    again = run_upgrade(sandbox.inventory_path, target="4.2.0")
    assert again.success, again.failure
    assert set(versions(sandbox).values()) == {"4.2.0"}
    assert states(sandbox) == ["ACTIVE-COORDINATOR", "PASSIVE-STANDBY"]
    assert (
        violations(
            sandbox.journal_path, sandbox.inventory, "4.2.0", since=resumed_at, until=time.time()
        )
        == []
    )
    assert sandbox.verify()["lost"] == 0
    assert [folder for folder in staging(sandbox) if folder.exists()] == []
