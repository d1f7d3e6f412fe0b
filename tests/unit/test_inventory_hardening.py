"""Inventory checks added for issue 11: remote paths and kit roots (B1), known_hosts (D1),
YAML alias bombs, stripe names that collide as graph nodes and impossible crons (E), host
values (F); and every sandbox topology's generated inventory still validates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bm_upgrade.errors import InventoryError
from bm_upgrade.inventory import load_inventory, parse_inventory
from bm_upgrade.inventory_checks import graph_name, url_host
from tests.unit.inventories import (
    KIT_SHA,
    client,
    minimal,
    on_first_host,
    server,
    two_regions_wan,
)
from tests.unit.test_inventory import issues_of, only_issue

SERVER = "regions[0].stripes[0].servers[0]"


# -- B1: remote paths -----------------------------------------------------------------------
BAD_PATHS = [
    ("opt/tc", "not an absolute path"),
    ("~/tc", "not an absolute path"),
    ("/opt/../tc", "'/tc'"),
    ("/opt/tc/..", "'/opt'"),
    ("/opt/./tc", "'/opt/tc'"),
    ("/opt//tc", "'/opt/tc'"),
    ("/", "root folder"),
    ("//", "root folder"),
    ("/opt/tc\n/x", "control character"),
]


@pytest.mark.parametrize("field", ["install_dir", "tc_config", "data_dir", "console_log"])
@pytest.mark.parametrize("value, expected", BAD_PATHS)
def test_server_paths_are_absolute_and_normalised(field: str, value: str, expected: str) -> None:
    data = minimal()
    data["regions"][0]["stripes"][0]["servers"][0][field] = value
    path, message = only_issue(data)
    assert path == f"{SERVER}.{field}"
    assert expected in message


@pytest.mark.parametrize(
    "where, field",
    [
        ("clients", "lib_dir"),
        ("orchestrators", "install_dir"),
        ("orchestrators", "wan_xml"),
        ("orchestrators", "console_log"),
    ],
)
def test_client_and_orchestrator_paths_are_checked(where: str, field: str) -> None:
    data = two_regions_wan()
    data["regions"][1][where][0][field] = "/opt/app/../lib"
    path, message = only_issue(data)
    assert path == f"regions[1].{where}[0].{field}"
    assert "not normalised" in message and "'/opt/lib'" in message


def test_a_trailing_slash_is_fine() -> None:
    data = minimal()
    data["regions"][0]["stripes"][0]["servers"][0]["install_dir"] = "/opt/tc/bigmemory-max/"
    inv = parse_inventory(data, "x")
    first = next(s for _, _, s in inv.servers())
    assert first.kit_root.path == "/opt/tc/bigmemory-max"


@pytest.mark.parametrize(
    "field, inside",
    [
        ("data_dir", "/opt/terracotta/bigmemory-max/data"),
        ("tc_config", "/opt/terracotta/bigmemory-max/tc.xml"),
        ("data_dir", "/opt/terracotta/bigmemory-max"),
    ],
)
def test_data_and_tc_config_never_inside_the_kit_root(field: str, inside: str) -> None:
    data = minimal()
    data["regions"][0]["stripes"][0]["servers"][0][field] = inside
    path, message = only_issue(data)
    assert path == f"{SERVER}.{field}"
    assert "its own kit root" in message and "outside every install_dir" in message


def test_wan_xml_never_inside_the_kit_root() -> None:
    data = two_regions_wan()
    data["regions"][0]["orchestrators"][1]["wan_xml"] = "/opt/terracotta/bigmemory-max/wan.xml"
    path, message = only_issue(data)
    assert path == "regions[0].orchestrators[1].wan_xml"
    assert "kit root" in message


def test_data_inside_another_nodes_kit_root_on_the_same_host() -> None:
    data = on_first_host(
        tsa_port=9610,
        management_port=9640,
        install_dir="/opt/tc-b",
        data_dir="/opt/terracotta/bigmemory-max/b-data",
    )
    path, message = only_issue(data)
    assert path == "regions[0].stripes[0].servers[1].data_dir"
    assert "kit root of 'tsa-a1'" in message and SERVER in message


@pytest.mark.parametrize(
    "install_dir",
    [
        "/opt/terracotta/bigmemory-max",
        "/opt/terracotta/bigmemory-max/",
        "/opt/terracotta/bigmemory-max/inner",
        "/opt/terracotta",
    ],
)
def test_two_servers_of_one_host_never_share_a_kit_root(install_dir: str) -> None:
    data = minimal()
    second = data["regions"][0]["stripes"][0]["servers"][1]
    # The same host, spelled in another case: still one host.
    data["regions"][0]["stripes"][0]["servers"][0]["host"] = "tsa1.example.com"
    second.update(
        host="TSA1.example.com",
        tsa_port=9610,
        management_port=9640,
        install_dir=install_dir,
        data_dir="/var/tsa-a2",
    )
    path, message = only_issue(data)
    assert path == "regions[0].stripes[0].servers[1].install_dir"
    assert "'tsa-a1'" in message and "its own install_dir" in message


def test_a_server_and_an_orchestrator_of_one_host_never_share_a_kit_root() -> None:
    data = two_regions_wan()
    data["regions"][0]["orchestrators"][0]["host"] = "10.0.0.1"  # east-s1-1's host
    path, message = only_issue(data)
    assert path == "regions[0].orchestrators[0].install_dir"
    assert "east-s1-1" in message


def test_the_same_kit_root_on_different_hosts_is_fine() -> None:
    inv = parse_inventory(two_regions_wan(), "x")
    kits = {(s.host, s.install_dir) for _, _, s in inv.servers()}
    assert {kit for _, kit in kits} == {"/opt/terracotta/bigmemory-max"}
    assert len(kits) == len(list(inv.servers()))  # one host each, all on the same path


# -- D1 is in test_inventory.py (test_known_hosts_must_name_a_file) -------------------------
# -- E: YAML work bounded -------------------------------------------------------------------
def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_naming_the_file(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs(), encoding="utf-8")
    assert bomb.stat().st_size < 1024  # 9**9 values in less than 1 KB
    with pytest.raises(InventoryError) as caught:
        load_inventory(bomb)
    assert caught.value.file == str(bomb)
    [issue] = caught.value.issues
    assert "expand to more than 100000 values" in issue.message
    assert "anchors and aliases" in issue.message


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    loop = tmp_path / "loop.yaml"
    loop.write_text("cluster: &c [a, *c]\n", encoding="utf-8")
    with pytest.raises(InventoryError, match=r"loop\.yaml.*repeats a value it is part of"):
        load_inventory(loop)


def test_a_file_over_one_mib_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(yaml.safe_dump(minimal()) + "#" * (1 << 20), encoding="utf-8")
    with pytest.raises(InventoryError, match=r"big\.yaml: the file is larger than 1024 KiB"):
        load_inventory(big)


def test_anchors_within_the_limits_still_work(tmp_path: Path) -> None:
    merged = tmp_path / "merged.yaml"
    merged.write_text(
        f"""\
