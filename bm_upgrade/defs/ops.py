"""The upgrade job's ops: short adapters over bm_upgrade.procedure.

Every op loads the inventory through the ``cluster`` resource, applies the run's settings
(from preflight), does its part through the plain-Python procedure, and attaches what it found
and did as metadata. In a dry run every op probes and reports the steps it would take, and
changes nothing.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from bm_upgrade.defs.config import RunSettings, UpgradeConfig
from bm_upgrade.defs.logs import procedure_log, relayed_logs
from bm_upgrade.defs.records import records_metadata
from bm_upgrade.defs.resources import ClusterResource
from bm_upgrade.defs.stopping import failure_check, signals_request_stop
from bm_upgrade.defs.window_plan import plan_window
from bm_upgrade.errors import BmUpgradeError
from bm_upgrade.inventory import Inventory, Region, Stripe
from bm_upgrade.procedure.batches import clients_of_node, upgrade_in_batches
from bm_upgrade.procedure.dry_run import would, would_stripe
from bm_upgrade.procedure.kit import StagedKit, clean_staging, fetch_kit, stage_kit
from bm_upgrade.procedure.observe import observe_cluster
from bm_upgrade.procedure.preflight import preflight
from bm_upgrade.procedure.records import StepRecord
from bm_upgrade.procedure.report import Report, render_report
from bm_upgrade.procedure.servers import ServerOps, failover, upgrade_mirrors
from bm_upgrade.procedure.verify import server_problems
from bm_upgrade.procedure.wan import cycle_orchestrators
from bm_upgrade.redact import redact_url

Records = list[dict[str, Any]]


@contextmanager
def one_sentence() -> Iterator[None]:
    """Turn a bm_upgrade error into a Dagster Failure whose description is the error's one
    sentence (what failed, where, what to do), so the UI and `bm-upgrade run` show that
    rather than a stack trace."""
    try:
        yield
    except BmUpgradeError as exc:
        notes = "\n".join(getattr(exc, "__notes__", []))
        raise dg.Failure(
            description=str(exc), metadata={"error": type(exc).__name__, "notes": notes or "none"}
        ) from exc


def _ctx(
    context: dg.OpExecutionContext,
    inventory: Inventory,
    pool: Any,
    settings: RunSettings,
    staged: dict[str, StagedKit] | None,
) -> ServerOps:
    """The procedure's context for a step that may stop things: the window check, and the
    earlier failures of the run that stop new disruptive work (defs/stopping.py)."""
    return ServerOps(
        inventory,
        pool,
        settings.options,
        dict(staged or {}),
        procedure_log(context),
        window=settings.window_guard(),
        halted=failure_check(context, settings.continue_on_failure),
    )


@dg.op(
    name="preflight",
    description="Every check that can fail early, before anything is touched anywhere.",
)
def preflight_op(
    context: dg.OpExecutionContext, config: UpgradeConfig, cluster: ClusterResource
) -> RunSettings:
    base = cluster.load()
    settings = RunSettings.from_config(config, base)
    inventory = settings.inventory_for_run(base)
    with one_sentence():
        settings = plan_window(
            context.instance,
            context.job_name,
            settings,
            inventory,
            respect_window=config.respect_window,
        )
    with one_sentence(), relayed_logs(), cluster.pool(inventory) as pool:
        result = preflight(inventory, pool, settings.options, window_end=settings.window_end)
    settings = settings.with_before(result.view.versions())
    context.add_output_metadata(
        {
            "checks": dg.MetadataValue.md("\n".join(f"- {c}" for c in result.checks)),
            "warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in result.warnings) or "none"),
            "before": dg.MetadataValue.json(result.view.as_dict()),
            "todo": dg.MetadataValue.int(len(result.plan.todo())),
            "dry_run": dg.MetadataValue.bool(settings.dry_run),
            "window_end": settings.window_end.isoformat() if settings.window_end else "none",
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
    inventory = settings.inventory_for_run(cluster.load())
    kit = inventory.kit_for(settings.options.target_version)
    assert kit is not None
    if settings.dry_run:
        context.add_output_metadata({"would_stage_on": ", ".join(inventory.hosts())})
        return {}
    target = settings.options.target_version
    # The nodes preflight saw on another version still need room for a new kit.
    pending = {n for n, v in settings.before.items() if v != target} if settings.before else None
    with one_sentence(), relayed_logs(), cluster.pool(inventory) as pool:
        staged = stage_kit(
            pool,
            inventory,
            kit,
            Path(kit_path),
            Path(inventory.license_file),
            options=settings.options,
            pending=pending,
        )
    context.add_output_metadata(
        {
            "hosts": dg.MetadataValue.json({h: s.kit_action for h, s in staged.items()}),
            "unpacked_bytes": dg.MetadataValue.int(
                next((s.unpacked_bytes or 0 for s in staged.values()), 0)
            ),
        }
    )
    return staged


REGION_TAG = "bm_upgrade/region"
STRIPE_TAG = "bm_upgrade/stripe"
BATCH_TAG = "bm_upgrade/batch"
"""Node tags (defs/jobs.py): the stripe a stripe step works on, a client batch's number."""


def _stripe_of(
    context: dg.OpExecutionContext, inventory: Inventory, cluster: ClusterResource
) -> tuple[Region, Stripe]:
    """The stripe this node works on, from its tags (defs/jobs.py)."""
    tags = context.op.tags
    region_name, stripe_name = tags.get(REGION_TAG), tags.get(STRIPE_TAG)
    for region in inventory.regions:
        for stripe in region.stripes:
            if (region.name, stripe.name) == (region_name, stripe_name):
                return region, stripe
    raise dg.Failure(
        f"{context.op_handle.name}: stripe {stripe_name} of region "
        f"{region_name} is not in {cluster.inventory_path} any more; reload the "
        "code location so the job matches the inventory"
    )


