"""What the upgrade job's ops share: a failure in one sentence, the node tags that say what a
node works on, and the procedure's context for a step that may stop things."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg

from bm_upgrade.defs.config import RunSettings
from bm_upgrade.defs.logs import procedure_log
from bm_upgrade.defs.step_evidence import status_sink
from bm_upgrade.defs.stopping import failure_check
from bm_upgrade.errors import BmUpgradeError
from bm_upgrade.inventory import Inventory, Region, Stripe
from bm_upgrade.procedure.kit import StagedKit
from bm_upgrade.procedure.servers import ServerOps
from bm_upgrade.remote import HostPool

Records = list[dict[str, Any]]
"""Step records as ops hand them on (each :class:`~bm_upgrade.procedure.records.StepRecord`
as a dict), gathered for the report."""

REGION_TAG = "bm_upgrade/region"
STRIPE_TAG = "bm_upgrade/stripe"
BATCH_TAG = "bm_upgrade/batch"
"""Node tags (defs/jobs.py): the stripe a stripe step works on, a client batch's number."""


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


def stripe_of(
    context: dg.OpExecutionContext, inventory: Inventory, inventory_path: str
) -> tuple[Region, Stripe]:
    """The stripe this node works on, from its tags (defs/jobs.py)."""
    tags = context.op.tags
    wanted = (tags.get(REGION_TAG), tags.get(STRIPE_TAG))
    for region, stripe in inventory.stripes():
        if (region.name, stripe.name) == wanted:
            return region, stripe
    raise dg.Failure(
        f"{context.op_handle.name}: stripe {wanted[1]} of region {wanted[0]} is not in "
        f"{inventory_path} any more; reload the code location so the job matches the inventory"
    )


def step_context(
    context: dg.OpExecutionContext,
    inventory: Inventory,
    pool: HostPool,
    settings: RunSettings,
    staged: Mapping[str, StagedKit],
) -> ServerOps:
    """The procedure's context for a step that may stop things: the run's options, the
    window check, and the earlier failures of the run that stop new disruptive work
    (defs/stopping.py); each server state change its looks see goes to the cluster's
    sync_status asset (defs/step_evidence.py)."""
    return ServerOps(
        inventory,
        pool,
        settings.options,
        dict(staged),
        procedure_log(context),
        window=settings.window_guard(),
        halted=failure_check(context, settings.options.continue_on_failure),
        run_tag=(context.run.root_run_id or context.run_id)[:8],
        on_status=status_sink(context, inventory.cluster),
    )
