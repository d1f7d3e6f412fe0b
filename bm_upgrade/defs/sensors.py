"""The sync-status sensor of each cluster: every N seconds it probes every server's role,
state and version and every orchestrator, and records what changed as an observation of the
cluster's status asset (``bm_upgrade/<cluster>/sync_status``), so the asset's history in the
UI shows when a mirror left PASSIVE-STANDBY and when it came back (an upgrade run records the
changes it sees itself, however short: defs/step_evidence.py). With each change it also
observes the cluster's ``version_matrix`` asset and evaluates its two checks
(defs/version_matrix.py). Alerts (no standby for too
long; mixed versions while no upgrade runs) go to the sensor's log and the webhook, once each,
when they start and when they end: the sensor's cursor remembers the previous look.

An inventory file the code location could not load gets an ``inventory_error_<file>``
sensor instead of its job: each evaluation reads the file again and logs why it was left out
(the sensor's ticks in the UI show it), so one broken file does not hide the other clusters.

Settings (environment of the code location): ``BM_UPGRADE_STATUS_INTERVAL_S`` (seconds
between looks, default 60), ``BM_UPGRADE_NO_STANDBY_ALERT_S`` (default 300).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

import dagster as dg

from bm_upgrade.defs.jobs import runs_going
from bm_upgrade.defs.version_matrix import matrix_events
from bm_upgrade.errors import BmUpgradeError, UserError
from bm_upgrade.inventory import Inventory, load_inventory
from bm_upgrade.procedure.observe import ClusterView, observe_cluster
from bm_upgrade.procedure.watch import WatchMemory, WatchResult, watch_step
from bm_upgrade.redact import redact_urls
from bm_upgrade.remote import HostPool

INTERVAL_ENV = "BM_UPGRADE_STATUS_INTERVAL_S"
NO_STANDBY_ENV = "BM_UPGRADE_NO_STANDBY_ALERT_S"
Alert = Callable[[Inventory, str], None]
"""Where an alert goes besides the sensor's log (the webhook, when one is set)."""


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise UserError(
            f"{name}={text!r} is not a positive number of seconds; fix or "
            "unset it in the code location's environment"
        )
    return value


def status_asset_key(inventory: Inventory) -> dg.AssetKey:
    return dg.AssetKey(["bm_upgrade", inventory.cluster, "sync_status"])


def status_asset(inventory: Inventory) -> dg.AssetSpec:
    """The asset whose observations are the cluster's sync-status history."""
    return dg.AssetSpec(
        status_asset_key(inventory),
        group_name="bm_upgrade",
        description=f"Roles, states and versions of every server and "
        f"orchestrator of {inventory.cluster}: one observation "
        "per change, from the sync_status sensor.",
    )


def look(
    inventory: Inventory,
    memory: WatchMemory,
    instance: dg.DagsterInstance,
    no_standby_alert_s: float,
    now: float | None = None,
) -> tuple[WatchResult, ClusterView, bool]:
    """One tick's work: probe the servers and orchestrators, compare with the memory; returns
    the comparison, the look, and whether an upgrade run of the cluster is going.

    A server that answers its probe is taken at its word (state, version); only one that does
    not is looked at over SSH, so with REST probes a healthy cluster costs no SSH session for
    its servers.
    """
    with HostPool(inventory.ssh) as pool:
        view = observe_cluster(inventory, pool, clients=False)
    upgrading = bool(runs_going(instance, inventory.cluster))
    result = watch_step(
        memory,
        view,
        time.time() if now is None else now,
        upgrading=upgrading,
        no_standby_alert_s=no_standby_alert_s,
    )
    return result, view, upgrading


def observation(inventory: Inventory, result: WatchResult) -> dg.AssetObservation:
    stripes = {server.name: f"{r.name}/{s.name}" for r, s, server in inventory.servers()}
    rows = ["| node | stripe | role | state | version |", "|---|---|---|---|---|"]
    for name, node in result.memory.nodes.items():
        rows.append(
            f"| {name} | {stripes.get(name, '-')} | {node.get('role') or '-'} | "
            f"{node.get('state') or '-'} | {node.get('version') or '-'} |"
        )
    return dg.AssetObservation(
        asset_key=status_asset_key(inventory),
        metadata={
            "nodes": dg.MetadataValue.md("\n".join(rows)),
            "changes": dg.MetadataValue.md("\n".join(f"- {c}" for c in result.changes) or "none"),
            "alerts": dg.MetadataValue.md(
                "\n".join(f"- {a}" for a in result.memory.alerts.values()) or "none"
            ),
            "without_standby": dg.MetadataValue.json(sorted(result.memory.no_standby_since)),
            "state": dg.MetadataValue.json(result.memory.nodes),
        },
    )


def build_status_sensor(
    inventory: Inventory, inventory_path: str, alert: Alert | None = None
) -> dg.SensorDefinition:
    """``sync_status_<cluster>``: runs by default (it only reads)."""
    interval = int(_seconds(INTERVAL_ENV, 60.0))

    @dg.sensor(
        name=f"sync_status_{inventory.cluster}",
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Probes every server and orchestrator of {inventory.cluster} "
        f"every {interval} s; records changes on its sync_status asset; "
        "alerts on a stripe without standby or mixed versions.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        try:
            current = load_inventory(inventory_path)
            threshold = _seconds(NO_STANDBY_ENV, 300.0)
            result, view, upgrading = look(
                current, WatchMemory.from_cursor(context.cursor), context.instance, threshold
            )
        except BmUpgradeError as exc:
            return dg.SkipReason(f"no look at {inventory.cluster}: {exc}")
        for message in result.raised + result.ended:
            context.log.warning(message)
            if alert is not None:
                alert(current, message)
        cursor = result.memory.to_cursor()
        if not (result.changes or result.raised or result.ended):
            context.update_cursor(cursor)
            return dg.SkipReason(f"{inventory.cluster}: no change")
        # Each change also observes the version matrix and judges its checks on this look.
        matrix = matrix_events(view, upgrading=upgrading, source="sync_status sensor")
        return dg.SensorResult(asset_events=[observation(current, result), *matrix], cursor=cursor)

    return _sensor


def inventory_error_sensor_name(file: str) -> str:
    """``inventory_error_<file name without suffix>``, as a valid Dagster name."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", os.path.splitext(os.path.basename(file))[0])
    return f"inventory_error_{stem}"


def build_inventory_error_sensor(name: str, inventory_path: str, error: str) -> dg.SensorDefinition:
    """A sensor that stands for an inventory file left out of the code location: it never
    requests a run; each evaluation logs the file's problem and skips, saying it."""
    interval = int(_seconds(INTERVAL_ENV, 60.0))
    error = redact_urls(error)

    @dg.sensor(
        name=name,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"{inventory_path} was left out of the code location, so its "
        f"cluster has no job: {error}",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        try:
            load_inventory(inventory_path)
        except BmUpgradeError as exc:
            now = redact_urls(str(exc))
        else:
            now = (
                f"{error} (the file itself validates now: once it is fixed, reload the "
                "code location to load its job)"
            )
        context.log.error(now)
        return dg.SkipReason(now)

    return _sensor
