"""defs/outputs.py on real SQLite instances: op outputs of the upgrade job's types kept as JSON
in the run's events, read back by a re-execution from failure on "another machine" (a
DAGSTER_HOME of its own whose run and event storage is the first one's, its local storage
folder fresh), where Dagster's default IO manager finds nothing."""

from __future__ import annotations

import datetime
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from bm_upgrade.defs.config import RunSettings
from bm_upgrade.defs.op_context import Records
from bm_upgrade.defs.outputs import OUTPUT_KEY, RunEventsIOManager, output_size, stored_output
from bm_upgrade.plan import PlanOptions
from bm_upgrade.procedure.kit import StagedKit
from bm_upgrade.procedure.records import StepRecord

FAIL_ENV = "BM_UPGRADE_TEST_FAIL_LAST"

SETTINGS = RunSettings(
    PlanOptions("4.2.1", failback=True, client_batch_size=2),
    dry_run=False,
    window_end=datetime.datetime(2026, 3, 1, 4, 0, tzinfo=datetime.UTC),
    before={"tsa-a": "4.2.0", "tsa-b": None},
    expected_outages={"server": (12.5, "longest of 3 past runs")},
)
STAGED = {
    "10.0.0.1": StagedKit("10.0.0.1", "/opt/.bm-upgrade-staging/kit.tar.gz", "/opt/l.key", "up")
}
RECORD = StepRecord("tsa-b", "stop", "PASSIVE-STANDBY", ("ran the stop script",), False, "", 1, 3)


@dg.op
def settings_op() -> RunSettings:
    return SETTINGS


@dg.op
def stage_op(settings: RunSettings) -> dict[str, StagedKit]:
    return dict(STAGED)


@dg.op
def records_op(settings: RunSettings, staged: dict[str, StagedKit]) -> Records:
    return [RECORD.as_dict()]


@dg.op
def last_op(settings: RunSettings, staged: dict[str, StagedKit], records: Records) -> str:
    if os.environ.get(FAIL_ENV) == "1":
        raise dg.Failure(description="last: failed on purpose")
    # What a re-execution read back equals what the parent run's steps made.
    assert settings == SETTINGS
    assert staged == STAGED
    assert records == [RECORD.as_dict()]
    return f"{settings.options.target_version} on {', '.join(staged)}"


@dg.graph
def carry() -> None:
    settings = settings_op()
    staged = stage_op(settings)
    last_op(settings, staged, records_op(settings, staged))


def in_events() -> dg.JobDefinition:
    """The job with bm_upgrade's IO manager."""
    return carry.to_job(
        name="in_events",
        executor_def=dg.in_process_executor,
        resource_defs={"io_manager": RunEventsIOManager()},
    )


def on_disk() -> dg.JobDefinition:
    """The job with Dagster's default IO manager (pickles in the local storage folder)."""
    return carry.to_job(name="on_disk", executor_def=dg.in_process_executor)


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[tuple[dg.DagsterInstance, dg.DagsterInstance]]:
    """Two instances sharing run and event storage (the first's SQLite files), each with
    its own local storage folder: two run workers on two machines, one database."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (second / "dagster.yaml").write_text(
        textwrap.dedent(
            f"""\
            telemetry: {{enabled: false}}
            storage:
              sqlite:
                base_dir: {first}
            """
        ),
        encoding="utf-8",
    )
    with (
        dg.DagsterInstance.local_temp(str(first)) as a,
        dg.DagsterInstance.from_config(str(second)) as b,
    ):
        yield a, b


def execute(job: Any, inst: dg.DagsterInstance, *, fail: bool, parent: str | None = None) -> Any:
    os.environ[FAIL_ENV] = "1" if fail else "0"
    try:
        options = dg.ReexecutionOptions.from_failure(parent, inst) if parent else None
        with dg.execute_job(
            dg.reconstructable(job), inst, reexecution_options=options, raise_on_error=False
        ) as result:
            output = result.output_for_node("last_op") if result.success else None
            return result.run_id, result.success, output, result.all_events
    finally:
        os.environ.pop(FAIL_ENV, None)


def test_a_re_execution_on_another_machine_reads_the_outputs_from_the_events(
    machines: tuple[dg.DagsterInstance, dg.DagsterInstance],
) -> None:
    first, second = machines
    parent, ok, _, _ = execute(in_events, first, fail=True)
    assert not ok
    assert second.get_run_by_id(parent) is not None, "the machines share run storage"
    child, ok, output, events = execute(in_events, second, fail=False, parent=parent)
    assert ok
    assert output == "4.2.1 on 10.0.0.1"
    # Only last_op ran again; the three outputs it read are its parent's.
    assert {e.step_key for e in events if e.is_step_success} == {"last_op"}
    loaded = [e.event_specific_data for e in events if e.event_type_value == "LOADED_INPUT"]
    assert sorted(d.upstream_step_key for d in loaded) == ["records_op", "settings_op", "stage_op"]
    # Nothing pickled on either machine: no step's folder in their local storage.
    for inst in machines:
        folders = Path(inst.storage_directory())
        assert not list(folders.glob("*/settings_op")) and not list(folders.glob("*/stage_op"))
    kept = stored_output(first, parent, "settings_op", "result")
    assert kept is not None
    assert kept["value"]["window_end"] == "2026-03-01T04:00:00Z"
    assert kept["value"]["expected_outages"] == {"server": [12.5, "longest of 3 past runs"]}
    assert kept["value"]["options"]["failback"] is True
    assert stored_output(second, child, "last_op", "result") == {"value": "4.2.1 on 10.0.0.1"}


def test_the_default_io_manager_does_not_carry_over(
    machines: tuple[dg.DagsterInstance, dg.DagsterInstance],
) -> None:
    """The same re-execution with Dagster's default IO manager: the outputs are pickles in
    the first machine's storage folder, which the second cannot read."""
    first, second = machines
    parent, ok, _, _ = execute(on_disk, first, fail=True)
    assert not ok
    assert list(Path(first.storage_directory()).glob(f"{parent}/settings_op/result"))
    _, ok, _, events = execute(on_disk, second, fail=False, parent=parent)
    assert not ok
    (failure,) = [e for e in events if e.is_step_failure]
    assert failure.step_key == "last_op"
    assert "FileNotFoundError" in str(failure.step_failure_data.error)


def test_a_missing_output_fails_in_one_sentence(
    machines: tuple[dg.DagsterInstance, dg.DagsterInstance],
) -> None:
    """An output the producing run's events do not hold (a run made with the default IO
    manager): the step fails naming the output, the run and what to do."""
    first, _ = machines
    parent, ok, _, _ = execute(on_disk, first, fail=True)
    assert not ok
    assert stored_output(first, parent, "settings_op", "result") is None
    context = dg.build_input_context(
        upstream_output=dg.build_output_context(
            run_id=parent, step_key="settings_op", name="result"
        ),
        instance=first,
    )
    with pytest.raises(dg.Failure) as failure:
        RunEventsIOManager().load_input(context)
    assert failure.value.description == (
        f"output result of step settings_op is not in the events of run {parent} (a run "
        "made by a bm_upgrade that kept outputs on the worker's disk, or whose step never "
        "finished): start a new run of the job instead of re-executing this one"
    )


def test_each_output_of_the_upgrade_job_is_small() -> None:
    assert output_size(SETTINGS, RunSettings) < 1024
    assert output_size(STAGED, dict[str, StagedKit]) < 256
    assert output_size([RECORD.as_dict()] * 10, Records) < 4096
    assert OUTPUT_KEY == "output (JSON)"
