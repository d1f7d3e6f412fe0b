"""Running the upgrade job from the command line, against ``DAGSTER_HOME``, so every run shows
in the UI's run history: `bm-upgrade run` and `bm-upgrade rerun` (re-execute from failure with
the parent run's config, as the UI's button does)."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from bm_upgrade.defs.config import UpgradeConfig
from bm_upgrade.defs.jobs import job_name, runs_going
from bm_upgrade.defs.launcher import worker_state, worker_tags
from bm_upgrade.defs.notify import failure_of
from bm_upgrade.defs.runclaim import (
    CLUSTER_TAG,
    INVENTORY_CHANGE_TAG,
    INVENTORY_SHA_TAG,
    INVENTORY_TAG,
    inventory_sha256,
)
from bm_upgrade.defs.stopping import stop_tag
from bm_upgrade.errors import UserError
from bm_upgrade.inventory import load_inventory
from bm_upgrade.procedure import halt
from bm_upgrade.runinputs import check_run_inputs

INVOCATION_TAG = "bm_upgrade/invocation"
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
"""The console shows the steps' progress (INFO), not Dagster's per-event DEBUG lines."""


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: its id, success, the report (when it got that far), the failure."""

    run_id: str
    success: bool
    report: str | None
    failure: str | None


INSTANCE_YAML = """\
# Dagster instance settings for bm_upgrade (copied into DAGSTER_HOME by `make setup`, the
# demo and the tests when DAGSTER_HOME has no dagster.yaml of its own).
telemetry:
  enabled: false
python_logs:
  # The procedure's own progress lines (waits, kit fetch) show in each step's log.
  managed_python_loggers: [bm_upgrade]
  python_log_level: INFO
# One run per cluster: runs launched from the UI, a schedule or a sensor wait in the queue
# (dagster-daemon starts them) while another run of the same `cluster` tag is in progress;
# runs of other clusters start at once. (The queued run coordinator is Dagster's default.)
concurrency:
  runs:
    tag_concurrency_limits:
      - key: cluster
        value: {applyLimitPerUniqueValue: true}
        limit: 1
# A run whose worker process died (killed, its host rebooted) is marked failed by
# dagster-daemon, so the cluster's queue moves on: bm_upgrade's launcher tells from the
# worker's pid whether it still runs on this host (Dagster's default launcher cannot).
run_launcher:
  module: bm_upgrade.defs.launcher
  class: LocalRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: 15
  start_timeout_seconds: 300
  cancel_timeout_seconds: 300
"""
"""deploy/dagster.yaml, kept equal to it by a test."""


def ensure_instance_yaml(home: Path) -> Path:
    """Write bm_upgrade's dagster.yaml into ``home`` unless it has one; returns its path."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    if not path.exists():
        path.write_text(INSTANCE_YAML, encoding="utf-8")
    return path


def prepare_instance(home: Path) -> Path:
    """Write bm_upgrade's dagster.yaml into ``home`` unless it has one, then create (or check)
    the instance's run, event log and schedule storage once; returns the dagster.yaml's path.

    Call it before dagster-webserver and dagster-daemon start: each creates and stamps the
    SQLite databases of an empty ``DAGSTER_HOME`` on its own, and two doing it at the same
    moment leave alembic with two heads, after which the code location does not load.
    """
    path = ensure_instance_yaml(home)
    with _one_creator(home), dg.DagsterInstance.from_config(str(home)) as inst:
        _create_storage(inst)
    return path


PREPARE_LOCK = ".bm-upgrade-instance.lock"
"""A file in DAGSTER_HOME locked while a process creates (or checks) the instance's storage."""


