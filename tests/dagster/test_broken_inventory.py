"""One broken inventory file leaves the other clusters in the code location, and its error is
shown by its ``inventory_error_<file>`` sensor; the inventory's checks agree with Dagster's
names and crons (what `validate` accepts, the code location loads)."""

from __future__ import annotations

import importlib
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._utils.schedules import is_valid_cron_schedule

from bm_upgrade.cron import parse_cron
from bm_upgrade.definitions import INVENTORY_DIR_ENV, build_definitions
from bm_upgrade.defs.jobs import build_upgrade_job
from bm_upgrade.inventory import parse_inventory
from bm_upgrade.inventory_checks import graph_name, stripe_nodes
from tests.dagster.test_window import CRONS as WINDOW_CRONS
from tests.unit.inventories import minimal, server


def names(defs: dg.Definitions) -> tuple[list[str], list[str]]:
    repo = defs.get_repository_def()
    # The clusters' upgrade jobs (each also has its control jobs, approve_ and pause_).
    jobs = sorted(j.name for j in repo.get_all_jobs() if j.name.startswith("upgrade_"))
    return jobs, sorted(s.name for s in repo.sensor_defs)


def evaluate(defs: dg.Definitions, sensor: str) -> str:
    definition = defs.get_repository_def().get_sensor_def(sensor)
    result = definition.evaluate_tick(dg.build_sensor_context())
    assert result.run_requests == []
    assert result.skip_message is not None
    return result.skip_message


def test_one_broken_file_leaves_the_others_and_shows_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(minimal()), encoding="utf-8")
    bad = minimal(cluster="other")
    bad["regions"][0]["stripes"].append(
        {"name": "stripe.1", "servers": [server("tsa-b1", "10.0.0.5")]}
    )
    bad["regions"][0]["stripes"][0]["name"] = "stripe-1"
    (tmp_path / "prod-eu.yaml").write_text(yaml.safe_dump(bad), encoding="utf-8")
    monkeypatch.setenv(INVENTORY_DIR_ENV, str(tmp_path))
    # Loaded the way workspace.yaml loads it: the module's defs, nothing raised.
    defs = importlib.reload(importlib.import_module("bm_upgrade.definitions")).defs
    jobs, sensors = names(defs)
    assert jobs == ["upgrade_test"]
    assert "inventory_error_prod_eu" in sensors and "sync_status_test" in sensors
    sensor = defs.get_repository_def().get_sensor_def("inventory_error_prod_eu")
    assert str(tmp_path / "prod-eu.yaml") in (sensor.description or "")
    message = evaluate(defs, "inventory_error_prod_eu")
    assert str(tmp_path / "prod-eu.yaml") in message
    assert "regions[0].stripes[1].name" in message and "upgrade_mirrors_east_stripe_1" in message
    # Fixed on disk: the sensor says so (the job comes with a reload of the code location).
    (tmp_path / "prod-eu.yaml").write_text(
        yaml.safe_dump(minimal(cluster="other")), encoding="utf-8"
    )
    assert "reload the code location" in evaluate(defs, "inventory_error_prod_eu")
    assert names(build_definitions(tmp_path))[0] == ["upgrade_other", "upgrade_test"]


def test_two_files_of_one_cluster_keep_the_first(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yml"):
        (tmp_path / name).write_text(yaml.safe_dump(minimal()), encoding="utf-8")
    defs = build_definitions(tmp_path)
    jobs, sensors = names(defs)
    assert jobs == ["upgrade_test"] and "inventory_error_b" in sensors
    message = evaluate(defs, "inventory_error_b")
    assert (
        f"{tmp_path / 'b.yml'}: cluster: cluster 'test' is already the cluster of "
        f"{tmp_path / 'a.yaml'}" in message
    )


def test_only_broken_files_give_their_sensors_and_no_job(tmp_path: Path) -> None:
    (tmp_path / "x-1.yaml").write_text("cluster: x\n", encoding="utf-8")
    (tmp_path / "x_1.yml").write_text("[", encoding="utf-8")
    defs = build_definitions(tmp_path)
    assert names(defs) == ([], ["inventory_error_x_1", "inventory_error_x_1_2"])
    assert "target_version" in evaluate(defs, "inventory_error_x_1")
    assert "malformed YAML" in evaluate(defs, "inventory_error_x_1_2")


@pytest.mark.parametrize(
    ("parts", "name"),
    [
        (("upgrade", "eu-west.1", "stripe-2"), "upgrade_eu_west_1_stripe_2"),
        (("a", "b"), "a_b"),
        (("upgrade", "r_1", "s.x-y"), "upgrade_r_1_s_x_y"),
    ],
)
def test_the_inventory_names_steps_as_the_job_does(
    parts: tuple[str, ...], name: str, tmp_path: Path
) -> None:
    assert graph_name(*parts) == name
    data = minimal()
    data["regions"][0]["name"] = "eu-west.1"
    data["regions"][0]["stripes"][0]["name"] = "stripe-2"
    inventory = parse_inventory(data, "x")
    region = inventory.regions[0]
    nodes = stripe_nodes(region.name, region.stripes[0].name)
    assert nodes == ("upgrade_mirrors_eu_west_1_stripe_2", "failover_eu_west_1_stripe_2")
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    graph = build_upgrade_job(inventory, str(path)).graph
    assert set(nodes) <= {node.name for node in graph.nodes}


# The window tests' crons, then edge cases and crons the inventory refuses.
CRONS = [
    *WINDOW_CRONS,
    "0 0 29 2 *",
    "0 2 * * 1-7",
    "99 99 * * 9",
    "0 0 31 2 *",
    "0 0 30 2 1",
    "0 0 31 4,6 *",
    "0 2 */0 * *",
    "0 2 * *",
    "0 2 * * 0,7",
    "5/15 * * * *",
    "0 0 31 */2 *",
]


@pytest.mark.parametrize("cron", CRONS)
def test_a_cron_the_inventory_accepts_is_one_dagster_accepts(cron: str) -> None:
    try:
        parse_cron(cron)
    except ValueError:
        return
    assert is_valid_cron_schedule(cron)
