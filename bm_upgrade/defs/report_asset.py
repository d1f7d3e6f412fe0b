"""Every upgrade run's evidence report, as a materialization of the cluster's report asset
``bm_upgrade/<cluster>/upgrade_report``: the asset catalog holds the history of reports, each
linked to its run.

A successful run's ``report`` step materializes it (defs/ops.py); a failed or canceled run
never reaches that step, so the ``upgrade_report_on_failure`` and ``upgrade_report_on_cancel``
sensors do it for them, from the run's events and a look at the cluster, the Dagster way a
finished run gets more work done (they watch runs of every code location's launches, the
command line's included). Both build the report from what the run and the runs it re-executes
left in the instance's event log (:func:`read_history`), so it can be made on any machine that
reaches the instance.

Where the report lives: the materialization's metadata holds the Markdown (``report``, shown
by the UI; a command line longer than :data:`~bm_upgrade.procedure.report_render.
COMMAND_CHARS` cut there) and the whole self-contained HTML page, gzip-compressed and base64
encoded (``html_gzip``: a report's commands repeat each other, so it keeps about a seventh
of the page's bytes in the event log, which the asset's page in the UI reads), with the page's
``html_sha256``. Nothing is written to a local folder, so the report is the same on SQLite and
on PostgreSQL, whichever machine or pod ran the step or the sensor, and
`bm-upgrade report RUN_ID --html FILE` writes the page out anywhere the instance is reachable.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import time
from typing import Any

import dagster as dg
from dagster._core.events import HandledOutputData

from bm_upgrade.defs.config import RunSettings
from bm_upgrade.defs.outputs import OUTPUT_KEY, decode
from bm_upgrade.defs.records import RECORDS_KEY
from bm_upgrade.defs.runclaim import CLUSTER_TAG, INVENTORY_TAG
from bm_upgrade.defs.step_evidence import COMMANDS_KEY, SOURCE, status_key
from bm_upgrade.defs.version_matrix import MatrixEvent, matrix_events
from bm_upgrade.errors import BmUpgradeError, UserError
from bm_upgrade.inventory import Inventory, load_inventory
from bm_upgrade.procedure.evidence import (
    APPROVAL_TAGS,
    ChangeSeen,
    Evidence,
    HostCommand,
    RunHistory,
    StepTime,
)
from bm_upgrade.procedure.observe import ClusterView, observe_cluster
from bm_upgrade.procedure.report_render import to_html, to_markdown
from bm_upgrade.remote import HostPool

PLAN_KEY = "plan"
"""Preflight's output metadata: the plan it made, rendered (a fenced block)."""
_EVENTS = {
    dg.DagsterEventType.STEP_OUTPUT,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.HANDLED_OUTPUT,
    dg.DagsterEventType.ASSET_OBSERVATION,
    dg.DagsterEventType.RESOURCE_INIT_FAILURE,
    dg.DagsterEventType.RUN_FAILURE,
}


def report_key(cluster: str) -> dg.AssetKey:
    return dg.AssetKey(["bm_upgrade", cluster, "upgrade_report"])


def report_asset(inventory: Inventory) -> dg.AssetSpec:
    return dg.AssetSpec(
        report_key(inventory.cluster),
        group_name="bm_upgrade",
        description=f"The evidence report of each upgrade run of {inventory.cluster} "
        "(successful, failed or canceled): outcome, approvals, plan, version matrix before "
        "and after, steps and failovers with their durations, state changes, commands per "
        "host. Markdown in the `report` metadata; the HTML page through `bm-upgrade report "
        "RUN_ID --html FILE` (kept compressed in `html_gzip`).",
    )


