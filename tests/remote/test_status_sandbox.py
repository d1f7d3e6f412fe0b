"""`status` and the probes against a live sandbox cluster (real servers started by the kit's
scripts, real sshd per host): healthy over REST and over SSH, degraded once a mirror stops."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bm_upgrade import sandbox
from bm_upgrade.cli import main
from bm_upgrade.inventory import load_inventory
from bm_upgrade.inventory.scripts import script_argv
from bm_upgrade.remote import Connection
from bm_upgrade.sandbox import cluster

TOPOLOGY = Path(sandbox.__file__).parent / "topologies" / "small.yaml"


@pytest.fixture(scope="module")
def inventory_path() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="bm-upgrade-status-sandbox-"))
    try:
        yield cluster.up(TOPOLOGY, folder / "sb")
    finally:
        cluster.down(folder / "sb")
        shutil.rmtree(folder, ignore_errors=True)


def status(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["status", str(path), "--json"])
    return code, json.loads(capsys.readouterr().out)


def servers_of(data: dict[str, object]) -> list[tuple[str, str]]:
    regions = data["regions"]
    assert isinstance(regions, list)
    return [(s["state"], s["version"]) for s in regions[0]["stripes"][0]["servers"]]


def test_healthy_via_rest_and_ssh(
    inventory_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = status(inventory_path, capsys)
    assert code == 0, data["warnings"]
    assert servers_of(data) == [("ACTIVE-COORDINATOR", "4.2.0"), ("PASSIVE-STANDBY", "4.2.0")]
    raw = yaml.safe_load(inventory_path.read_text(encoding="utf-8"))
    raw["probe_via"] = "ssh"
    via_ssh = tmp_path / "inventory-ssh.yaml"
    via_ssh.write_text(yaml.safe_dump(raw), encoding="utf-8")
    code, data = status(via_ssh, capsys)
    assert code == 0, data["warnings"]
    assert servers_of(data) == [("ACTIVE-COORDINATOR", "4.2.0"), ("PASSIVE-STANDBY", "4.2.0")]


def test_degraded_when_the_mirror_stops(
    inventory_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = load_inventory(inventory_path)
    _, _, mirror = list(inv.servers())[1]
    with Connection(mirror.host, inv.ssh) as conn:
        conn.run(
            script_argv(mirror, "stop-tc-server.sh", "-f", mirror.tc_config, "-n", mirror.name)
        )
    code, data = status(inventory_path, capsys)
    assert code == 1
    assert any("no PASSIVE-STANDBY mirror" in str(w) for w in data["warnings"])  # type: ignore[attr-defined]
