"""The replication log parser on the marker lines the WAN Replication User Guide documents
("Working with the Replication Logs": FullScanMasterSynchronizer initiated / sent /
total / successfully synchronized, FullScanReplicaSynchronizer SYNC_START), saved under
tests/fixtures/wan-replication.log, and the wan.xml reader (``<bind>``, ``<logs>``, caches)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bm_upgrade.inventory import Orchestrator
from bm_upgrade.probes import (
    OrchestratorStatus,
    ReplicaSync,
    WanConfig,
    parse_replication_log,
    parse_wan_config,
    synchronized_replicas,
)
from bm_upgrade.probes.orchestrator import names_replica, running

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MASTER, WEST, NORTH = "10.0.8.1:9001", "10.1.8.1:9001", "10.2.8.1:9001"


def test_the_guides_lines_give_the_last_sync_per_replica_and_cache() -> None:
    syncs = parse_replication_log((FIXTURES / "wan-replication.log").read_text())
    assert syncs == (
        ReplicaSync("master", "sessions", MASTER, WEST, False, "2015-07-15 10:15:37,210"),
        ReplicaSync("master", "orders", MASTER, WEST, True, "2015-07-15 10:15:38,512"),
        ReplicaSync("master", "orders", MASTER, NORTH, False, "2015-07-15 10:15:39,001"),
        ReplicaSync("replica", "audit", "10.9.8.1:9001", None, False, "2015-07-15 10:15:40,020"),
    )
    assert synchronized_replicas(syncs) == {WEST: {"orders"}}
    status = OrchestratorStatus("east-wan-m", "10.0.8.1", running=True, syncs=syncs)
    assert [(s.replica, s.cache) for s in status.unsynced()] == [
        (WEST, "sessions"),
        (NORTH, "orders"),
    ]


def test_a_later_sync_replaces_an_earlier_one_and_other_lines_are_skipped() -> None:
    cache = "__tc_clustered-ehcache|CacheManager|orders"
    text = "\n".join(
        [
            f"INFO [master-0] FullScanMasterSynchronizer - Master '{MASTER}' initiated sync "
            f"protocol for replica '{WEST}' and cache '{cache}'",
            "WARN [main] something else entirely - Master 'x' said nothing of use",
            f"INFO [New I/O worker #4] FullScanMasterSynchronizer - Master '{MASTER}' "
            f"successfully synchronized replica '{WEST}' for cache '{cache}'",
            f"INFO [master-0] FullScanMasterSynchronizer - Master '{MASTER}' initiated sync "
            f"protocol for replica '{WEST}' and cache '{cache}'",
        ]
    )
    # No timestamp on these lines: ``at`` stays None; the restarted sync is the last word.
    assert parse_replication_log(text) == (
        ReplicaSync("master", "orders", MASTER, WEST, False, None),
    )
    assert parse_replication_log("") == ()


def test_wan_xml_gives_bind_logs_and_caches() -> None:
    config = parse_wan_config((FIXTURES / "wan.xml").read_text())
    assert config == WanConfig(("127.0.0.1", 9889), "/var/log/terracotta/wan", ("orders",))
    assert config.address == "127.0.0.1:9889"
    bare = '<wan-config xmlns="x"><bind host="h" port="9003"/></wan-config>'
    assert parse_wan_config(bare) == WanConfig(("h", 9003), None, ())
    with pytest.raises(ValueError, match="bind"):
        parse_wan_config("<config/>")
    with pytest.raises(ValueError):
        parse_wan_config("<config")


def test_the_process_list_shows_an_orchestrator_started_with_its_wan_xml() -> None:
    listing = "\n".join(
        [
            "/usr/bin/python3 /opt/k/server/lib/tcwan.py run -f /etc/wan.xml",
            "sh /opt/k/server/bin/stop-wan.sh -f /etc/other.xml",
        ]
    )
    assert running(listing, "/etc/wan.xml")
    assert not running(listing, "/etc/other.xml")  # a stop-wan.sh is not the orchestrator
    assert not running("sh -c echo '@@bm-upgrade ps'; ps -f /etc/wan.xml", "/etc/wan.xml")


def test_a_logged_replica_is_matched_by_port_and_bind_or_inventory_host() -> None:
    orch = Orchestrator(
        name="west-wan1",
        host="west-wan1.example.com",
        install_dir="/opt/tc/bigmemory-max",
        wan_xml="/etc/tc/wan.xml",
        role="master",
    )
    named = WanConfig(bind=("10.0.0.21", 9002), logs="/var/log/wan", caches=("orders",))
    assert names_replica("10.0.0.21:9002", orch, named)
    assert names_replica("WEST-WAN1.example.com:9002", orch, named)
    assert not names_replica("10.0.0.21:9003", orch, named)
    assert not names_replica("10.0.0.22:9002", orch, named)
    assert not names_replica("garbage", orch, named)
    # Bound to every address: the log's spelling of the host is not documented; the port is.
    wildcard = WanConfig(bind=("0.0.0.0", 9002), logs="/var/log/wan", caches=("orders",))
    assert names_replica("192.168.1.7:9002", orch, wildcard)
    assert not names_replica("192.168.1.7:9001", orch, wildcard)