def run_chain(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[dg.DagsterRun]:
    """``run`` and the runs it re-executes, the first run first."""
    chain = [run]
    while chain[0].parent_run_id:
        parent = instance.get_run_by_id(chain[0].parent_run_id)
        if parent is None:
            break
        chain.insert(0, parent)
    return chain


def _plan_text(value: Any) -> str:
    """The plan from preflight's fenced Markdown block."""
    text = getattr(value, "value", None) or getattr(value, "md_str", None) or ""
    lines = str(text).splitlines()
    if len(lines) >= 2 and lines[0].startswith("```") and lines[-1].startswith("```"):
        lines = lines[1:-1]
    return "\n".join(lines)


def _json(value: Any) -> Any:
    return value.data if isinstance(value, dg.JsonMetadataValue) else None


class _Run:
    """One run's events, as the report reads them."""

    def __init__(self, instance: dg.DagsterInstance, run: dg.DagsterRun, cluster: str) -> None:
        self.run = run
        self.outputs: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, dict[str, Any]] = {}
        self.handled: dict[str, Any] = {}
        self.changes: list[ChangeSeen] = []
        self.events: list[dg.DagsterEvent] = []
        key = status_key(cluster)
        for record in instance.get_records_for_run(run.run_id, of_type=_EVENTS).records:
            entry = record.event_log_entry
            event = entry.dagster_event
            if event is None:
                continue
            self.events.append(event)
            step = event.step_key or ""
            if event.is_step_failure and event.step_failure_data:
                user = event.step_failure_data.user_failure_data
                self.failures[step] = dict(user.metadata) if user else {}
            elif event.event_type == dg.DagsterEventType.STEP_OUTPUT and event.step_output_data:
                self.outputs.setdefault(step, {}).update(event.step_output_data.metadata)
            elif isinstance(event.event_specific_data, HandledOutputData):
                value = _json(event.event_specific_data.metadata.get(OUTPUT_KEY))
                if isinstance(value, dict):
                    self.handled[step] = value.get("value")
            elif event.asset_key == key and event.event_type_value == "ASSET_OBSERVATION":
                change = self._change(event, entry.timestamp)
                if change is not None:
                    self.changes.append(change)
        self.stats = {s.step_key: s for s in instance.get_run_step_stats(run.run_id)}

    def _change(self, event: dg.DagsterEvent, timestamp: float) -> ChangeSeen | None:
        observation = getattr(event.event_specific_data, "asset_observation", None)
        metadata = observation.metadata if observation is not None else {}
        if _text(metadata.get("source")) != SOURCE:
            return None  # not a run's change (a sensor's look is runless anyway)
        seen_at = metadata.get("seen_at")
        at = float(getattr(seen_at, "value", timestamp) or timestamp)
        return ChangeSeen(
            at,
            _text(metadata.get("node")),
            _text(metadata.get("stripe")),
            _text(metadata.get("before_state")),
            _text(metadata.get("state")),
            _text(metadata.get("changes")).removeprefix("- "),
            _text(metadata.get("step")),
            self.run.run_id,
        )


def _text(value: Any) -> str:
    if value is None:
        return ""
    inner = getattr(value, "value", value)
    return str(getattr(value, "md_str", None) or inner)


def host_commands(step: str, ran: Any) -> list[HostCommand]:
    """A step's commands as its metadata keeps them (:data:`COMMANDS_KEY`), per host."""
    if not isinstance(ran, dict):
        return []
    return [
        HostCommand(
            host,
            step,
            str(entry.get("command", "")),
            int(entry.get("count", 1)),
            int(entry.get("failed", 0)),
            float(entry.get("first", 0.0)),
        )
        for host, entries in ran.items()
        for entry in entries
        if isinstance(entry, dict)
    ]


def _failure(run: _Run) -> tuple[str | None, str] | None:
    if run.run.status != dg.DagsterRunStatus.FAILURE:
        return None
    # Imported here: notify imports the job module, whose ops import this module.
    from bm_upgrade.defs.notify import failure_of

    step, reason = failure_of(run.events)
    if step is None and reason == "the run failed before any step ran":
        ended = next((e for e in run.events if e.event_type_value == "RUN_FAILURE"), None)
        if ended is not None and ended.message:
            reason = ended.message
    return step, reason


