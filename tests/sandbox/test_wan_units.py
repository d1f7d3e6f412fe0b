"""WAN pieces without processes: topology keys, host plan, wan.xml format, fault argument checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bm_upgrade.probes import WanConfig, parse_wan_config
from bm_upgrade.sandbox import faults
from bm_upgrade.sandbox.hosts import plan_hosts
from bm_upgrade.sandbox.kit_files.server.lib import tcwanxml
from bm_upgrade.sandbox.topology import load_topology, parse_topology
from bm_upgrade.sandbox.topology_model import TopologyError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _topology(*regions: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4.2.0", "regions": list(regions)}


def _issues(data: dict[str, Any]) -> str:
    with pytest.raises(TopologyError) as info:
        parse_topology(data, "topo.yaml")
    return "\n".join(info.value.issues)


def test_the_shipped_wan_topology_plans_orchestrators_after_clients() -> None:
    topology = load_topology("wan")
    assert topology.wan_master_region() == "east"
    assert topology.host_count() == 4 + 2 + 4
    plan = plan_hosts(topology, Path("/sandbox"), "127.1.2")
    assert [(o.name, o.role, o.host) for o in plan.orchestrators] == [
        ("east-wan-m1", "master", "127.1.2.7"),
        ("east-wan-s1", "standby", "127.1.2.8"),
        ("west-wan-m1", "master", "127.1.2.9"),
        ("west-wan-s1", "standby", "127.1.2.10"),
    ]
    assert plan.hosts[-1] == "127.1.2.10"
    assert plan.orchestrators[0].wan_xml == Path("/sandbox/hosts/127.1.2.7/etc/wan.xml")


def test_orchestrator_keys_are_checked_with_their_field() -> None:
    text = _issues(
        _topology(
            {"name": "east", "stripes": 1, "orchestrators": {"standby": 1, "spare": 1}},
            {
                "name": "west",
                "stripes": 1,
                "wan_role": "replica",
                "orchestrators": {"master": 1},
                "replica_disconnect_behavior": "sulk",
            },
        )
    )
    for issue in (
        "regions[0].orchestrators.spare: unknown key",
        "regions[0].orchestrators.master: a region with standby orchestrators needs",
        "regions[0].wan_role: a region with orchestrators needs wan_role",
        "regions[1].replica_disconnect_behavior: 'sulk' must be reconnectResync or "
        "remainDisconnected",
        "no region with orchestrators has wan_role: master",
    ):
        assert issue in text, issue


def test_wan_role_without_orchestrators_stays_inert() -> None:
    topology = parse_topology(_topology({"name": "east", "stripes": 1, "wan_role": "master"}))
    assert topology.wan_master_region() is None


def test_wan_xml_round_trips_and_the_tool_reads_its_bind() -> None:
    text = tcwanxml.render_wan_xml(
        host="127.1.2.9",
        port=9889,
        behavior="remainDisconnected",
        caches=["orders", "sessions"],
        masters=[("127.1.2.7", 9889)],
        logs="/srv/wan/logs",
    )
    assert tcwanxml.parse_wan_xml(text) == {
        "host": "127.1.2.9",
        "port": 9889,
        "logs": "/srv/wan/logs",
        "mode": "unidirectional",
        "behavior": "remainDisconnected",
        "caches": [
            {"name": "orders", "masters": [("127.1.2.7", 9889)]},
            {"name": "sessions", "masters": [("127.1.2.7", 9889)]},
        ],
    }
    assert parse_wan_config(text) == WanConfig(
        ("127.1.2.9", 9889), "/srv/wan/logs", ("orders", "sessions")
    )
    fixture = tcwanxml.parse_wan_xml((FIXTURES / "wan.xml").read_text(encoding="utf-8"))
    assert (fixture["host"], fixture["port"], fixture["behavior"]) == (
        "127.0.0.1",
        9889,
        "reconnectResync",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<wan:config", "not well-formed"),
        ('<config><cacheManager><cache name="a"/></cacheManager></config>', "no <bind"),
        ('<config><bind host="h" port="x"/></config>', "is not a number"),
        (
            '<config><bind host="h"/><replicaDisconnectBehavior>sulk</replicaDisconnectBehavior>'
            "</config>",
            "'sulk' must be one of",
        ),
        ('<config><bind host="h"/></config>', "no <cache>"),
    ],
)
def test_a_bad_wan_xml_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(tcwanxml.WanConfigError, match=message):
        tcwanxml.parse_wan_xml(text)


def test_faults_need_a_sandbox_folder(tmp_path: Path) -> None:
    with pytest.raises(faults.FaultError, match=r"no sandbox\.json"):
        faults.inject(tmp_path, "kill", "east-s1-a")
    (tmp_path / "sandbox.json").write_text('{"servers": {}}', encoding="utf-8")
    (tmp_path / "faults").mkdir()
    with pytest.raises(faults.FaultError, match="'east-s1-a' is not a server or orchestrator"):
        faults.inject(tmp_path, "kill", "east-s1-a")
    with pytest.raises(faults.FaultError, match="not a node name"):
        faults.inject(tmp_path, "no-sync", "../etc")
    assert faults.clear(tmp_path) == []
