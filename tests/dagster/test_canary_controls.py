"""The canary's shape in the job graph, the run config's canary, and the operator's controls
(approve_<cluster>, pause_<cluster>, their tags on the upgrade run) on a real Dagster
instance. The gate waiting and the pause taking effect are end to end:
tests/e2e/test_canary_pause.py."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.utils import make_new_run_id

from bm_upgrade.definitions import build_definitions
from bm_upgrade.defs.approval import (
    APPROVAL_RUN_TAG,
    APPROVAL_TAG,
    CANARY_TAG,
    GATE,
    Decision,
    decision_for,
    record_decision,
)
from bm_upgrade.defs.config import RunSettings, UpgradeConfig
from bm_upgrade.defs.control_jobs import CONTROL_TAG, approve_job_for_inventory
from bm_upgrade.defs.execution import reconstructable
from bm_upgrade.defs.instance import prepare_instance
from bm_upgrade.defs.launch import run_upgrade
from bm_upgrade.defs.pausing import PAUSE_TAG, Pause, request_pause, requested_pause
from bm_upgrade.defs.runclaim import CLUSTER_TAG, INVENTORY_TAG
from bm_upgrade.defs.stopping import earlier_failure, requested_stop
from bm_upgrade.errors import InventoryError, UserError
from bm_upgrade.inventory import load_inventory
from tests.dagster.new_work_job import new_work
from tests.unit.inventories import unanswered

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "inventory.yaml"
STRIPES = [("frankfurt", "stripe1"), ("frankfurt", "stripe2"), ("dublin", "stripe1")]


def with_canary(folder: Path, canary: str | None, source: Path = EXAMPLE) -> Path:
    """A copy of ``source`` whose policy names ``canary`` (none: no canary)."""
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data.setdefault("policy", {})["canary"] = canary
    path = folder / source.name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def upstream(job: dg.JobDefinition, node: str) -> set[str]:
    deps = job.graph.dependency_structure
    return {out.node_name for out in deps.all_upstream_outputs_from_node(node)}


def test_without_a_canary_there_is_no_gate() -> None:
    job = build_definitions(REPO / "examples").resolve_job_def("upgrade_prod_eu")
    assert GATE not in {node.name for node in job.graph.nodes}
    for region, stripe in STRIPES:
        assert upstream(job, f"upgrade_mirrors_{region}_{stripe}") == {"preflight", "stage_kit"}


def test_a_canary_goes_first_and_every_other_stripe_waits_for_its_gate(tmp_path: Path) -> None:
    with_canary(tmp_path, "frankfurt/stripe2")
    job = build_definitions(tmp_path).resolve_job_def("upgrade_prod_eu")
    # The canary's pair before the gate, the gate before every other stripe's mirrors.
    assert upstream(job, "upgrade_mirrors_frankfurt_stripe2") == {"preflight", "stage_kit"}
    assert upstream(job, GATE) == {"preflight", "failover_frankfurt_stripe2"}
    for region, stripe in [("frankfurt", "stripe1"), ("dublin", "stripe1")]:
        assert upstream(job, f"upgrade_mirrors_{region}_{stripe}") == {
            "preflight",
            "stage_kit",
            GATE,
        }
        assert GATE not in upstream(job, f"failover_{region}_{stripe}")  # through its mirrors
    assert job.graph.node_named(GATE).tags[CANARY_TAG] == "frankfurt/stripe2"
    # verify_servers (and so the clients and the WAN cycle) after every stripe, canary first.
    stripe_ops = [
        f"{kind}_{region}_{stripe}"
        for region, stripe in STRIPES
        for kind in ("upgrade_mirrors", "failover")
    ]
    assert upstream(job, "verify_servers") == {"preflight", *stripe_ops}


def test_a_cluster_named_canary_loads_beside_its_gate(tmp_path: Path) -> None:
    """The control job approve_canary (of cluster "canary") and the gate node approve_canary
    of every upgrade job with a canary live in one code location (op and graph definition
    names share one namespace: the gate's op is named otherwise)."""
    data = yaml.safe_load(with_canary(tmp_path, "dublin/stripe1").read_text(encoding="utf-8"))
    data["cluster"] = "canary"
    (tmp_path / "canary.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    repo = build_definitions(tmp_path).get_repository_def()
    jobs = {job.name for job in repo.get_all_jobs()}
    assert {"approve_canary", "approve_prod_eu", "upgrade_canary", "upgrade_prod_eu"} <= jobs
    assert GATE in {n.name for n in repo.get_job("upgrade_canary").graph.nodes}


def test_a_canary_that_is_no_stripe_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = with_canary(tmp_path, "frankfurt/stripe9")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    message = str(info.value)
    assert "policy.canary: 'frankfurt/stripe9' is not a stripe of this inventory" in message
    assert "frankfurt/stripe1, frankfurt/stripe2, dublin/stripe1" in message


def test_the_run_config_keeps_the_canary_or_sets_none(tmp_path: Path) -> None:
    inventory = load_inventory(with_canary(tmp_path, "dublin/stripe1"))
    defaults = UpgradeConfig.defaults_for(inventory)
    assert defaults["canary"] == "dublin/stripe1"
    assert defaults["timeouts"]["approval_s"] == 3600
    kept = RunSettings.from_config(UpgradeConfig(**defaults), inventory).options
    assert kept.canary == "dublin/stripe1"
    # None is this run's choice (no wait at the gate), not "the inventory's".
    none = RunSettings.from_config(UpgradeConfig(**{**defaults, "canary": None}), inventory)
    assert none.options.canary is None
    with pytest.raises(UserError) as info:
        RunSettings.from_config(
            UpgradeConfig(**{**defaults, "canary": "frankfurt/stripe1"}), inventory
        )
    message = str(info.value)
    assert message.startswith("run config canary='frankfurt/stripe1': the job's graph puts ")
    assert "set policy.canary: frankfurt/stripe1 in the inventory" in message


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="bm-upgrade-canary-"))
    prepare_instance(folder)
    monkeypatch.setenv("DAGSTER_HOME", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_a_run_naming_another_canary_stops_in_preflight(home: Path, tmp_path: Path) -> None:
    path = unanswered(tmp_path, "canary")
    outcome = run_upgrade(path, overrides={"canary": "east/stripe1"})
    assert not outcome.success
    assert outcome.failure is not None
    assert outcome.failure.startswith(
        "step preflight failed: run config canary='east/stripe1': the job's graph has no canary"
    )


def test_the_control_jobs_carry_no_cluster_tag(tmp_path: Path) -> None:
    with_canary(tmp_path, "frankfurt/stripe1")
    defs = build_definitions(tmp_path)
    for name in ("approve_prod_eu", "pause_prod_eu"):
        job = defs.resolve_job_def(name)
        # The run queue's limit and the cluster's claim read `cluster`: a control job with it
        # would queue behind the run it acts on.
        assert CLUSTER_TAG not in job.tags
        assert job.tags[CONTROL_TAG] == "prod_eu"
    approve = defs.resolve_job_def("approve_prod_eu")
    good = {"run_id": "r", "decision": "approved", "by": "alice"}
    config = {"ops": {"record_decision": {"config": good}}}
    taken = dg.validate_run_config(approve, config)["ops"]["record_decision"]["config"]
    assert taken["note"] == ""  # optional
    for bad in ({**good, "decision": "maybe"}, {"run_id": "r", "decision": "approved"}):
        with pytest.raises(dg.DagsterInvalidConfigError):
            dg.validate_run_config(approve, {"ops": {"record_decision": {"config": bad}}})
    pause = defs.resolve_job_def("pause_prod_eu")
    dg.validate_run_config(
        pause, {"ops": {"request_pause": {"config": {"run_id": "r", "by": "bob"}}}}
    )


def upgrade_run(inst: dg.DagsterInstance, path: Path, **extra: Any) -> dg.DagsterRun:
    """A run of the inventory's upgrade job, created as a launcher creates it."""
    job = reconstructable(str(path)).get_definition()
    tags = {CLUSTER_TAG: load_inventory(path).cluster, INVENTORY_TAG: str(path)}
    return inst.create_run_for_job(job, tags={**tags, **extra.pop("tags", {})}, **extra)


def control(inst: dg.DagsterInstance, path: Path, job: str, config: dict[str, Any]) -> str:
    """Execute a control job (Dagster's execute_job, as a run worker would): its failure
    sentence, or "" on success."""
    approve = job.startswith("approve_")
    recon = dg.build_reconstructable_job(
        "bm_upgrade.defs.control_jobs",
        "approve_job_for_inventory" if approve else "pause_job_for_inventory",
        reconstructable_args=(str(path),),
    )
    op = "record_decision" if approve else "request_pause"
    with dg.execute_job(
        recon, inst, run_config={"ops": {op: {"config": config}}}, raise_on_error=False
    ) as result:
        assert CLUSTER_TAG not in result.dagster_run.tags
        if result.success:
            return ""
        (failure,) = [e for e in result.all_events if e.is_step_failure]
        data = failure.step_failure_data.user_failure_data
        return (
            data.description if data and data.description else str(failure.step_failure_data.error)
        )


@pytest.mark.slow
def test_controls_refuse_in_one_sentence_what_they_cannot_do(home: Path, tmp_path: Path) -> None:
    with_canary(tmp_path, None, unanswered(tmp_path, "test"))
    plain = tmp_path / "test.yaml"
    assert approve_job_for_inventory(str(plain)).name == "approve_test"
    canary_dir = tmp_path / "canary"
    canary_dir.mkdir()
    gated = with_canary(canary_dir, "east/stripe1", plain)
    with dg.DagsterInstance.get() as inst:
        said = control(
            inst, plain, "approve_test", {"run_id": "nope", "decision": "approved", "by": "a"}
        )
        assert said.startswith("no run 'nope' in the Dagster instance at DAGSTER_HOME")
        no_gate = upgrade_run(inst, plain)
        said = control(
            inst,
            plain,
            "approve_test",
            {"run_id": no_gate.run_id, "decision": "approved", "by": "a"},
        )
        assert said == (
            f"run {no_gate.run_id} has no approval gate (its inventory has no "
            "policy.canary); there is nothing to approve or reject"
        )
        waiting_for_canary = upgrade_run(inst, gated)
        with pytest.raises(UserError) as info:
            record_decision(inst, waiting_for_canary.run_id, "rejected", by="a")
        assert "its canary stripe is still being upgraded; decide once approve_canary waits" in str(
            info.value
        )
        with pytest.raises(UserError) as info:
            record_decision(inst, waiting_for_canary.run_id, "approved", by="a", cluster="other")
        assert "upgrades cluster test, not other" in str(info.value)
        # A control job's own run is not an upgrade run.
        ended = inst.get_runs(filters=dg.RunsFilter(job_name="approve_test"), limit=1)[0]
        said = control(inst, plain, "pause_test", {"run_id": ended.run_id, "by": "a"})
        assert said == (
            f"run {ended.run_id} is a run of approve_test, not of a bm_upgrade "
            "upgrade_<cluster> job; give the id of the upgrade run"
        )


@pytest.mark.slow
def test_a_pause_and_a_decision_belong_to_their_run(home: Path, tmp_path: Path) -> None:
    """The UI copies a parent's tags to its re-execution: a pause never carries over, a
    decision counts for the run it names, and only an approval reaches a re-execution."""
    path = unanswered(tmp_path, "test")
    with dg.DagsterInstance.get() as inst:
        run = upgrade_run(inst, path)
        assert control(inst, path, "pause_test", {"run_id": run.run_id, "by": "carol"}) == ""
        asked = requested_pause(inst, run.run_id)
        assert asked is not None and asked.by == "carol"
        assert asked.at.endswith("+00:00")
        assert request_pause(inst, run.run_id, "dave") == asked  # the first request stays
        stored = inst.get_run_by_id(run.run_id)
        assert stored is not None
        copied = upgrade_run(
            inst,
            path,
            tags={PAUSE_TAG: stored.tags[PAUSE_TAG]},
            parent_run_id=run.run_id,
            root_run_id=run.run_id,
        )
        assert requested_pause(inst, copied.run_id) is None
        # Decisions, written as record_decision writes them.
        rejected = Decision("rejected", "erin", "2030-01-01T00:00:00+00:00", "", run.run_id)
        inst.add_run_tags(run.run_id, rejected.tags())
        child = upgrade_run(
            inst, path, tags=rejected.tags(), parent_run_id=run.run_id, root_run_id=run.run_id
        )
        assert decision_for(inst, child) is None  # a rejection is not inherited
        approved = Decision("approved", "frank", "2030-01-01T00:01:00+00:00", "ok", child.run_id)
        inst.add_run_tags(child.run_id, approved.tags())
        grandchild = upgrade_run(inst, path, parent_run_id=child.run_id, root_run_id=run.run_id)
        assert decision_for(inst, grandchild) == approved  # an approval is
        stored_child = inst.get_run_by_id(child.run_id)
        assert stored_child is not None
        assert stored_child.tags[APPROVAL_TAG] == "approved"
        assert stored_child.tags[APPROVAL_RUN_TAG] == child.run_id
        assert decision_for(inst, stored_child) == approved


@pytest.mark.slow
def test_a_run_marked_canceled_asks_its_steps_to_stop(home: Path, tmp_path: Path) -> None:
    """Dagster's "force termination" only marks the run CANCELED (no signal reaches its
    process): every step reads that before its next disruptive action."""
    path = unanswered(tmp_path, "test")
    with dg.DagsterInstance.get() as inst:
        run = upgrade_run(inst, path, status=dg.DagsterRunStatus.STARTED)
        assert requested_stop(inst, run.run_id) is None
        inst.report_run_canceled(run)
        assert requested_stop(inst, run.run_id) == (
            "the run was terminated (CANCELED) through Dagster"
        )


@pytest.mark.slow
def test_a_pause_is_not_an_earlier_failure(home: Path) -> None:
    """A stripe still in progress when another op paused goes on: the pause's step failure
    does not stop new disruptive work (rule 12), an ordinary failure does."""
    from dagster._core.execution.api import execute_run

    with dg.DagsterInstance.get() as inst:
        ended = {}
        for paused in (True, False):
            run_id = make_new_run_id()
            pause = Pause(run_id, "erin", "2030-01-01T00:00:00+00:00")
            run = inst.create_run_for_job(
                new_work, run_id=run_id, tags=pause.tag() if paused else {}
            )
            execute_run(dg.reconstructable(new_work), run, inst)
            stored = inst.get_run_by_id(run_id)
            assert stored is not None and stored.status == dg.DagsterRunStatus.FAILURE
            ended[paused] = earlier_failure(inst, run_id, "failover_east_stripe1")
        assert ended[True] is None
        assert ended[False] == (
            "step starts_new_work of this run failed (boom); fix that, then re-execute from failure"
        )