def read_history(
    instance: dg.DagsterInstance, run: dg.DagsterRun, cluster: str, *, now: float
) -> RunHistory:
    """What the instance keeps of ``run`` and the runs it re-executes (see the module)."""
    runs = [_Run(instance, r, cluster) for r in run_chain(instance, run)]
    # Each step as the last run of the chain that executed it saw it.
    latest: dict[str, _Run] = {}
    for r in runs:
        for step in r.stats:
            latest[step] = r
    stats = sorted(
        ((step, r, r.stats[step]) for step, r in latest.items()),
        key=lambda item: (item[2].start_time or now, item[0]),
    )
    steps: list[StepTime] = []
    records: list[dict[str, Any]] = []
    commands: list[HostCommand] = []
    settings: RunSettings | None = None
    plan = ""
    for step, r, stat in stats:
        status = stat.status.value if stat.status else "IN_PROGRESS"
        steps.append(StepTime(step, status, stat.start_time, stat.end_time, r.run.run_id))
        output = r.outputs.get(step, {})
        kept = output if COMMANDS_KEY in output else r.failures.get(step, {})
        commands += host_commands(step, _json(kept.get(COMMANDS_KEY)))
        if step == "preflight" and step in r.handled:
            settings = decode(r.handled[step], RunSettings)
            plan = _plan_text(output.get(PLAN_KEY))
        if RECORDS_KEY in output:
            value = r.handled.get(step)
            done = value if isinstance(value, list) else _json(output[RECORDS_KEY])
            records += [dict(x) for x in done or [] if isinstance(x, dict)]
    ops: Any = run.run_config.get("ops", {})
    config: dict[str, Any] = ops.get("preflight", {}).get("config", {})
    approval = next(
        (
            {k: v for k, v in r.run.tags.items() if k in APPROVAL_TAGS.values()}
            for r in reversed(runs)
            if APPROVAL_TAGS["decision"] in r.run.tags
        ),
        {},
    )
    first = instance.get_run_record_by_id(runs[0].run.run_id)
    this = instance.get_run_record_by_id(run.run_id)
    return RunHistory(
        run_id=run.run_id,
        runs=[r.run.run_id for r in runs],
        job=run.job_name,
        status=run.status.value,
        started=first.start_time if first else None,
        ended=(this.end_time if this and this.end_time else now),
        target=settings.options.target_version
        if settings
        else str(config.get("target_version", "?")),
        dry_run=settings.dry_run if settings else bool(config.get("dry_run", False)),
        approval_tags=approval,
        before=dict(settings.before) if settings else None,
        options=settings.options if settings else None,
        plan=plan,
        steps=steps,
        records=records,
        commands=commands,
        changes=sorted((c for r in runs for c in r.changes), key=lambda c: c.at),
        failure=_failure(runs[-1]),
    )


def report_metadata(evidence: Evidence, source: str) -> dict[str, dg.RawMetadataValue]:
    """The materialization's metadata: the Markdown, the HTML page and what to find it by."""
    page = to_html(evidence)
    h = evidence.history
    return {
        "report": dg.MetadataValue.md(to_markdown(evidence)),
        "html_gzip": base64.b64encode(gzip.compress(page.encode(), 9)).decode("ascii"),
        "html_sha256": hashlib.sha256(page.encode()).hexdigest(),
        "html_bytes": dg.MetadataValue.int(len(page.encode())),
        "outcome": evidence.outcome,
        "run": dg.MetadataValue.dagster_run(h.run_id),
        "runs": dg.MetadataValue.json(h.runs),
        "target": h.target,
        "failovers": dg.MetadataValue.json(
            [
                {
                    "stripe": f.stripe,
                    "stopped": f.stopped,
                    "took_over": f.took_over,
                    "seconds": f.seconds,
                    "from": f.how,
                }
                for f in evidence.failovers
            ]
        ),
        "source": source,
    }


def report_events(
    evidence: Evidence, view: ClusterView | None, source: str
) -> list[dg.AssetMaterialization | MatrixEvent]:
    """The report's materialization, and the version matrix it looked at with its checks."""
    events: list[dg.AssetMaterialization | MatrixEvent] = [
        dg.AssetMaterialization(
            asset_key=report_key(evidence.cluster), metadata=report_metadata(evidence, source)
        )
    ]
    if view is not None:
        events += matrix_events(
            view, source=f"report of run {evidence.history.run_id}", run_id=evidence.history.run_id
        )
    return events


def _inventory_of(run: dg.DagsterRun, fallback: str) -> tuple[Inventory | None, str]:
    """The inventory the run was made from (its tag), else the code location's file."""
    errors = []
    for path in dict.fromkeys(p for p in (run.tags.get(INVENTORY_TAG), fallback) if p):
        try:
            return load_inventory(path), ""
        except BmUpgradeError as exc:
            errors.append(str(exc))
    return None, "; ".join(errors) or "no inventory file"


