"""The run config: every policy field a run may override, by the policy's own names, with
the inventory's values as defaults; a run config's values reach the run's options; a wrong
key is one message naming it, before any run exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from bm_upgrade.defs.config import RUN_POLICY_FIELDS, RunSettings, UpgradeConfig
from bm_upgrade.defs.jobs import build_upgrade_job
from bm_upgrade.defs.launch import preflight_config, run_upgrade
from bm_upgrade.errors import UserError
from bm_upgrade.inventory import Inventory, Policy, Timeouts, load_inventory
from bm_upgrade.plan import PlanOptions
from tests.unit.inventories import minimal

# Every value unlike Policy's default, so a default taken from anywhere but the inventory
# shows.
TIMEOUTS = {
    "stop_s": 11.0,
    "start_s": 12.0,
    "sync_s": 13.0,
    "failover_s": 14.0,
    "client_s": 15.0,
    "orchestrator_s": 16.0,
    "approval_s": 17.0,
}
POLICY: dict[str, object] = {
    "failback": True,
    "delete_dirty_backups": True,
    "keep_previous_kit": False,
    "client_batch_size": 3,
    "parallel_stripes": 2,
    "allow_downtime": True,
    "accept_data_loss": True,
    "continue_on_failure": True,
    "canary": "east/stripe1",
    "backup_before_upgrade": False,
    "timeouts": TIMEOUTS,
}


@pytest.fixture
def inventory_path(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(minimal(policy=POLICY)), encoding="utf-8")
    return path


@pytest.fixture
def inventory(inventory_path: Path) -> Inventory:
    return load_inventory(inventory_path)


def test_every_policy_field_but_parallel_stripes_is_run_config(inventory: Inventory) -> None:
    assert set(RUN_POLICY_FIELDS) == set(Policy.model_fields) - {"parallel_stripes"}
    assert "parallel_stripes" not in UpgradeConfig.model_fields  # it shapes the graph
    policy, default_policy = inventory.policy.model_dump(), Policy().model_dump()
    assert all(policy[name] != default_policy[name] for name in RUN_POLICY_FIELDS)
    defaults = UpgradeConfig.defaults_for(inventory)
    class_defaults = UpgradeConfig(target_version="4.2.1").model_dump()
    for name in RUN_POLICY_FIELDS:
        assert defaults[name] == policy[name], name
        assert class_defaults[name] == default_policy[name], name
    assert defaults["target_version"] == inventory.target_version
    settings = RunSettings.from_config(UpgradeConfig(**defaults), inventory)
    assert settings.options == PlanOptions.from_inventory(inventory)


def test_the_job_offers_the_inventory_values(inventory: Inventory, inventory_path: Path) -> None:
    job = build_upgrade_job(inventory, str(inventory_path))
    schema: Any = job.run_config_schema.config_type
    offered = schema.fields["ops"].default_value["preflight"]["config"]
    assert offered == UpgradeConfig.defaults_for(inventory)
    assert offered["timeouts"]["sync_s"] == 13.0


def test_a_run_config_override_reaches_the_options(
    inventory: Inventory, inventory_path: Path
) -> None:
    job = build_upgrade_job(inventory, str(inventory_path))
    chosen = {
        "target_version": "4.2.0",
        "failback": False,
        "delete_dirty_backups": False,
        "keep_previous_kit": True,
        "client_batch_size": 1,
        "allow_downtime": False,
        "accept_data_loss": False,
        "continue_on_failure": False,
        "backup_before_upgrade": True,
        "timeouts": {"sync_s": 3.0},
    }
    config = preflight_config(inventory, overrides=chosen)
    # Through Dagster's own config processing, as a launch does.
    processed = dg.validate_run_config(job, {"ops": {"preflight": {"config": config}}})
    taken = UpgradeConfig(**processed["ops"]["preflight"]["config"])
    options = RunSettings.from_config(taken, inventory).options
    assert options.target_version == "4.2.0"
    for name, value in chosen.items():
        if name not in ("target_version", "timeouts"):
            assert getattr(options, name) == value, name
    # A block is merged key by key: the other timeouts stay the inventory's.
    assert options.timeouts == Timeouts(**{**TIMEOUTS, "sync_s": 3.0})
    assert options.parallel_stripes == 2


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"sync_timeout_s": 3.0}, "sync_timeout_s is not a run config key"),
        ({"parallel_stripes": 4}, "parallel_stripes is not a run config key"),
        ({"timeouts": {"sync": 3.0}}, "timeouts.sync is not a run config key"),
        ({"timeouts": {"sync_s": 0}}, "timeouts.sync_s=0: Input should be greater than 0"),
        ({"client_batch_size": 0}, "client_batch_size=0: Input should be greater than"),
    ],
)
def test_a_wrong_override_is_refused_naming_its_key(
    inventory_path: Path, overrides: dict[str, Any], named: str
) -> None:
    with pytest.raises(UserError, match="fix the run's overrides") as info:
        run_upgrade(inventory_path, overrides=overrides)
    assert str(info.value).startswith(f"run config: {named}")
