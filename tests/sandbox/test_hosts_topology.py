"""The topology file: shipped topologies, every error named with its field, CLI exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bm_upgrade.cli import main
from bm_upgrade.sandbox import topology
from bm_upgrade.sandbox.hosts import plan_hosts
from bm_upgrade.sandbox.topology import load_topology, parse_topology
from bm_upgrade.sandbox.topology_model import TopologyError


@pytest.mark.parametrize("name", ["small", "demo", "bench"])
def test_shipped_topologies_load(name: str) -> None:
    loaded = load_topology(name)
    assert loaded.version in loaded.kits


def test_bench_topology_is_the_benchmark_size() -> None:
    bench = load_topology("bench")
    assert [(r.stripes, r.mirrors) for r in bench.regions] == [(4, 1), (4, 1)]
    assert sum(r.clients for r in bench.regions) == 8


def _issues(data: object) -> list[str]:
    with pytest.raises(TopologyError) as info:
        parse_topology(data, "topo.yaml")
    return info.value.issues


def test_every_problem_is_reported_with_its_field() -> None:
    issues = _issues(
        {
            "version": "4.3.0",
            "kits": ["4.2.0", "4.2.0"],
            "persistent": "yes",
            "colour": 1,
            "regions": [
                {
                    "name": "east",
                    "stripes": 0,
                    "mirrors": 5,
                    "wan_role": "boss",
                    "orchestrators": {"master": 1, "standby": 9},
                },
                {"name": "east", "stripes": 1},
            ],
            "timing": {"sync_s": -1, "speed": 2},
        }
    )
    text = "\n".join(issues)
    for field in (
        "version:",
        "kits:",
        "persistent:",
        "colour: unknown key",
        "regions[0].stripes:",
        "regions[0].mirrors:",
        "regions[0].wan_role:",
        "regions[0].orchestrators.standby: 9 must be a whole number from 0 to 3",
        "regions[1].name: region 'east' is listed twice",
        "timing.sync_s:",
        "timing.speed: unknown key",
    ):
        assert field in text, field


def test_missing_keys_and_wrong_shapes() -> None:
    assert any(i.startswith("version: required") for i in _issues({"regions": []}))
    assert any(i.startswith("regions: required") for i in _issues({"version": "4.2.0"}))
    assert "top level must be a mapping" in str(_issues([1, 2])[0])
    assert any(
        "start version 4.2.0 is not listed" in i
        for i in _issues(
            {"version": "4.2.0", "kits": ["4.2.1"], "regions": [{"name": "a", "stripes": 1}]}
        )
    )


def test_a_topology_too_big_for_one_block_is_refused() -> None:
    regions = [{"name": f"r{i}", "stripes": 16, "mirrors": 3, "clients": 32} for i in range(3)]
    assert any(
        "do not fit one loopback block" in i
        for i in _issues({"version": "4.2.0", "regions": regions})
    )


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="no such file"):
        load_topology(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [4.2.0\n")
    with pytest.raises(TopologyError, match="malformed YAML at line"):
        load_topology(bad)


def test_hosts_get_distinct_addresses_and_names(tmp_path: Path) -> None:
    plan = plan_hosts(load_topology("demo"), tmp_path, "127.150.3")
    assert len(plan.hosts) == len(set(plan.hosts)) == 16
    assert [s.name for s in plan.servers_of("east")] == [
        "east-s1-a",
        "east-s1-b",
        "east-s2-a",
        "east-s2-b",
    ]
    assert [stripe for stripe, _ in plan.stripes_of("west")] == ["stripe1", "stripe2"]
    assert plan.kit_host == "127.150.3.254"
    assert plan.servers[0].tc_config == tmp_path / "hosts" / "127.150.3.1" / "etc" / "tc-config.xml"


def test_cli_exit_2_with_one_message_for_a_bad_topology(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "topo.yaml"
    bad.write_text("version: 4.2.0\nregions: [{name: east, stripes: many}]\n")
    assert main(["sandbox", "up", str(bad), "--dir", str(tmp_path / "sb")]) == 2
    err = capsys.readouterr().err
    assert "regions[0].stripes: 'many' must be a whole number" in err
    assert "Traceback" not in err
    assert not (tmp_path / "sb").exists()


def test_cli_down_and_verify_on_a_folder_without_sandbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sandbox", "verify", "--dir", str(tmp_path)]) == 2
    assert "no sandbox.json" in capsys.readouterr().err
    assert main(["sandbox", "down", "--dir", str(tmp_path / "nope")]) == 2
    assert main(["sandbox", "down", "--dir", str(tmp_path)]) == 0


def test_shipped_names_are_listed() -> None:
    assert {"small", "demo", "bench"} <= set(topology.shipped_names())