def report_of_finished_run(
    instance: dg.DagsterInstance, run: dg.DagsterRun, inventory_path: str, source: str
) -> list[dg.AssetMaterialization | MatrixEvent]:
    """The report of a run that ended without its report step: its history, and a look at
    the cluster now (when its inventory loads and its hosts answer)."""
    cluster = run.tags[CLUSTER_TAG]
    now = time.time()
    history = read_history(instance, run, cluster, now=now)
    inventory, error = _inventory_of(run, inventory_path)
    view: ClusterView | None = None
    if inventory is not None:
        try:
            with HostPool(inventory.ssh) as pool:
                view = observe_cluster(inventory, pool)
        except BmUpgradeError as exc:
            error = str(exc)
    evidence = Evidence.build(cluster, history, inventory, view, look_error=error, now=now)
    return report_events(evidence, view, source)


def build_report_sensors(clusters: dict[str, str]) -> list[dg.SensorDefinition]:
    """``upgrade_report_on_failure`` and ``upgrade_report_on_cancel``: the report of each
    failed or canceled upgrade run of ``clusters`` (cluster -> inventory file)."""

    def report(context: dg.RunStatusSensorContext, source: str) -> dg.SensorResult | None:
        run = context.dagster_run
        cluster = run.tags.get(CLUSTER_TAG)
        if cluster not in clusters or not run.job_name.startswith("upgrade_"):
            return None  # not an upgrade run of this code location
        if stored_report(context.instance, cluster, run.run_id) is not None:
            return None  # made already (`bm-upgrade report`)
        events = report_of_finished_run(context.instance, run, clusters[cluster], source)
        context.log.info("report of run %s of %s made", run.run_id, cluster)
        return dg.SensorResult(asset_events=list(events))

    @dg.run_failure_sensor(
        name="upgrade_report_on_failure",
        minimum_interval_seconds=5,
        monitor_all_code_locations=True,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Materializes the upgrade_report asset of each failed upgrade run.",
    )
    def on_failure(context: dg.RunFailureSensorContext) -> dg.SensorResult | None:
        return report(context, "run-failure sensor")

    @dg.run_status_sensor(
        name="upgrade_report_on_cancel",
        run_status=dg.DagsterRunStatus.CANCELED,
        minimum_interval_seconds=5,
        monitor_all_code_locations=True,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Materializes the upgrade_report asset of each canceled upgrade run.",
    )
    def on_cancel(context: dg.RunStatusSensorContext) -> dg.SensorResult | None:
        return report(context, "run-cancel sensor")

    return [on_failure, on_cancel]


def stored_report(instance: dg.DagsterInstance, cluster: str, run_id: str) -> dict[str, str] | None:
    """The latest report of run ``run_id`` (``{"markdown", "html"}``), or None."""
    records = instance.fetch_materializations(report_key(cluster), limit=200).records
    for record in records:
        materialization = record.asset_materialization
        if materialization is None:
            continue
        metadata = materialization.metadata
        run = metadata.get("run")
        if getattr(run, "run_id", None) == run_id:
            packed = base64.b64decode(_text(metadata.get("html_gzip")))
            page = gzip.decompress(packed).decode() if packed else ""
            return {"markdown": _text(metadata.get("report")), "html": page}
    return None


FINISHED = {
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
}


def evidence_report(instance: dg.DagsterInstance, run_id: str) -> tuple[dict[str, str], bool]:
    """The report of run ``run_id`` (``{"markdown", "html"}``) and whether it was made just
    now: a finished upgrade run without one (a failed run while no dagster-daemon ran its
    sensor) gets it made and stored as the sensor would (`bm-upgrade report`).

    Raises:
        UserError: no such run, not an upgrade run, or a run that has not ended.
    """
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise UserError(
            f"run {run_id} is not in the Dagster instance of DAGSTER_HOME; give a run id "
            "the UI's Runs page or `bm-upgrade run` showed"
        )
    cluster = run.tags.get(CLUSTER_TAG)
    if not cluster or not run.job_name.startswith("upgrade_"):
        raise UserError(f"run {run_id} ({run.job_name}) is not an upgrade run: it has no report")
    found = stored_report(instance, cluster, run_id)
    if found is not None:
        return found, False
    if run.status not in FINISHED:
        raise UserError(
            f"run {run_id} has not ended ({run.status.value}); its report is made when it "
            "ends: ask again then"
        )
    for event in report_of_finished_run(
        instance, run, run.tags.get(INVENTORY_TAG, ""), "bm-upgrade report"
    ):
        instance.report_runless_asset_event(event)
    made = stored_report(instance, cluster, run_id)
    assert made is not None  # just stored
    return made, True