StripeWork = Callable[[ServerOps, Region, Stripe], list[StepRecord]]


def _stripe_step(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    staged: dict[str, StagedKit],
    cluster: ClusterResource,
    *,
    work: StripeWork,
    segments: set[str],
) -> list[StepRecord]:
    """One stripe step: ``work`` on the node's stripe, or its dry run."""
    inventory = settings.inventory_for_run(cluster.load())
    region, stripe = _stripe_of(context, inventory, cluster)
    with (
        signals_request_stop(context.op_handle.name),
        one_sentence(),
        relayed_logs(),
        cluster.pool(inventory) as pool,
    ):
        if settings.dry_run:
            records = would_stripe(
                inventory, settings.options, pool, region=region, stripe=stripe, segments=segments
            )
        else:
            records = work(_ctx(context, inventory, pool, settings, staged), region, stripe)
    context.add_output_metadata(records_metadata(records))
    return records


@dg.op(
    name="upgrade_mirrors",
    description="Upgrade one stripe's mirrors, one at a time: stop, install the target "
    "kit, start, confirm PASSIVE-STANDBY on the target. One node per stripe, "
    "named upgrade_mirrors_<region>_<stripe>.",
)
def upgrade_mirrors_op(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    staged: dict[str, StagedKit],
    cluster: ClusterResource,
) -> Records:
    records = _stripe_step(
        context, settings, staged, cluster, work=upgrade_mirrors, segments={"mirrors"}
    )
    return [r.as_dict() for r in records]


@dg.op(
    name="failover",
    description="Upgrade one stripe's active once its mirrors are done: stop it while a "
    "mirror is PASSIVE-STANDBY, wait for the takeover, upgrade the old active, "
    "confirm it PASSIVE-STANDBY, fail back if asked. One node per stripe, "
    "named failover_<region>_<stripe>, after its upgrade_mirrors step.",
)
def failover_op(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    staged: dict[str, StagedKit],
    before: Records,
    cluster: ClusterResource,
) -> Records:
    records = _stripe_step(
        context, settings, staged, cluster, work=failover, segments={"active", "failback"}
    )
    return before + [r.as_dict() for r in records]


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
    inventory = cluster.load()
    with one_sentence(), relayed_logs(), cluster.pool(inventory) as pool:
        view = observe_cluster(inventory, pool, clients=False, orchestrators=False)
    target = settings.options.target_version
    problems = server_problems(view, target)
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
    name="restart_clients",
    description="One batch of clients: stop, swap the jars for the target kit's, start, "
    "confirm. One node per batch, named restart_clients_<n>.",
)
def restart_clients_op(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    staged: dict[str, StagedKit],
    before: Records,
    cluster: ClusterResource,
) -> Records:
    inventory = settings.inventory_for_run(cluster.load())
    index = int(context.op.tags[BATCH_TAG]) - 1
    nodes = len([n for n in context.job_def.graph.nodes if BATCH_TAG in n.tags])
    size = settings.options.client_batch_size
    mine = clients_of_node(inventory, size, nodes, index)
    names = {c.name for c in mine}
    with (
        signals_request_stop(context.op_handle.name),
        one_sentence(),
        relayed_logs(),
        cluster.pool(inventory) as pool,
    ):
        if settings.dry_run:
            records = would(inventory, settings.options, pool, lambda s: s.node in names)
        else:
            records = upgrade_in_batches(
                _ctx(context, inventory, pool, settings, staged), mine, size
            )
    context.add_output_metadata(records_metadata(records))
    return before + [r.as_dict() for r in records]


@dg.op(
    name="wan_cycle",
    description="WAN orchestrators: stop standbys, then masters; upgrade all from one "
    "kit; start masters, then standbys; confirm every replica cache resynced.",
)
def wan_cycle_op(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    staged: dict[str, StagedKit],
    before: Records,
    cluster: ClusterResource,
) -> Records:
    inventory = settings.inventory_for_run(cluster.load())
    names = {o.name for r in inventory.regions for o in r.orchestrators}
    with (
        signals_request_stop(context.op_handle.name),
        one_sentence(),
        relayed_logs(),
        cluster.pool(inventory) as pool,
    ):
        if settings.dry_run:
            records = would(inventory, settings.options, pool, lambda s: s.phase == "orchestrators")
        else:
            ctx = _ctx(context, inventory, pool, settings, staged)
            records = cycle_orchestrators(ctx)
    context.add_output_metadata(records_metadata(records))
    context.log.info("orchestrators %s done", ", ".join(sorted(names)))
    return before + [r.as_dict() for r in records]


@dg.op(name="report", description="Version matrix before and after, each step's duration, skips.")
def report_op(
    context: dg.OpExecutionContext,
    settings: RunSettings,
    records: Records,
    cluster: ClusterResource,
) -> str:
    inventory = cluster.load()
    with one_sentence(), relayed_logs(), cluster.pool(inventory) as pool:
        after = observe_cluster(inventory, pool)
        report = Report.build(inventory, settings, records, after, run_id=context.run_id)
        if report.ok and not settings.dry_run:
            # Every step before this one succeeded: the staged kits are no longer needed
            # (the previous kits stay where the policy keeps them).
            report = report.with_cleanup(clean_staging(pool, inventory))
    text = render_report(report)
    context.add_output_metadata(
        {"report": dg.MetadataValue.md(text), "after": dg.MetadataValue.json(after.as_dict())}
    )
    return text
