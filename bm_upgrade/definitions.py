"""The Dagster code location: one ``upgrade_<cluster>`` job per inventory file, its control jobs
(``approve_<cluster>``, ``pause_<cluster>``), the schedule of its maintenance window (when the
inventory's window is on) and its sync-status sensor.

The inventories are the ``*.yaml`` files of the folder named by ``BM_UPGRADE_INVENTORY_DIR``
(default: ``.sandbox/demo`` under the working folder, where `make demo` and `make ui` put the
demo sandbox's inventory). This is the only module besides ``bm_upgrade/defs/`` that imports
dagster and the only place that knows environments. A folder that does not exist yields a
code location with no jobs. A file that cannot be loaded (invalid, or naming a cluster another
file already names) is left out, alone: the other clusters keep their jobs, and the file gets
an ``inventory_error_<file>`` sensor whose description and every evaluation say what is wrong
(file, field, fix), as `bm-upgrade validate FILE` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from bm_upgrade.defs.control_jobs import build_control_jobs
from bm_upgrade.defs.jobs import build_upgrade_job
from bm_upgrade.defs.notify import notify_run_failure, notify_run_success, post_alert
from bm_upgrade.defs.prediction_load import LoadPredictions
from bm_upgrade.defs.report_asset import build_report_sensors, report_asset
from bm_upgrade.defs.schedules import build_window_schedule
from bm_upgrade.defs.sensors import (
    build_inventory_error_sensor,
    build_status_sensor,
    inventory_error_sensor_name,
    status_asset,
)
from bm_upgrade.defs.version_matrix import build_matrix_checks, matrix_asset
from bm_upgrade.errors import BmUpgradeError, FieldIssue, InventoryError
from bm_upgrade.inventory import load_inventory

INVENTORY_DIR_ENV = "BM_UPGRADE_INVENTORY_DIR"
DEFAULT_INVENTORY_DIR = Path(".sandbox") / "demo"


def inventory_dir() -> Path:
    return Path(os.environ.get(INVENTORY_DIR_ENV) or DEFAULT_INVENTORY_DIR).expanduser()


def inventory_files(folder: Path) -> list[Path]:
    """The inventory files of ``folder`` (``*.yaml`` and ``*.yml``), sorted."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())


@dataclass
class _Cluster:
    """What one inventory file adds to the code location."""

    path: str
    name: str
    jobs: list[dg.JobDefinition] = field(default_factory=list)
    schedules: list[dg.ScheduleDefinition] = field(default_factory=list)
    sensors: list[dg.SensorDefinition] = field(default_factory=list)
    assets: list[dg.AssetSpec] = field(default_factory=list)
    checks: list[dg.AssetChecksDefinition] = field(default_factory=list)

    def definitions(self) -> dg.Definitions:
        return dg.Definitions(
            jobs=self.jobs,
            schedules=self.schedules,
            sensors=self.sensors,
            assets=self.assets,
            asset_checks=self.checks,
        )


def _cluster(path: str, taken: dict[str, str], predictions: LoadPredictions) -> _Cluster:
    """Load one file and build its definitions.

    Raises:
        InventoryError: the file is invalid, or its cluster is already another file's.
        dagster.DagsterError: Dagster refused a definition built from it.
    """
    inventory = load_inventory(path)
    if inventory.cluster in taken:
        raise InventoryError(
            path,
            [
                FieldIssue(
                    "cluster",
                    f"cluster {inventory.cluster!r} is "
                    f"already the cluster of {taken[inventory.cluster]}"
                    "; give each inventory file its own cluster "
                    "name (jobs are named upgrade_<cluster>)",
                )
            ],
        )
    job = build_upgrade_job(inventory, path, predictions.describe(inventory))
    schedule = build_window_schedule(inventory, job)
    return _Cluster(
        path,
        inventory.cluster,
        jobs=[job, *build_control_jobs(inventory)],
        schedules=[schedule] if schedule is not None else [],
        sensors=[build_status_sensor(inventory, path, alert=post_alert)],
        assets=[status_asset(inventory), matrix_asset(inventory), report_asset(inventory)],
        checks=[build_matrix_checks(inventory, path)],
    )


def _error_sensors(broken: list[tuple[str, str]]) -> list[dg.SensorDefinition]:
    """One ``inventory_error_<file>`` sensor per file left out (``prod.yaml`` and
    ``prod.yml`` both broken: the second is ``..._2``)."""
    sensors: list[dg.SensorDefinition] = []
    names: set[str] = set()
    for path, error in broken:
        base = name = inventory_error_sensor_name(path)
        count = 1
        while name in names:
            count += 1
            name = f"{base}_{count}"
        names.add(name)
        sensors.append(build_inventory_error_sensor(name, path, error))
    return sensors


def build_definitions(folder: Path | None = None) -> dg.Definitions:
    """Per inventory file: the upgrade job, its window's schedule (when the window is on),
    its sync-status sensor and the status asset that sensor observes; the run notifications;
    per file that could not be loaded, its ``inventory_error_<file>`` sensor."""
    clusters: list[_Cluster] = []
    broken: list[tuple[str, str]] = []
    taken: dict[str, str] = {}
    # Each job's expected duration, from the past runs as this load finds them.
    predictions = LoadPredictions()
    for path in inventory_files(folder or inventory_dir()):
        resolved = str(path.resolve())
        try:
            cluster = _cluster(resolved, taken, predictions)
            cluster.definitions().get_repository_def()  # Dagster's own checks, file by file
        # Whatever fails while loading one file (our checks or Dagster's) must leave the
        # other clusters loaded: the failure is shown on the file's own sensor instead.
        except BmUpgradeError as exc:
            broken.append((resolved, str(exc)))
            continue
        except Exception as exc:
            broken.append(
                (
                    resolved,
                    f"{resolved}: its jobs could not be built ({exc!r}); "
                    "check it with `bm-upgrade validate`, then reload the code "
                    "location",
                )
            )
            continue
        taken[cluster.name] = resolved
        clusters.append(cluster)
    predictions.close()  # and hands them to the processes that rebuild the location
    sensors = [s for c in clusters for s in c.sensors] + _error_sensors(broken)
    if clusters:
        sensors += [notify_run_failure, notify_run_success]
        # The evidence report of every failed or canceled run (defs/report_asset.py).
        sensors += build_report_sensors({c.name: c.path for c in clusters})
    return dg.Definitions(
        jobs=[j for c in clusters for j in c.jobs],
        schedules=[s for c in clusters for s in c.schedules],
        sensors=sensors,
        assets=[a for c in clusters for a in c.assets],
        asset_checks=[check for c in clusters for check in c.checks],
    )


defs = build_definitions()
