"""The predicted duration read from real past runs in a Dagster instance: step times from the
event log, units of work from the steps' records, dry and failed runs left out; preflight's
refusal of a run the prediction says cannot finish before its window closes; `bm-upgrade
plan` and the job's description in the UI showing it."""

from __future__ import annotations

import datetime
import json
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.code_pointer import CodePointer
from dagster._core.definitions.definitions_load_context import DefinitionsLoadContext
from dagster._core.definitions.reconstruct import (
    initialize_repository_def_from_pointer,
    reconstruct_repository_def_from_pointer,
)

from bm_upgrade.cli import main
from bm_upgrade.defs.config import RunSettings
from bm_upgrade.defs.prediction import past_runs, predict
from bm_upgrade.defs.records import records_metadata
from bm_upgrade.defs.window_plan import predicted_start
from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory, parse_inventory
from bm_upgrade.plan import PlanOptions, make_plan
from bm_upgrade.plan.estimate import NO_HISTORY
from bm_upgrade.procedure.records import StepRecord
from tests.unit.inventories import UNANSWERED_STEPS, minimal

JOB = "upgrade_test"
MIRROR, ACTIVE = "tsa-a2", "tsa-a1"
KEYS = UNANSWERED_STEPS
RECORDS = {
    "upgrade_mirrors_east_stripe1": [
        (MIRROR, a) for a in ("stop", "install", "start", "confirm-standby")
    ],
    "failover_east_stripe1": [
        (ACTIVE, a) for a in ("failover-stop", "install", "start", "confirm-standby")
    ],
    "restart_clients_1": [("app1", a) for a in ("stop", "replace-jars", "start")],
}


def upgrade_shaped_job(fail: bool = False) -> dg.JobDefinition:
    """A job named as the cluster's, with its steps in its order, each attaching records as
    the upgrade's ops do; ``fail``: the failover step fails."""

    @dg.op(config_schema={"dry_run": dg.Field(bool, default_value=False)})
    def preflight() -> int:
        return 0

    # Unannotated: Dagster cannot resolve a nested op's string annotation of ``context``.
    @dg.op
    def step(context, before: int) -> int:  # type: ignore[no-untyped-def]
        name = context.op_handle.name
        if fail and name == "failover_east_stripe1":
            raise dg.Failure(description="failed on purpose")
        records = [
            StepRecord(node, action, "", ("done",)) for node, action in RECORDS.get(name, [])
        ]
        context.add_output_metadata(records_metadata(records))
        return before + 1

    @dg.job(name=JOB)
    def job() -> None:
        last = preflight()
        for key in KEYS[1:]:
            last = step.alias(key)(last)

    return job


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="module")
def good_runs(instance: dg.DagsterInstance) -> list[str]:
    """Two successful runs of the cluster's job, then a dry run and a failed run."""
    good = [run(instance), run(instance)]
    run(instance, dry_run=True)  # changes nothing: not a measure of a run
    run(instance, fail=True)  # not a successful run
    return good


@pytest.fixture
def inventory() -> Inventory:
    return parse_inventory(minimal(), "inv.yaml")


def run(instance: dg.DagsterInstance, *, dry_run: bool = False, fail: bool = False) -> str:
    config = {"ops": {"preflight": {"config": {"dry_run": dry_run}}}}
    result = upgrade_shaped_job(fail).execute_in_process(
        run_config=config, instance=instance, raise_on_error=False
    )
    assert result.success is not fail
    return result.run_id


def test_the_prediction_is_the_past_runs_step_times(
    instance: dg.DagsterInstance, inventory: Inventory, good_runs: list[str]
) -> None:
    options = PlanOptions.from_inventory(inventory)
    assert predict(None, inventory, options).basis == NO_HISTORY
    p = predict(instance, inventory, options)
    assert p.basis == "the last 2 successful runs" and p.from_history
    # Each step's time as Dagster's own step stats give it (STEP_START to STEP_SUCCESS):
    # one server restarted per stripe step, one client batch: one unit each.
    for key in KEYS:
        took = [
            (s.end_time or 0.0) - (s.start_time or 0.0)
            for run_id in good_runs
            for s in instance.get_run_step_stats(run_id, step_keys=[key])
        ]
        assert p.steps[key] == pytest.approx(statistics.median(took), abs=1e-3), key
    assert set(p.phases) == {"preparation", "servers", "clients", "wan", "report"}
    assert p.phases["wan"] == 0.0  # the cluster has no WAN
    assert p.total_s == pytest.approx(sum(p.phases.values()))
    # Dagster's time between steps, read from the runs' start and end, counts on top.
    assert p.total_s > sum(p.steps.values())


