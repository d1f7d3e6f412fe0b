"""A failed upgrade re-executed from failure by a run worker on "another machine": a
DAGSTER_HOME of its own whose run and event storage is the first one's (one database), with a
fresh local storage folder and kit cache. The steps it re-executes read the parent run's
outputs from the run's events (defs/outputs.py), not from the first worker's disk.

Tests share one `small` sandbox (one stripe of two servers, one client) in file order.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from bm_upgrade.defs.execution import reconstructable
from bm_upgrade.defs.instance import INSTANCE_YAML
from bm_upgrade.defs.launch import rerun, run_upgrade
from bm_upgrade.defs.outputs import stored_output
from bm_upgrade.defs.runclaim import CLUSTER_TAG, INVENTORY_SHA_TAG, INVENTORY_TAG
from bm_upgrade.procedure.kit import CACHE_DIR_ENV
from bm_upgrade.sandbox import faults
from tests.e2e.conftest import E2ESandbox, e2e_sandbox
from tests.e2e.journal_check import stops, violations
from tests.e2e.ui_servers import BEFORE_STOPS, FROM_FIRST_STOP

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dagster_home")]
ALL_STEPS = BEFORE_STOPS | FROM_FIRST_STOP
"""Every step of the small sandbox's job."""


@pytest.fixture(scope="module")
def sandbox(dagster_home: Path) -> Iterator[E2ESandbox]:
    with e2e_sandbox("small") as sb:
        yield sb


@pytest.fixture
def other_machine(dagster_home: Path) -> Iterator[Path]:
    """The DAGSTER_HOME of a second worker: bm_upgrade's instance settings, the first home's
    SQLite storage, nothing of its own on disk yet."""
    home = Path(tempfile.mkdtemp(prefix="bm-upgrade-other-"))
    storage = f"storage:\n  sqlite:\n    base_dir: {dagster_home}\n"
    (home / "dagster.yaml").write_text(INSTANCE_YAML + storage, encoding="utf-8")
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def work_on(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """This process is now the worker of ``home``: its instance and its kit cache (restored
    when the test ends)."""
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(CACHE_DIR_ENV, str(home / "kits"))


def steps_done(inst: dg.DagsterInstance, run_id: str) -> set[str]:
    records = inst.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS).records
    return {r.event_log_entry.step_key or "" for r in records}


def test_a_failed_run_finishes_on_another_worker(
    sandbox: E2ESandbox, dagster_home: Path, other_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = (s.name for s in sandbox.inventory.regions[0].stripes[0].servers)
    since = time.time()
    work_on(monkeypatch, dagster_home)
    with faults.injected(sandbox.directory, "no-sync", b):
        failed = run_upgrade(sandbox.inventory_path, overrides={"timeouts": {"sync_s": 3.0}})
    assert not failed.success
    assert failed.failure and "upgrade_mirrors_east_stripe1" in failed.failure
    assert a not in stops(sandbox.journal_path, since), "the active was stopped"
    work_on(monkeypatch, other_machine)

    again = rerun(failed.run_id)

    assert again.success, again.failure
    assert again.report and "4.2.1" in again.report
    with dg.DagsterInstance.get() as inst:
        # Both runs are in the one database; the second ran only what the first had not done.
        assert steps_done(inst, failed.run_id) == {"preflight", "download", "stage_kit"}
        assert steps_done(inst, again.run_id) == ALL_STEPS - steps_done(inst, failed.run_id)
        settings = stored_output(inst, failed.run_id, "preflight", "result")
        assert settings is not None and settings["value"]["options"]["target_version"] == "4.2.1"
    # Nothing of either run pickled on either worker: outputs live in the events alone.
    for home in (dagster_home, other_machine):
        assert [p.name for p in (home / "storage").rglob("result")] == []
    assert sandbox.verify()["lost"] == 0
    assert (
        violations(sandbox.journal_path, sandbox.inventory, "4.2.1", since=since, until=time.time())
        == []
    )


def test_stage_kit_re_executed_where_the_kit_was_never_downloaded_fetches_it(
    sandbox: E2ESandbox, dagster_home: Path, other_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """download's output is a path in the first worker's kit cache: a stage_kit re-executed
    on a worker without that file fetches the kit into its own cache (sha256 checked)."""
    work_on(monkeypatch, other_machine)
    with dg.DagsterInstance.get() as inst:
        (parent,) = inst.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        kit_path = stored_output(inst, parent.run_id, "download", "result")
        assert kit_path is not None
        first_copy = Path(kit_path["value"])
        assert first_copy.is_relative_to(dagster_home)  # the first worker's cache
        first_copy.unlink()
        tags = {t: parent.tags[t] for t in (CLUSTER_TAG, INVENTORY_TAG, INVENTORY_SHA_TAG)}
        with dg.execute_job(
            reconstructable(str(sandbox.inventory_path.resolve())),
            inst,
            run_config=dict(parent.run_config),
            tags=tags,
            reexecution_options=dg.ReexecutionOptions(parent.run_id, step_selection=["stage_kit"]),
        ) as result:
            assert result.success
            assert steps_done(inst, result.run_id) == {"stage_kit"}
    assert (other_machine / "kits" / first_copy.name).is_file()
