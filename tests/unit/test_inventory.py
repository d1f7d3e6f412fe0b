"""Inventory validation: every cross-field rule, unknown keys, malformed files, messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bm_upgrade.errors import InventoryError
from bm_upgrade.inventory import json_schema, load_inventory, parse_inventory
from tests.unit.inventories import minimal, on_first_host, orchestrator, server, two_regions_wan

REPO = Path(__file__).resolve().parents[2]


def issues_of(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(data, "inv.yaml")
    assert caught.value.file == "inv.yaml"
    assert "inv.yaml" in str(caught.value)
    return [(i.path, i.message) for i in caught.value.issues]


def only_issue(data: Any) -> tuple[str, str]:
    issues = issues_of(data)
    assert len(issues) == 1, issues
    return issues[0]


def test_examples_are_valid() -> None:
    inv = load_inventory(REPO / "examples" / "inventory.yaml")
    assert inv.cluster == "prod_eu"
    assert inv.has_wan()
    assert parse_inventory(minimal(), "x").cluster == "test"
    assert parse_inventory(two_regions_wan(), "x").wan_master_region == "east"


def test_models_are_frozen() -> None:
    inv = parse_inventory(minimal(), "x")
    with pytest.raises(ValueError):
        inv.cluster = "other"  # type: ignore[misc]


def test_duplicate_region_names() -> None:
    data = minimal()
    data["regions"].append(
        dict(
            data["regions"][0],
            name="east",
            stripes=[{"name": "stripe9", "servers": [server("tsa-z", "10.9.0.1")]}],
            clients=[],
        )
    )
    path, message = only_issue(data)
    assert path == "regions[1].name"
    assert "'east'" in message and "unique" in message


def test_duplicate_stripe_names() -> None:
    data = minimal()
    data["regions"][0]["stripes"].append(
        {"name": "stripe1", "servers": [server("tsa-b1", "10.0.0.5")]}
    )
    path, message = only_issue(data)
    assert path == "regions[0].stripes[1].name"
    assert "stripe" in message and "unique" in message


def test_duplicate_server_names_across_regions() -> None:
    data = two_regions_wan()
    data["regions"][1]["stripes"][0]["servers"][1]["name"] = "east-s1-1"
    path, message = only_issue(data)
    assert path == "regions[1].stripes[0].servers[1].name"
    assert "regions[0].stripes[0].servers[0].name" in message


def test_duplicate_client_and_orchestrator_names() -> None:
    data = two_regions_wan()
    data["regions"][1]["clients"][0]["name"] = "east-app1"
    data["regions"][1]["orchestrators"][1]["name"] = "west-wan-m"
    issues = issues_of(data)
    paths = {p for p, _ in issues}
    assert paths == {"regions[1].clients[0].name", "regions[1].orchestrators[1].name"}


def test_stripe_without_server() -> None:
    data = minimal()
    data["regions"][0]["stripes"][0]["servers"] = []
    path, message = only_issue(data)
    assert path == "regions[0].stripes[0].servers"
    assert "no server" in message and "at least one" in message


SECOND_KIT = "/opt/terracotta/tsa-a2/bigmemory-max"
"""The second server's own kit root, for tests that put it on the first one's host."""


SECOND = "regions[0].stripes[0].servers[1]"


def test_same_host_same_port() -> None:
    issues = dict(issues_of(on_first_host(install_dir=SECOND_KIT)))
    assert set(issues) == {f"{SECOND}.tsa_port", f"{SECOND}.management_port"}
    message = issues[f"{SECOND}.tsa_port"]
    assert "9510" in message and "tsa-a1" in message and "10.0.0.1" in message


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"tsa_port": 9610}, "management_port", ["9540"]),
        # tsa_port 9520 on the same host collides with tsa-a1's implied jmx port (9510 + 10).
        ({"tsa_port": 9520, "management_port": 9640}, "tsa_port", ["9520"]),
        (
            {
                "tsa_port": 9610,
                "management_port": 9640,
                "data_dir": "/var/lib/terracotta/tsa-a1/data/",
            },
            "data_dir",
            ["tsa-a1", "own"],
        ),
    ],
    ids=["same-management-port", "implied-port", "same-data-dir"],
)
def test_same_host_collision(fields: dict[str, Any], field: str, words: list[str]) -> None:
    path, message = only_issue(on_first_host(install_dir=SECOND_KIT, **fields))
    assert path == f"{SECOND}.{field}"
    assert [w for w in words if w not in message] == []


def test_two_servers_on_one_host_with_distinct_ports_and_data_are_fine() -> None:
    data = on_first_host(tsa_port=9610, management_port=9640, install_dir=SECOND_KIT)
    inv = parse_inventory(data, "x")
    on_host = {
        s.name: (s.tsa_port, s.management_port, s.data_dir, s.install_dir)
        for _, _, s in inv.servers()
        if s.host == "10.0.0.1"
    }
    assert on_host == {
        "tsa-a1": (9510, 9540, "/var/lib/terracotta/tsa-a1/data", "/opt/terracotta/bigmemory-max"),
        "tsa-a2": (9610, 9640, "/var/lib/terracotta/tsa-a2/data", SECOND_KIT),
    }


def test_wan_needs_master_region() -> None:
    data = two_regions_wan()
    del data["wan_master_region"]
    path, message = only_issue(data)
    assert path == "wan_master_region"
    assert "east" in message and "west" in message


def test_wan_master_region_must_exist() -> None:
    data = two_regions_wan()
    data["wan_master_region"] = "north"
    path, message = only_issue(data)
    assert path == "wan_master_region"
    assert "'north'" in message


def test_wan_master_region_without_orchestrators() -> None:
    data = minimal(wan_master_region="east")
    path, message = only_issue(data)
    assert path == "wan_master_region"
    assert "orchestrators" in message


def test_region_orchestrators_need_a_master() -> None:
    data = two_regions_wan()
    data["regions"][1]["orchestrators"] = [orchestrator("west-wan-s", "10.1.8.2", "standby")]
    path, message = only_issue(data)
    assert path == "regions[1].orchestrators"
    assert "master" in message


@pytest.mark.parametrize("version", ["4.3.0", "4.2", "5.2.1", "4.2.x", "v4.2.1", "4.2.1-rc1"])
def test_version_pattern_rejected(version: str) -> None:
    path, message = only_issue(minimal(target_version=version))
    assert path == "target_version"
    assert "4.2.1" in message and repr(version) in message


@pytest.mark.parametrize("version", ["4.2.0", "4.2.17", "4.2.1.4.2"])
def test_version_pattern_accepted(version: str) -> None:
    data = minimal(target_version=version)
    data["kits"] = [dict(data["kits"][0], version=version)]
    assert parse_inventory(data, "x").target_version == version


def test_target_needs_a_kit() -> None:
    path, message = only_issue(minimal(target_version="4.2.7"))
    assert path == "target_version"
    assert "kit" in message and "4.2.7" in message


def test_kit_url_scheme_and_sha() -> None:
    data = minimal()
    data["kits"][0]["url"] = "ftp://x/k.tar.gz"
    data["kits"][1]["sha256"] = "123"
    issues = dict(issues_of(data))
    assert "http://" in issues["kits[0].url"]
    assert "64 hexadecimal" in issues["kits[1].sha256"]


@pytest.mark.parametrize("known_hosts", [None, "", "  "])
@pytest.mark.parametrize("accept", [False, True])
def test_known_hosts_must_name_a_file(known_hosts: str | None, accept: bool) -> None:
    # A null known_hosts with accept_unknown_host_keys: true used to mean no host key
    # checking at all; it is refused whatever else is set.
    data = minimal()
    data["ssh"].update(known_hosts=known_hosts, accept_unknown_host_keys=accept)
    path, message = only_issue(data)
    assert path == "ssh.known_hosts"
    assert "must name a known_hosts file" in message
    assert "bm-upgrade trust-hosts INVENTORY" in message


def test_host_keys_are_checked_by_default() -> None:
    # The default is to check against ~/.ssh/known_hosts and reject unknown keys.
    default = minimal()
    del default["ssh"]["known_hosts"]
    ssh = parse_inventory(default, "x").ssh
    assert ssh.known_hosts and not ssh.accept_unknown_host_keys


@pytest.mark.parametrize("key", ["password", "passphrase", "key_passphrase", "private_key"])
def test_inline_secrets_refused(key: str) -> None:
    data = minimal()
    data["ssh"][key] = "hunter2"
    path, message = only_issue(data)
    assert path == f"ssh.{key}"
    assert "secrets are never written" in message
    assert "hunter2" not in message


def test_passphrase_by_reference_only_one_source() -> None:
    data = minimal()
    data["ssh"].update(key_passphrase_env="BM_PASS", key_passphrase_file="/keys/pass")
    path, message = only_issue(data)
    assert path == "ssh"
    assert "only one" in message


def test_unknown_key_names_its_path() -> None:
    data = minimal()
    data["regions"][0]["stripes"][0]["servers"][1]["hots"] = "x"
    path, message = only_issue(data)
    assert path == "regions[0].stripes[0].servers[1].hots"
    assert "unknown key 'hots'" in message


def test_wrong_types_name_their_field() -> None:
    data = minimal()
    data["regions"][0]["stripes"][0]["servers"][0]["management_port"] = "nine"
    data["policy"] = {"client_batch_size": 0, "failback": "sometimes"}
    issues = dict(issues_of(data))
    assert set(issues) == {
        "regions[0].stripes[0].servers[0].management_port",
        "policy.client_batch_size",
        "policy.failback",
    }
    assert "'nine'" in issues["regions[0].stripes[0].servers[0].management_port"]


def test_missing_fields() -> None:
    data = minimal()
    del data["license_file"]
    del data["regions"][0]["stripes"][0]["servers"][0]["host"]
    issues = dict(issues_of(data))
    assert issues["license_file"].startswith("required field is missing")
    assert "regions[0].stripes[0].servers[0].host" in issues


def test_bad_literal() -> None:
    data = two_regions_wan()
    data["regions"][0]["orchestrators"][0]["role"] = "primary"
    path, message = only_issue(data)
    assert path == "regions[0].orchestrators[0].role"
    assert "'primary'" in message and "master" in message


def test_window_checks() -> None:
    data = minimal(window={"cron": "0 2 * *", "timezone": "Mars/Olympus"})
    issues = dict(issues_of(data))
    assert "5 fields" in issues["window.cron"]
    assert "IANA" in issues["window.timezone"]


def test_empty_file(tmp_path: Path) -> None:
    f = tmp_path / "inv.yaml"
    f.write_text("")
    with pytest.raises(InventoryError) as caught:
        load_inventory(f)
    assert "empty" in str(caught.value) and str(f) in str(caught.value)


def test_not_a_mapping(tmp_path: Path) -> None:
    f = tmp_path / "inv.yaml"
    f.write_text("- a\n- b\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(f)
    assert "mapping" in str(caught.value)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "inv.yaml"
    f.write_text("cluster: x\nregions:\n  - name: east\n   stripes: [\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(f)
    assert "malformed YAML at line" in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(tmp_path / "nope.yaml")
    assert "no such file" in str(caught.value)


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    f = tmp_path / "inv.yaml"
    f.write_text(yaml.safe_dump(two_regions_wan()))
    inv = load_inventory(f)
    assert [r.name for r in inv.regions] == ["east", "west"]
    assert len(inv.hosts()) == 2 * (4 + 2 + 2)


def test_schema_describes_the_inventory() -> None:
    schema = json_schema()
    assert schema["title"] == "bm_upgrade cluster inventory"
    assert {"cluster", "target_version", "kits", "regions", "ssh"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