@contextmanager
def _one_creator(home: Path) -> Iterator[None]:
    """One process at a time opens the instance for the first time: two `bm-upgrade run`,
    or a run and a server, starting at once on an empty DAGSTER_HOME would otherwise both
    create and stamp its SQLite databases (alembic then finds two heads)."""
    with open(home / PREPARE_LOCK, "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _create_storage(inst: dg.DagsterInstance) -> None:
    """Each storage creates and stamps its databases when first used: use each once."""
    inst.get_runs(limit=1)
    inst.event_log_storage.get_asset_records()
    inst.all_instigator_state()


def instance() -> dg.DagsterInstance:
    """The Dagster instance of ``DAGSTER_HOME`` (where the UI reads its run history).

    Raises:
        UserError: DAGSTER_HOME is unset, relative, not a folder, or its dagster.yaml is bad.
    """
    # Checked here rather than by catching Dagster's own errors: the one for an unset
    # DAGSTER_HOME is not part of dagster's public API.
    home = os.environ.get("DAGSTER_HOME", "")
    if not home:
        raise UserError(
            "DAGSTER_HOME is not set: set it to the absolute path of your Dagster "
            "instance's folder (the one `dagster-webserver` uses), e.g. "
            "`export DAGSTER_HOME=$PWD/.dagster_home`"
        )
    if not Path(home).expanduser().is_absolute():
        raise UserError(
            f"DAGSTER_HOME={home!r} is a relative path; it must be absolute "
            f"(e.g. `export DAGSTER_HOME=$PWD/{home}`)"
        )
    if not Path(home).expanduser().is_dir():
        raise UserError(
            f"DAGSTER_HOME={home!r} is not an existing folder; create it "
            "(`make setup` writes its dagster.yaml) or point it at your instance"
        )
    try:
        with _one_creator(Path(home).expanduser()):
            inst = dg.DagsterInstance.get()
            _create_storage(inst)
        return inst
    except OSError as exc:
        raise UserError(
            f"DAGSTER_HOME {home} cannot be used ({exc}); check the folder's "
            "permissions or point DAGSTER_HOME at another folder"
        ) from exc
    except dg.DagsterInvariantViolationError as exc:
        raise UserError(
            f"DAGSTER_HOME {home} cannot be used: {exc}; fix its dagster.yaml "
            "or point DAGSTER_HOME at another folder"
        ) from exc


def reconstructable(inventory_path: str) -> Any:
    """The job of one inventory file, rebuildable in every process Dagster starts."""
    return dg.build_reconstructable_job(
        "bm_upgrade.defs.jobs", "job_for_inventory", reconstructable_args=(inventory_path,)
    )


def _failure(result: dg.JobExecutionResult) -> str | None:
    """The first failed step's one-sentence reason (or why the run could not start its steps),
    without Dagster's wrapping."""
    if result.success:
        return None
    step, reason = failure_of(result.all_events)
    return reason if step is None else f"step {step} failed: {reason}"


def _execute(
    job: Any,
    inst: dg.DagsterInstance,
    run_config: dict[str, Any],
    tags: dict[str, str],
    *,
    on_run_id: Callable[[str], None] | None,
    reexecution: dg.ReexecutionOptions | None = None,
) -> RunOutcome:
    """Execute in a thread while this one reports the run id as soon as the run exists.

    The run's tags record this process as its worker, so that a run whose process was
    killed is recognised (``rerun``, the daemon's run monitoring: defs/launcher.py).
    """
    invocation = uuid.uuid4().hex
    tags = {**tags, **worker_tags(), INVOCATION_TAG: invocation}
    halt.reset()  # a stop requested during an earlier run of this process is not this run's
    box: dict[str, Any] = {}
    in_process = job.get_definition().executor_def is dg.in_process_executor

    def work() -> None:
        if in_process:
            # Processes started here (Dagster's mirrors of the step's log to the terminal)
            # inherit this thread's blocked signals: a Ctrl-C then reaches only this process,
            # whose main thread asks the run to finish safely (cli.py). Not SIGTERM: Dagster
            # stops those mirrors with it. Step processes of the multiprocess executor keep
            # SIGINT: they handle it themselves (defs/stopping.py).
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with dg.execute_job(
                job, inst, run_config=run_config, tags=tags, reexecution_options=reexecution
            ) as result:
                box["result"] = result
                box["report"] = result.output_for_node("report") if result.success else None
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=work, name="bm-upgrade-run", daemon=True)
    thread.start()
    run_id: str | None = None
    announced = stop_tagged = False
    while thread.is_alive():
        if run_id is None:
            runs = inst.get_runs(filters=dg.RunsFilter(tags={INVOCATION_TAG: invocation}), limit=1)
            run_id = runs[0].run_id if runs else None
        if run_id is not None and not announced and on_run_id:
            on_run_id(run_id)
            announced = True
        requested = halt.stop_reason()
        if run_id is not None and requested is not None and not stop_tagged:
            # Step processes (multiprocess executor) do not share this process's halt: the
            # run's tag tells them (defs/stopping.py).
            inst.add_run_tags(run_id, stop_tag(run_id, requested))
            stop_tagged = True
        thread.join(0.2)
    if "error" in box:
        raise box["error"]
    result: dg.JobExecutionResult = box["result"]
    if not announced and on_run_id:
        on_run_id(result.run_id)
    return RunOutcome(result.run_id, result.success, box["report"], _failure(result))


