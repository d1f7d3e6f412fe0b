"""Running the upgrade job from the command line, against ``DAGSTER_HOME``, so every run shows
in the UI's run history: `bm-upgrade run` here, `bm-upgrade rerun` (re-execute from failure
with the parent run's config, as the UI's button does) in :mod:`bm_upgrade.defs.rerun`.

The names the command line and the tests use for launching live here: the instance
(:mod:`bm_upgrade.defs.instance`), the outcome (:mod:`bm_upgrade.defs.execution`) and
``rerun`` are importable from this module too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bm_upgrade.defs.config import UpgradeConfig, checked_config
from bm_upgrade.defs.execution import (
    RunOutcome,
    console_config,
    execute_here,
    one_run_per_cluster,
    read_inventory_sha256,
    reconstructable,
)
from bm_upgrade.defs.instance import INSTANCE_YAML, ensure_instance_yaml, instance, prepare_instance
from bm_upgrade.defs.progress import RunWatch
from bm_upgrade.defs.rerun import rerun
from bm_upgrade.defs.runclaim import CLUSTER_TAG, INVENTORY_SHA_TAG, INVENTORY_TAG
from bm_upgrade.inventory import Inventory, load_inventory
from bm_upgrade.progress_terminal import ProgressDisplay
from bm_upgrade.runinputs import check_run_inputs

__all__ = [
    "INSTANCE_YAML",
    "RunOutcome",
    "ensure_instance_yaml",
    "instance",
    "preflight_config",
    "prepare_instance",
    "rerun",
    "run_upgrade",
]


def preflight_config(
    inventory: Inventory,
    *,
    target: str | None = None,
    dry_run: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A run's preflight config: the inventory's values, then ``target``, ``dry_run`` and
    ``overrides`` (keys as in the inventory's ``policy:``; a block such as ``timeouts`` is
    merged key by key, so ``{"timeouts": {"sync_s": 3}}`` keeps the other timeouts).

    Raises:
        UserError: an override is not run config or does not fit, naming the key.
    """
    config = UpgradeConfig.defaults_for(inventory)
    if target:
        config["target_version"] = target
    config["dry_run"] = dry_run
    for key, value in (overrides or {}).items():
        block = config.get(key)
        config[key] = (
            {**block, **value} if isinstance(block, dict) and isinstance(value, dict) else value
        )
    checked_config(config, fix="fix the run's overrides")
    return config


def run_upgrade(
    inventory_path: str | Path,
    *,
    target: str | None = None,
    dry_run: bool = False,
    overrides: Mapping[str, Any] | None = None,
    on_run_id: Callable[[str], None] | None = None,
    display: ProgressDisplay | None = None,
    verbose: bool = True,
) -> RunOutcome:
    """Run ``upgrade_<cluster>`` for one inventory file and wait for it.

    Args:
        overrides: run config over the inventory's values (see :func:`preflight_config`).
        display: where the run's progress shows, step by step (none: nowhere).
        verbose: Dagster's console shows the steps' log lines.

    Raises:
        UserError: the inventory is invalid, an override is not run config, the target has
            no kit, the license file is missing, DAGSTER_HOME is not usable, another run of
            the cluster is going; each before the run is created and before any host is
            contacted.
    """
    path = str(Path(inventory_path).resolve())
    inventory = load_inventory(path)
    config = preflight_config(inventory, target=target, dry_run=dry_run, overrides=overrides)
    check_run_inputs(inventory, path, config["target_version"])
    inst = instance()
    one_run_per_cluster(inst, inventory.cluster)
    tags = {
        CLUSTER_TAG: inventory.cluster,
        INVENTORY_TAG: path,
        INVENTORY_SHA_TAG: read_inventory_sha256(path),
    }
    run_config = {"ops": {"preflight": {"config": config}}, **console_config(verbose)}
    watch = RunWatch.of(display, inst, inventory, run_config) if display else None
    return execute_here(
        reconstructable(path), inst, run_config, tags, on_run_id=on_run_id, watch=watch
    )
