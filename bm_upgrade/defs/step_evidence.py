"""What each step of an upgrade run leaves for its evidence report, besides its records: the
commands its connections ran (:func:`commands_recorded`) and the server state changes its
looks saw (:func:`status_sink`).

Commands go into the step's output metadata under :data:`COMMANDS_KEY`, and into the
metadata of its failure when it fails (a failed step's commands are the evidence most wanted),
per host, each distinct line once with how many times it ran. State changes are observations of
the cluster's ``bm_upgrade/<cluster>/sync_status`` asset, logged by the step as they happen, so
the asset's history shows every departure from PASSIVE-STANDBY and return with the run (and
step) that caused it, however short: the sensor looks once a minute.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from bm_upgrade.procedure.status_changes import StatusChange, StatusSink
from bm_upgrade.remote import HostPool
from bm_upgrade.remote.commands import per_host

COMMANDS_KEY = "commands"
"""Step metadata (output, or failure): ``{host: [{command, count, failed, first}]}``."""
SOURCE = "upgrade run"
"""The ``source`` of a run's sync_status observations (the sensor's have none)."""


def status_key(cluster: str) -> dg.AssetKey:
    """The cluster's sync-status asset (defs/sensors.py)."""
    return dg.AssetKey(["bm_upgrade", cluster, "sync_status"])


@contextmanager
def commands_recorded(
    context: dg.OpExecutionContext, pool: HostPool
) -> Iterator[Callable[[], dict[str, list[dict[str, Any]]]]]:
    """The commands ``pool`` runs inside the block, as the step's output metadata; when the
    block raises a :class:`dagster.Failure` (a bm_upgrade error turned into one), the same
    failure again with the commands added to its metadata. Put it outside ``one_sentence``.
    Yields what reads the commands so far, per host (:func:`~bm_upgrade.remote.commands.
    per_host`)."""
    mark = pool.commands.mark()

    def ran() -> dict[str, list[dict[str, Any]]]:
        return per_host(pool.commands.since(mark))

    try:
        yield ran
    except dg.Failure as failure:
        commands = ran()
        if not commands:
            raise
        raise dg.Failure(
            description=failure.description,
            metadata={**failure.metadata, COMMANDS_KEY: dg.MetadataValue.json(commands)},
            allow_retries=failure.allow_retries,
        ) from (failure.__cause__ or failure)
    context.add_output_metadata({COMMANDS_KEY: dg.MetadataValue.json(ran())})


def status_sink(context: dg.OpExecutionContext, cluster: str) -> StatusSink:
    """Where a step's state changes go: one observation of the cluster's sync_status asset
    each, saying the change as the sensor says its own (``node: before -> after``), with the
    run and the step."""
    lock = threading.Lock()  # changes may come from a step's side-by-side threads
    key = status_key(cluster)

    def observe(change: StatusChange) -> None:
        metadata: dict[str, dg.RawMetadataValue] = {
            "changes": dg.MetadataValue.md(f"- {change.line()}"),
            "node": change.node,
            "stripe": change.stripe,
            "state": change.after.state,
            "version": change.after.version or "unknown",
            "role": change.after.role or "none",
            "before": change.before.describe(),
            "before_state": change.before.state,
            "seen_at": dg.MetadataValue.timestamp(change.at),
            "run_id": context.run_id,
            "step": context.op_handle.name,
            "source": SOURCE,
        }
        with lock:
            context.log_event(dg.AssetObservation(asset_key=key, metadata=metadata))

    return observe