cluster: test
target_version: 4.2.1
kits: [{{version: 4.2.1, url: "http://127.0.0.1/k.tar.gz", sha256: "{KIT_SHA}"}}]
license_file: /etc/bm/terracotta-license.key
ssh: {{user: tc, key_file: /keys/id, known_hosts: /keys/known_hosts}}
persistent: true
regions:
  - name: east
    stripes:
      - name: stripe1
        servers:
          - &tsa {{name: tsa-a1, host: 10.0.0.1, install_dir: /opt/tc, tc_config: /etc/tc.xml,
                  data_dir: /var/tc/a1}}
          - {{<<: *tsa, name: tsa-a2, host: 10.0.0.2, data_dir: /var/tc/a2}}
""",
        encoding="utf-8",
    )
    inventory = load_inventory(merged)
    assert [s.install_dir for _, _, s in inventory.servers()] == ["/opt/tc", "/opt/tc"]


# -- E: names and cron that would break the code location ------------------------------------
def stripes(*names: tuple[str, str]) -> dict[str, Any]:
    data = minimal()
    regions: dict[str, list[dict[str, Any]]] = {}
    for i, (region, stripe) in enumerate(names):
        regions.setdefault(region, []).append(
            {"name": stripe, "servers": [server(f"tsa-{i}", f"10.1.0.{i + 1}")]}
        )
    data["regions"] = [{"name": r, "stripes": s} for r, s in regions.items()]
    return data


def test_stripe_names_that_collide_as_job_steps() -> None:
    path, message = only_issue(stripes(("east", "stripe-1"), ("east", "stripe.1")))
    assert path == "regions[0].stripes[1].name"
    assert "'stripe.1'" in message and "'stripe-1'" in message
    assert "upgrade_mirrors_east_stripe_1" in message and "rename one" in message
    assert "failover_east_stripe_1" in message


def test_region_and_stripe_names_that_collide_as_job_steps() -> None:
    path, message = only_issue(stripes(("a-b", "c"), ("a", "b-c")))
    assert path == "regions[1].stripes[0].name"
    assert "upgrade_mirrors_a_b_c" in message and "failover_a_b_c" in message


@pytest.mark.parametrize(
    "region, stripe",
    [("clients", "1"), ("mirrors", "east"), ("wan", "cycle"), ("restart", "clients_1")],
)
def test_a_stripe_named_like_another_step_is_accepted(region: str, stripe: str) -> None:
    # Stripe steps are upgrade_mirrors_* and failover_*: no name spells a fixed step (region
    # clients, stripe 1 was upgrade_clients_1, the first client batch, before the split).
    data = stripes((region, stripe))
    data["regions"][0]["clients"] = [client("app1", "10.0.1.1")]
    assert parse_inventory(data, "x").regions[0].stripes[0].name == stripe


@pytest.mark.parametrize(
    "cron, expected",
    [
        ("99 99 * * 9", "minute '99' is not a number"),
        ("0 0 31 2 *", "February has no 30th or 31st"),
        ("0 0 31 4,6 *", "never fires"),
        ("0 0 30 2 1", "February has no 30th"),
        ("0 2 * *", "5 fields"),
    ],
)
def test_an_impossible_cron_is_refused_at_load(cron: str, expected: str) -> None:
    path, message = only_issue(minimal(window={"cron": cron}))
    assert path == "window.cron"
    assert repr(cron) in message and expected in message and "fix it" in message


def test_graph_name() -> None:
    assert graph_name("upgrade", "eu-west.1", "stripe-2") == "upgrade_eu_west_1_stripe_2"


# -- F: hosts -------------------------------------------------------------------------------
BAD_HOSTS = [
    ("tsa 1", "not a valid host name"),
    ("tsa1;reboot", "not a valid host name"),
    ("$(reboot)", "not a valid host name"),
    ("tc@tsa1", "ssh.user"),
    ("http://tsa1:9540", "URL"),
    ("tsa1/x", "URL"),
    ("[fd00::1]", "without brackets"),
    ("-oProxyCommand=x", "not a valid host name"),
    ("a..b", "not a valid host name"),
    ("10.0.0.999", "not a valid IPv4"),
    ("tsa_1", "not a valid host name"),
    ("x" * 64 + ".example.com", "not a valid host name"),
]
GOOD_HOSTS = [
    "tsa-f1a.example.com",
    "TSA1.Example.COM.",
    "localhost",
    "10.0.0.1",
    "fd00::1",
    "::1",
    "fe80::1%eth0",
    "1a.example.com",
]


@pytest.mark.parametrize("host, expected", BAD_HOSTS)
def test_bad_hosts_are_refused_everywhere(host: str, expected: str) -> None:
    data = two_regions_wan()
    data["regions"][0]["stripes"][0]["servers"][0]["host"] = host
    data["regions"][0]["clients"][0]["host"] = host
    data["regions"][0]["orchestrators"][0]["host"] = host
    data["ssh"]["jump_host"] = {"host": host}
    issues = dict(issues_of(data))
    assert set(issues) == {
        f"{SERVER}.host",
        "regions[0].clients[0].host",
        "regions[0].orchestrators[0].host",
        "ssh.jump_host.host",
    }
    for message in issues.values():
        assert repr(host) in message and expected in message


@pytest.mark.parametrize("host", GOOD_HOSTS)
def test_host_names_and_ip_literals_are_accepted(host: str) -> None:
    data = minimal()
    data["regions"][0]["stripes"][0]["servers"][0]["host"] = host
    data["ssh"]["jump_host"] = {"host": host}
    assert parse_inventory(data, "x").regions[0].stripes[0].servers[0].host == host


def test_url_host_brackets_ipv6_only() -> None:
    assert url_host("fd00::1") == "[fd00::1]"
    assert url_host("fe80::1%eth0") == "[fe80::1%eth0]"
    assert url_host("10.0.0.1") == "10.0.0.1"
    assert url_host("tsa1.example.com") == "tsa1.example.com"


# -- the sandbox's inventories --------------------------------------------------------------
def topology_files() -> list[Path]:
    repo = Path(__file__).resolve().parents[2]
    return sorted(
        [
            *(repo / "bm_upgrade" / "sandbox" / "topologies").glob("*.yaml"),
            *(repo / "tests" / "e2e" / "topologies").glob("*.yaml"),
        ]
    )


@pytest.mark.parametrize("topology_file", topology_files(), ids=lambda p: p.stem)
def test_every_sandbox_topology_writes_a_valid_inventory(
    topology_file: Path, tmp_path: Path
) -> None:
    from bm_upgrade.sandbox.cluster import write_inventory
    from bm_upgrade.sandbox.hosts import plan_hosts
    from bm_upgrade.sandbox.topology import load_topology

    topology = load_topology(topology_file)
    directory = tmp_path.resolve()
    plan = plan_hosts(topology, directory, "127.200.9")
    tarballs = {}
    for version in topology.kits:
        tarball = directory / f"bigmemory-max-{version}.tar.gz"
        tarball.write_bytes(b"kit")
        tarballs[version] = tarball
    path = write_inventory(
        topology,
        directory,
        plan,
        user="tc",
        port=2222,
        key_file=directory / "id",
        tarballs=tarballs,
    )
    inventory = load_inventory(path)
    assert sorted((s.name, s.host) for _, _, s in inventory.servers()) == sorted(
        (s.name, s.host) for s in plan.servers
    )
