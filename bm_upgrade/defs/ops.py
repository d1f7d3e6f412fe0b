"""The upgrade job's ops that check, prepare and report: preflight, download, stage_kit,
verify_servers, report. Short adapters over bm_upgrade.procedure; the ops that stop and start
nodes are in :mod:`bm_upgrade.defs.disruptive_ops`.

Every op loads the inventory (the cluster's topology) through the ``cluster`` resource, hands
the run's options (:attr:`RunSettings.options`, made by preflight from the run config) to the
procedure, and attaches what it found and did as metadata. In a dry run every op probes and
reports what it would do, and changes nothing.
"""

import time
from pathlib import Path

import dagster as dg

from bm_upgrade.defs.config import RunSettings, UpgradeConfig
from bm_upgrade.defs.logs import relayed_logs
from bm_upgrade.defs.op_context import Records, one_sentence
from bm_upgrade.defs.report_asset import PLAN_KEY, host_commands, read_history, report_events
from bm_upgrade.defs.resources import ClusterResource
from bm_upgrade.defs.step_evidence import commands_recorded
from bm_upgrade.defs.stopping import requested_stop
from bm_upgrade.defs.window_plan import plan_window, predicted_start
from bm_upgrade.plan import render_plan
from bm_upgrade.plan.render import render_prediction
from bm_upgrade.procedure import halt
from bm_upgrade.procedure.evidence import Evidence
from bm_upgrade.procedure.kit import (
    StagedKit,
    clean_staging,
    fetch_kit,
    prove_kit_version,
    stage_kit,
)
from bm_upgrade.procedure.observe import observe_cluster
from bm_upgrade.procedure.preflight import preflight
from bm_upgrade.procedure.report import Report, render_report
from bm_upgrade.redact import redact_url


@dg.op(
    name="preflight",
    description="Every check that can fail early, before anything is touched anywhere.",
)
def preflight_op(
    context: dg.OpExecutionContext, config: UpgradeConfig, cluster: ClusterResource
) -> RunSettings:
    inventory = cluster.load()
    with one_sentence():
        settings = RunSettings.from_config(config, inventory)
        settings = plan_window(
            context.instance,
            context.job_name,
            settings,
            inventory,
            respect_window=config.respect_window,
        )
    with (
        cluster.pool(inventory) as pool,
        commands_recorded(context, pool),
        one_sentence(),
        relayed_logs(),
    ):
        result = preflight(inventory, pool, settings.options, window_end=settings.window_end)
    settings = settings.with_before(result.view.versions())
    with one_sentence():
        prediction = predicted_start(
            context.instance,
            settings,
            inventory,
            result.plan,
            ignore_prediction=config.ignore_prediction,
        )
    context.add_output_metadata(
        {
            "predicted": dg.MetadataValue.md("\n".join(render_prediction(prediction))),
            "predicted_s": dg.MetadataValue.float(round(prediction.total_s, 1)),
            "checks": dg.MetadataValue.md("\n".join(f"- {c}" for c in result.checks)),
            "warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in result.warnings) or "none"),
            "before": dg.MetadataValue.json(result.view.as_dict()),
            "todo": dg.MetadataValue.int(len(result.plan.todo())),
            "dry_run": dg.MetadataValue.bool(settings.dry_run),
            "window_end": settings.window_end.isoformat() if settings.window_end else "none",
            # The evidence report's plan (defs/report_asset.py).
            PLAN_KEY: dg.MetadataValue.md(f"```\n{render_plan(result.plan)}\n```"),
        }
    )
    return settings


@dg.op(
    name="download",
    description="Download the target kit into the local cache and verify its sha256.",
)
def download_op(
    context: dg.OpExecutionContext, settings: RunSettings, cluster: ClusterResource
) -> str:
    inventory = cluster.load()
    kit = inventory.kit_for(settings.options.target_version)
    assert kit is not None  # preflight checked it
    if settings.dry_run:
        context.add_output_metadata({"would_fetch": redact_url(kit.url)})
        return ""
    started = time.monotonic()
    with one_sentence(), relayed_logs():
        path = fetch_kit(kit)
    context.add_output_metadata(
        {"kit": str(path), "sha256": kit.sha256, "seconds": round(time.monotonic() - started, 2)}
    )
    return str(path)