def test_units_of_work_are_read_from_the_steps_records(
    instance: dg.DagsterInstance, good_runs: list[str]
) -> None:
    newest, _ = past_runs(instance, JOB)
    # One server restarted by each stripe step (one start record), one client batch; the
    # other steps always one.
    assert {step.key: step.units for step in newest.steps} == dict.fromkeys(KEYS, 1)
    assert newest.idle_s is not None and newest.idle_s > 0.0
    assert len(past_runs(instance, JOB, limit=1)) == 1


def test_preflight_refuses_a_run_past_runs_say_cannot_finish_in_the_window(
    instance: dg.DagsterInstance, inventory: Inventory, good_runs: list[str]
) -> None:
    options = PlanOptions.from_inventory(inventory)
    plan = make_plan(inventory, options=options)
    end = datetime.datetime(2026, 12, 6, 6, 0, tzinfo=datetime.UTC)
    settings = RunSettings(options, dry_run=False, window_end=end)
    # A cluster with no past run: the timeouts say how long a wait may take at most, not
    # how long the run takes; the checks before each disruptive step decide.
    new = parse_inventory(minimal(cluster="new"), "new.yaml")
    assert predicted_start(instance, settings, new, plan, ignore_prediction=False, now=end)
    with pytest.raises(StepFailed) as info:
        predicted_start(instance, settings, inventory, plan, ignore_prediction=False, now=end)
    said = str(info.value)
    assert info.value.node == "preflight"
    assert said.startswith("the run is expected to take ")
    assert "(the last 2 successful runs) and only 0 s are left" in said
    assert "nothing was touched; the next window opens 2026-12-13T02:00:00+00:00" in said
    assert "ignore_prediction: true" in said and "\n" not in said
    # The way out, and a dry run (it changes nothing): not refused.
    ok = predicted_start(instance, settings, inventory, plan, ignore_prediction=True, now=end)
    assert ok.from_history
    dry = RunSettings(options, dry_run=True, window_end=end)
    assert predicted_start(instance, dry, inventory, plan, ignore_prediction=False, now=end)
    # Time enough left: it starts.
    early = end - datetime.timedelta(minutes=5)
    assert predicted_start(instance, settings, inventory, plan, ignore_prediction=False, now=early)


def test_plan_reads_the_past_runs_of_dagster_home(
    instance: dg.DagsterInstance,
    good_runs: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(minimal()), encoding="utf-8")
    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
    assert main(["plan", str(path)]) == 0
    assert "\n  from the last 2 successful runs\n" in capsys.readouterr().out
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "missing"))
    assert main(["plan", str(path), "--json"]) == 0
    basis = json.loads(capsys.readouterr().out)["prediction"]["basis"]
    assert basis.startswith("the inventory's timeouts (no past run read: DAGSTER_HOME=")


@pytest.fixture
def load_context() -> Iterator[None]:
    """Dagster's definitions load context, put back as it was after the test (loading and
    rebuilding a code location set it for the whole process)."""
    saved = DefinitionsLoadContext._instance  # Dagster's own; no public way to read it
    try:
        yield
    finally:
        DefinitionsLoadContext.set(saved)  # type: ignore[arg-type]


def test_the_job_description_shows_it_and_rebuilding_reads_no_instance(
    instance: dg.DagsterInstance,
    good_runs: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    load_context: None,
) -> None:
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(minimal()), encoding="utf-8")
    monkeypatch.setenv("BM_UPGRADE_INVENTORY_DIR", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
    monkeypatch.delitem(sys.modules, "bm_upgrade.definitions", raising=False)
    pointer = CodePointer.from_module("bm_upgrade.definitions", "defs", working_directory=None)
    # The code server initializes the code location: past runs read once.
    repo = initialize_repository_def_from_pointer(pointer)
    description = repo.get_job(JOB).description or ""
    assert "\n\n**Expected duration: " in description
    assert "from the last 2 successful runs; fits the next maintenance window" in description
    # A run worker rebuilds it from the load data the code server handed on: the same
    # description, and DAGSTER_HOME (unusable here) is not read.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "missing"))
    monkeypatch.delitem(sys.modules, "bm_upgrade.definitions")
    rebuilt = reconstruct_repository_def_from_pointer(pointer, repo.repository_load_data)
    assert rebuilt.get_job(JOB).description == description