def _one_run_per_cluster(inst: dg.DagsterInstance, cluster: str) -> None:
    """A run from the command line does not pass through the run queue (it executes here):
    refuse it while another run of the cluster is queued or going, as the queue would wait.
    A quick message only: two launches at the same moment both pass it, and the runs' own
    claim (defs/runclaim.py) lets the first created go on."""
    going = runs_going(inst, cluster)
    if going:
        raise UserError(
            f"run {going[0].run_id} of cluster {cluster} has not ended "
            f"({going[0].status.value}); one run per cluster at a time: wait for "
            "it to end (or cancel it in the UI), then run again"
        )


def run_upgrade(
    inventory_path: str | Path,
    *,
    target: str | None = None,
    dry_run: bool = False,
    overrides: dict[str, Any] | None = None,
    on_run_id: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Run ``upgrade_<cluster>`` for one inventory file and wait for it.

    Raises:
        UserError: the inventory is invalid, the target has no kit, the license file is
            missing, DAGSTER_HOME is not usable, another run of the cluster is going; each
            before the run is created and before any host is contacted.
    """
    path = str(Path(inventory_path).resolve())
    inventory = load_inventory(path)
    config = UpgradeConfig.defaults_for(inventory)
    if target:
        config["target_version"] = target
    config["dry_run"] = dry_run
    config.update(overrides or {})
    UpgradeConfig(**config)  # fail here, with pydantic's message, rather than in the run
    check_run_inputs(inventory, path, config["target_version"])
    inst = instance()
    _one_run_per_cluster(inst, inventory.cluster)
    tags = {
        CLUSTER_TAG: inventory.cluster,
        INVENTORY_TAG: path,
        INVENTORY_SHA_TAG: _inventory_sha256(path),
    }
    run_config = {"ops": {"preflight": {"config": config}}, **QUIET_CONSOLE}
    return _execute(reconstructable(path), inst, run_config, tags, on_run_id=on_run_id)


def _inventory_sha256(path: str) -> str:
    try:
        return inventory_sha256(path)
    except OSError as exc:
        raise UserError(f"inventory {path} cannot be read ({exc}); restore it") from exc


def _same_inventory(parent: dg.DagsterRun, path: str, now: str, accept_change: bool) -> bool:
    """Whether the inventory is the one ``parent`` ran on (True when it did not record it).

    Raises:
        UserError: it changed and the operator did not accept the change.
    """
    before = parent.tags.get(INVENTORY_SHA_TAG)
    if before is None or before == now:
        return True
    if not accept_change:
        raise UserError(
            f"{path} changed since run {parent.run_id} (sha256 {before[:12]}... then, "
            f"{now[:12]}... now), so that run's plan may no longer hold: start a new run with "
            f"`bm-upgrade run {path}`, or re-execute on the changed file with "
            f"`bm-upgrade rerun {parent.run_id} --inventory-changed`"
        )
    return False


def _target_of(run: dg.DagsterRun) -> str | None:
    """The target version in a run's config (None: the job's default, the inventory's)."""
    ops = run.run_config.get("ops")
    preflight = ops.get("preflight") if isinstance(ops, dict) else None
    config = preflight.get("config") if isinstance(preflight, dict) else None
    target = config.get("target_version") if isinstance(config, dict) else None
    return target if isinstance(target, str) else None


def _worker_gone(inst: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """Why an unfinished ``run`` can be marked failed (its worker is gone), or None when it
    ended already.

    Raises:
        UserError: its worker still runs, or this host cannot tell.
    """
    if run.is_finished:
        return None
    state = worker_state(inst, run)
    status = run.status.value
    if state.gone is None:
        raise UserError(
            f"run {run.run_id} is {status} and {state.text}: wait for it to end "
            "or cancel it in the UI, then rerun"
        )
    if not state.gone:
        raise UserError(
            f"run {run.run_id} is still {status} ({state.text}): wait for it to "
            "end (Ctrl-C on its `bm-upgrade run` stops it safely), then rerun"
        )
    return (
        f"run {run.run_id} was left {status} but {state.text} (killed?): marked it "
        "FAILURE; re-executing it from its unfinished steps"
    )


def rerun(
    run_id: str,
    on_run_id: Callable[[str], None] | None = None,
    *,
    inventory_changed: bool = False,
    on_notice: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Re-execute a failed or canceled run from its failed steps, with the parent run's config.

    A run left STARTED by a worker that is gone (a `bm-upgrade run` killed with -9, no daemon
    to notice) is marked FAILURE first, and ``on_notice`` is told so.

    Args:
        inventory_changed: go on although the inventory file changed since that run.

    Raises:
        UserError: no such run, or it succeeded or is still going, or it is not a bm_upgrade
            run; the inventory changed since (without ``inventory_changed``); the target or
            the license file no longer fit.
    """
    inst = instance()
    parent = inst.get_run_by_id(run_id)
    if parent is None:
        raise UserError(
            f"no run {run_id} in the Dagster instance at DAGSTER_HOME; copy the "
            "run id from `bm-upgrade run` or the UI"
        )
    path = parent.tags.get(INVENTORY_TAG)
    if not path:
        raise UserError(
            f"run {run_id} ({parent.job_name}) was not started by bm-upgrade; "
            "re-execute it from the UI instead"
        )
    gone = _worker_gone(inst, parent)
    if gone is None and parent.status not in (
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.CANCELED,
    ):
        raise UserError(
            f"run {run_id} ended {parent.status.value}, not FAILURE or CANCELED: "
            "only a failed or canceled run is re-executed from failure; start a "
            "new run with `bm-upgrade run`"
        )
    inventory = load_inventory(path)
    if parent.job_name != job_name(inventory):
        raise UserError(
            f"run {run_id} is of job {parent.job_name}, but {path} now describes "
            f"cluster {inventory.cluster}; restore the inventory file"
        )
    now = _inventory_sha256(path)
    same = _same_inventory(parent, path, now, inventory_changed)
    check_run_inputs(inventory, path, _target_of(parent) or inventory.target_version)
    if gone is not None:
        inst.report_run_failed(parent, gone)
        if on_notice:
            on_notice(gone)
    _one_run_per_cluster(inst, inventory.cluster)
    options = dg.ReexecutionOptions.from_failure(run_id, inst)
    tags = {k: v for k, v in parent.tags.items() if k in (CLUSTER_TAG, INVENTORY_TAG)}
    tags[INVENTORY_SHA_TAG] = now
    if not same:
        tags[INVENTORY_CHANGE_TAG] = now  # the run's own check lets it go on (runclaim)
    return _execute(
        reconstructable(path),
        inst,
        dict(parent.run_config),
        tags,
        on_run_id=on_run_id,
        reexecution=options,
    )
