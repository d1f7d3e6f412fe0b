"""The paths derived from a kit root, and the inventory's node iterators."""

from __future__ import annotations

import pytest

from bm_upgrade.inventory import KitRoot, parse_inventory
from tests.unit.inventories import server_model, two_regions_wan


@pytest.mark.parametrize("install_dir", ["/opt/tc/bigmemory-max", "/opt/tc/bigmemory-max/"])
def test_paths_beside_the_kit_root(install_dir: str) -> None:
    root = KitRoot.of(install_dir)
    assert root.path == "/opt/tc/bigmemory-max"
    assert root.name == "bigmemory-max"
    assert root.parent == "/opt/tc"
    assert root.script("stop-tc-server.sh") == "/opt/tc/bigmemory-max/server/bin/stop-tc-server.sh"
    assert root.license == "/opt/tc/bigmemory-max/terracotta-license.key"
    assert root.staging == "/opt/tc/.bm-upgrade-staging"
    assert root.previous_kit("4.2.0") == "/opt/tc/.bm-upgrade-previous/bigmemory-max-4.2.0"
    assert root.previous_kit(None) == "/opt/tc/.bm-upgrade-previous/bigmemory-max-unknown"
    assert root.work_dir("s1") == "/opt/tc/.bm-upgrade-work/s1"
    assert root.console_log("s1") == "/opt/tc/s1.console.log"


def test_a_kit_root_at_the_top_has_the_root_as_parent() -> None:
    root = KitRoot.of("/bigmemory-max")
    assert root.parent == "/"
    assert root.staging == "/.bm-upgrade-staging"


def test_holds_and_relative_compare_whole_path_parts() -> None:
    root = KitRoot.of("/opt/tc/kit")
    assert root.holds("/opt/tc/kit") and root.holds("/opt/tc/kit/")
    assert root.holds("/opt/tc/kit/server/tc-config.xml")
    assert not root.holds("/opt/tc/kit2/tc-config.xml")
    assert not root.holds("/opt/tc")
    assert root.relative("/opt/tc/kit/server/tc-config.xml") == "server/tc-config.xml"
    assert root.relative("/opt/tc/kit") is None
    assert root.relative("/opt/tc/kit2/x") is None


def test_a_node_console_log_is_its_own_or_beside_the_kit_root() -> None:
    assert server_model(name="s1").console_log_path.endswith("/s1.console.log")
    assert server_model(name="s1", console_log="/var/log/s1.out").console_log_path == (
        "/var/log/s1.out"
    )


def test_iterators_walk_the_inventory_in_order() -> None:
    inventory = parse_inventory(two_regions_wan(), "x")
    nested_servers = [s.name for r in inventory.regions for st in r.stripes for s in st.servers]
    assert [s.name for _, _, s in inventory.servers()] == nested_servers
    assert [(r.name, st.name) for r, st in inventory.stripes()] == [
        (r.name, st.name) for r in inventory.regions for st in r.stripes
    ]
    assert [c.name for _, c in inventory.clients()] == [
        c.name for r in inventory.regions for c in r.clients
    ]
    assert [o.name for _, o in inventory.orchestrators()] == [
        o.name for r in inventory.regions for o in r.orchestrators
    ]
    per_region = []
    for r in inventory.regions:
        per_region += [s.name for st in r.stripes for s in st.servers]
        per_region += [c.name for c in r.clients] + [o.name for o in r.orchestrators]
    assert [n.name for n in inventory.nodes()] == per_region
    assert inventory.hosts() == list(dict.fromkeys(n.host for n in inventory.nodes()))
    assert len(inventory.hosts()) > 1
