"""The Dagster code location: one ``upgrade_<cluster>`` job per inventory file, the schedule
of its maintenance window (when the inventory's window is on) and its sync-status sensor.

The inventories are the ``*.yaml`` files of the folder named by ``BM_UPGRADE_INVENTORY_DIR``
(default: ``.sandbox/demo`` under the working folder, where `make demo` and `make ui` put the
demo sandbox's inventory). This is the only module besides ``bm_upgrade/defs/`` that imports
dagster and the only place that knows environments. A folder that does not exist yields a
code location with no jobs; an invalid inventory fails the load with the inventory's own
message (file, field, fix), which the UI shows.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from bm_upgrade.defs.jobs import build_upgrade_job
from bm_upgrade.defs.notify import notify_run_failure, notify_run_success, post_alert
from bm_upgrade.defs.schedules import build_window_schedule
from bm_upgrade.defs.sensors import build_status_sensor, status_asset
from bm_upgrade.inventory import load_inventory

INVENTORY_DIR_ENV = "BM_UPGRADE_INVENTORY_DIR"
DEFAULT_INVENTORY_DIR = Path(".sandbox") / "demo"


def inventory_dir() -> Path:
    return Path(os.environ.get(INVENTORY_DIR_ENV) or DEFAULT_INVENTORY_DIR).expanduser()


def inventory_files(folder: Path) -> list[Path]:
    """The inventory files of ``folder`` (``*.yaml`` and ``*.yml``), sorted."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix in {".yaml", ".yml"} and p.is_file())


def build_definitions(folder: Path | None = None) -> dg.Definitions:
    """Per inventory file: the upgrade job, its window's schedule (when the window is on),
    its sync-status sensor and the status asset that sensor observes; the run notifications."""
    jobs, schedules, sensors, assets = [], [], [], []
    for path in inventory_files(folder or inventory_dir()):
        resolved = str(path.resolve())
        inventory = load_inventory(resolved)
        job = build_upgrade_job(inventory, resolved)
        jobs.append(job)
        schedule = build_window_schedule(inventory, job, resolved)
        if schedule is not None:
            schedules.append(schedule)
        sensors.append(build_status_sensor(inventory, resolved, alert=post_alert))
        assets.append(status_asset(inventory))
    if jobs:
        sensors += [notify_run_failure, notify_run_success]
    return dg.Definitions(jobs=jobs, schedules=schedules, sensors=sensors, assets=assets)


defs = build_definitions()
