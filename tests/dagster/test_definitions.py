"""The code location: one job per inventory file, its graph, its config defaults, its
executor; loaded the way `workspace.yaml` loads it."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from bm_upgrade.definitions import INVENTORY_DIR_ENV, build_definitions
from bm_upgrade.defs.config import RunSettings, UpgradeConfig
from bm_upgrade.defs.jobs import executor_for
from bm_upgrade.inventory import load_inventory
from bm_upgrade.inventory_checks import FAILOVER_NODE_PREFIX, MIRRORS_NODE_PREFIX
from tests.unit.inventories import minimal

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "inventory.yaml"


def test_code_location_loads_from_the_env_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(EXAMPLE, tmp_path / "prod.yaml")
    (tmp_path / "test.yml").write_text(yaml.safe_dump(minimal()))
    (tmp_path / "notes.txt").write_text("not an inventory")
    monkeypatch.setenv(INVENTORY_DIR_ENV, str(tmp_path))
    module = importlib.reload(importlib.import_module("bm_upgrade.definitions"))
    repo = module.defs.get_repository_def()
    jobs = sorted(job.name for job in repo.get_all_jobs() if not job.name.startswith("__"))
    assert jobs == [
        "approve_prod_eu",
        "approve_test",
        "pause_prod_eu",
        "pause_test",
        "upgrade_prod_eu",
        "upgrade_test",
    ]
    # The example's window is on, the minimal one's is the default (on): one schedule each;
    # a sync-status sensor per cluster, the two run notifications and the two reports of
    # runs that end without their report step.
    assert sorted(s.name for s in repo.schedule_defs) == ["window_prod_eu", "window_test"]
    assert sorted(s.name for s in repo.sensor_defs) == [
        "notify_run_failure",
        "notify_run_success",
        "sync_status_prod_eu",
        "sync_status_test",
        "upgrade_report_on_cancel",
        "upgrade_report_on_failure",
    ]
    for asset in ("sync_status", "version_matrix", "upgrade_report"):
        assert module.defs.resolve_assets_def(["bm_upgrade", "prod_eu", asset]) is not None
    checks = module.defs.resolve_asset_graph().asset_check_keys
    assert {(c.asset_key.path[1], c.name) for c in checks} == {
        (cluster, name)
        for cluster in ("prod_eu", "test")
        for name in ("one_version", "standby_per_stripe")
    }


def test_missing_folder_gives_an_empty_code_location(tmp_path: Path) -> None:
    defs = build_definitions(tmp_path / "nowhere")
    assert list(defs.get_repository_def().get_all_jobs()) == []


def test_job_graph_follows_the_procedure() -> None:
    job = build_definitions(REPO / "examples").resolve_job_def("upgrade_prod_eu")
    names = {node.name for node in job.graph.nodes}
    stripes = [("frankfurt", "stripe1"), ("frankfurt", "stripe2"), ("dublin", "stripe1")]
    assert names == {
        "preflight",
        "download",
        "stage_kit",
        "verify_servers",
        "restart_clients_1",
        "restart_clients_2",
        "wan_cycle",
        "report",
        *(f"{kind}_{r}_{s}" for r, s in stripes for kind in ("upgrade_mirrors", "failover")),
    }
    deps = job.graph.dependency_structure

    def upstream(node: str) -> set[str]:
        return {out.node_name for out in deps.all_upstream_outputs_from_node(node)}

    # Stripes side by side; within one, the failover after its own mirrors only.
    assert upstream("upgrade_mirrors_dublin_stripe1") == {"preflight", "stage_kit"}
    assert upstream("failover_dublin_stripe1") == {
        "preflight",
        "stage_kit",
        "upgrade_mirrors_dublin_stripe1",
    }
    # It gathers every stripe op's own records (outputs stay small: defs/outputs.py).
    assert upstream("verify_servers") == {"preflight"} | {
        f"{kind}_{r}_{s}" for r, s in stripes for kind in ("upgrade_mirrors", "failover")
    }
    chain = [
        ("stage_kit", "download"),
        ("download", "preflight"),
        ("restart_clients_1", "verify_servers"),
        ("restart_clients_2", "restart_clients_1"),
        ("wan_cycle", "restart_clients_2"),
        ("report", "wan_cycle"),
    ]
    for node, before in chain:
        assert before in upstream(node)
    assert job.tags["cluster"] == "prod_eu"
    # The ops read what they work on from their node's tags, not from their names.
    failover = job.graph.node_named("failover_dublin_stripe1")
    assert failover.tags["bm_upgrade/region"] == "dublin"
    assert failover.tags["bm_upgrade/stripe"] == "stripe1"
    assert job.graph.node_named("restart_clients_2").tags["bm_upgrade/batch"] == "2"
    # A failover goes before other stripes' mirrors when both are ready (the order is seen
    # in a real run: tests/e2e/test_halt_on_failure.py).
    assert failover.tags["dagster/priority"] == "1"
    assert "dagster/priority" not in job.graph.node_named("upgrade_mirrors_dublin_stripe1").tags


def test_stripe_steps_never_spell_another_step() -> None:
    """The inventory's collision check compares stripes with stripes only: that holds while no
    other node starts like a stripe's (inventory_checks.stripe_nodes)."""
    job = build_definitions(REPO / "examples").resolve_job_def("upgrade_prod_eu")
    others = [n.name for n in job.graph.nodes if "bm_upgrade/stripe" not in n.tags]
    assert others and not [
        n for n in others if n.startswith((MIRRORS_NODE_PREFIX, FAILOVER_NODE_PREFIX))
    ]


def test_config_defaults_come_from_the_inventory() -> None:
    inventory = load_inventory(EXAMPLE)
    job = build_definitions(REPO / "examples").resolve_job_def("upgrade_prod_eu")
    schema: Any = job.run_config_schema.config_type
    defaults = schema.fields["ops"].default_value
    config = defaults["preflight"]["config"]
    assert config["target_version"] == "4.2.1"
    assert config["failback"] is True and config["client_batch_size"] == 1
    assert config["timeouts"]["sync_s"] == inventory.policy.timeouts.sync_s
    settings = RunSettings.from_config(UpgradeConfig(**{**config, "failback": False}), inventory)
    assert settings.options.failback is False
    # A rollback's run: every step gets the run's target, not the inventory file's.
    rollback = RunSettings.from_config(
        UpgradeConfig(**{**config, "target_version": "4.2.0"}), inventory
    )
    assert rollback.options.target_version == "4.2.0"


def test_executor_is_chosen_by_parallel_stripes() -> None:
    inventory = load_inventory(EXAMPLE)
    assert inventory.policy.parallel_stripes == 2
    assert executor_for(inventory).name == "multiprocess"
    single = inventory.model_copy(
        update={"policy": inventory.policy.model_copy(update={"parallel_stripes": 1})}
    )
    assert executor_for(single) is dg.in_process_executor


def test_no_secret_in_the_run_config_schema() -> None:
    job = build_definitions(REPO / "examples").resolve_job_def("upgrade_prod_eu")
    schema: Any = job.run_config_schema.config_type
    text = str(schema.fields)
    for word in ("passphrase", "password", "key_file"):
        assert word not in text


def test_deploy_dagster_yaml_is_what_the_tool_writes() -> None:
    from bm_upgrade.defs.instance import INSTANCE_YAML

    assert (REPO / "deploy" / "dagster.yaml").read_text() == INSTANCE_YAML