@dg.op(
    name="stage_kit",
    description="Upload the kit and the license key to every host, before any stop.",
)
def stage_kit_op(
    context: dg.OpExecutionContext, settings: RunSettings, kit_path: str, cluster: ClusterResource
) -> dict[str, StagedKit]:
    inventory = cluster.load()
    kit = inventory.kit_for(settings.options.target_version)
    assert kit is not None
    if settings.dry_run:
        context.add_output_metadata({"would_stage_on": ", ".join(inventory.hosts())})
        return {}
    target = settings.options.target_version
    # The nodes preflight saw on another version still need room for a new kit.
    pending = {n for n, v in settings.before.items() if v != target} if settings.before else None
    with (
        cluster.pool(inventory) as pool,
        commands_recorded(context, pool),
        one_sentence(),
        relayed_logs(),
    ):
        local = Path(kit_path)
        if not local.is_file():
            # Re-executed on another worker than download's: its cache has no copy yet.
            local = fetch_kit(kit)
        staged = stage_kit(
            pool,
            inventory,
            kit,
            local,
            Path(inventory.license_file),
            options=settings.options,
            pending=pending,
        )
        prove_kit_version(pool, inventory, kit, staged, pending=pending)
    context.add_output_metadata(
        {
            "hosts": dg.MetadataValue.json({h: s.kit_action for h, s in staged.items()}),
            "unpacked_bytes": dg.MetadataValue.int(
                next((s.unpacked_bytes or 0 for s in staged.values()), 0)
            ),
        }
    )
    return staged


@dg.op(
    name="verify_servers",
    description="Every server of every region on the target; every stripe one ACTIVE "
    "plus PASSIVE-STANDBY mirrors.",
)
def verify_servers_op(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    stripes: list[Records],
    cluster: ClusterResource,
) -> Records:
    """Outputs the stripe ops' records, in graph order (each stripe's mirrors, then its
    failover)."""
    inventory = cluster.load()
    with (
        cluster.pool(inventory) as pool,
        commands_recorded(context, pool),
        one_sentence(),
        relayed_logs(),
    ):
        view = observe_cluster(inventory, pool, clients=False, orchestrators=False)
    target = settings.options.target_version
    problems = view.server_problems(target)
    context.add_output_metadata({"servers": dg.MetadataValue.json(view.as_dict()["servers"])})
    if not settings.dry_run and problems:
        raise dg.Failure(
            description="verify: the servers are not all on "
            f"{target} with one ACTIVE and PASSIVE-STANDBY mirrors per stripe: "
            + "; ".join(problems)
            + "; re-execute the failed stripe steps, then this one"
        )
    return [r for records in stripes for r in records]


@dg.op(
    name="report",
    description="The evidence report, materialized as bm_upgrade/<cluster>/upgrade_report "
    "(Markdown and HTML): version matrix before and after (observed and checked as "
    "bm_upgrade/<cluster>/version_matrix), each step's duration, failovers, commands per host.",
)
def report_op(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    records: list[Records],
    cluster: ClusterResource,
) -> str:
    """``records``: the servers' (from verify_servers), then each client batch's, then the
    WAN cycle's. Outputs the short report the command line prints."""
    # Ctrl-C (or a stop asked of the run) during the last disruptive step: it finished
    # safely, and the run ends there, interrupted, as it would before any other step.
    asked = halt.stop_reason() or requested_stop(context.instance, context.run_id)
    if asked is not None:
        raise dg.Failure(
            description=f"report not started: {asked}; every step before it finished; "
            "rerun (or re-execute from failure) to write the report and remove the staged kits"
        )
    inventory = cluster.load()
    steps = [r for part in records for r in part]
    with (
        cluster.pool(inventory) as pool,
        commands_recorded(context, pool) as ran,
        one_sentence(),
        relayed_logs(),
    ):
        after = observe_cluster(inventory, pool)
        report = Report.build(inventory, settings, steps, after, run_id=context.run_id)
        if report.ok and not settings.dry_run:
            # Every step before this one succeeded: the staged kits are no longer needed
            # (the previous kits stay where the policy keeps them).
            report = report.with_cleanup(clean_staging(pool, inventory))
    text = render_report(report)
    now = time.time()
    history = read_history(context.instance, context.run, inventory.cluster, now=now)
    history.commands += host_commands(context.op_handle.name, ran())
    evidence = Evidence.build(
        inventory.cluster, history, inventory, after, cleanup=report.cleanup, now=now
    )
    for event in report_events(evidence, after, "report step"):
        # log_event takes check evaluations too (its annotation lags behind its code).
        context.log_event(event)  # type: ignore[arg-type]
    context.add_output_metadata(
        {"report": dg.MetadataValue.md(text), "after": dg.MetadataValue.json(after.as_dict())}
    )
    return text
