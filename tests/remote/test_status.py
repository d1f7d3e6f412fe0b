"""`bm-upgrade status` end to end: real HTTP management ports, a real sshd for clients and the
SSH probe; exit 0 healthy, 1 degraded, 2 on a user error."""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bm_upgrade.cli import main
from tests.remote.conftest import Host, JsonServer, stat_json, topology_json

FIXTURES = Path(__file__).parent.parent / "fixtures"
STAT = "/tc-management-api/v2/local/stat"
TOPO = "/tc-management-api/v2/agents/topologies/servers"


def chown_to(host: Host, *paths: Path) -> None:
    entry = pwd.getpwnam(host.handle.login_user)
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


@pytest.fixture(scope="module")
def mgmt(address: Callable[[], str]) -> Iterator[list[JsonServer]]:
    servers = [JsonServer(address(), 9540, {}) for _ in range(2)]
    try:
        yield servers
    finally:
        for server in servers:
            server.close()


def set_states(mgmt: list[JsonServer], states: list[tuple[str, str]]) -> None:
    names = ["tsa-1a", "tsa-1b"]
    topo = topology_json({n: s for n, s in zip(names, states, strict=True)})
    for server, name, (state, _) in zip(mgmt, names, states, strict=True):
        server.routes = {STAT: stat_json(name, state), TOPO: topo}


@pytest.fixture(scope="module")
def client_lib(host: Host) -> Path:
    lib = host.work / "status app" / "lib"
    lib.mkdir(parents=True)
    # A complete set: one ehcache-ee jar and one toolkit runtime jar (probes.jar_set_version).
    jars = [lib / "ehcache-ee-2.10.1.jar", lib / "terracotta-toolkit-runtime-ee-4.2.1.jar"]
    for jar in jars:
        jar.write_bytes(b"")
    chown_to(host, lib.parent, lib, *jars)
    return lib


def inventory(
    tmp_path: Path,
    host: Host,
    servers: list[dict[str, Any]],
    *,
    client_host: str,
    client_lib: Path,
    probe_via: str = "rest",
) -> str:
    data = {
        "cluster": "status_test",
        "target_version": "4.2.1",
        "kits": [{"version": "4.2.1", "url": "file:///kits/k.tar.gz", "sha256": "a" * 64}],
        "license_file": str(FIXTURES / "license-4.2.key"),
        "ssh": host.settings().model_dump(mode="json", exclude_none=True),
        "probe_via": probe_via,
        "persistent": True,
        "regions": [
            {
                "name": "east",
                "stripes": [{"name": "stripe1", "servers": servers}],
                "clients": [
                    {
                        "name": "app-1",
                        "host": client_host,
                        "lib_dir": str(client_lib),
                        "stop_command": "true",
                        "start_command": "true",
                        "status_command": "true",
                    }
                ],
            }
        ],
    }
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def rest_servers(mgmt: list[JsonServer]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "host": server.httpd.server_address[0],
            "install_dir": "/opt/kit",
            "tc_config": "/etc/tc.xml",
            "data_dir": f"/var/{name}",
        }
        for name, server in zip(["tsa-1a", "tsa-1b"], mgmt, strict=True)
    ]


def status(path: str, capsys: pytest.CaptureFixture[str], as_json: bool = True) -> tuple[int, Any]:
    code = main(["status", path, "--json"] if as_json else ["status", path])
    out = capsys.readouterr().out
    return code, json.loads(out) if as_json else out


def test_healthy_cluster(
    tmp_path: Path,
    host: Host,
    mgmt: list[JsonServer],
    client_lib: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_states(mgmt, [("ACTIVE-COORDINATOR", "4.2.1"), ("PASSIVE-STANDBY", "4.2.1")])
    path = inventory(
        tmp_path, host, rest_servers(mgmt), client_host=host.address, client_lib=client_lib
    )
    code, data = status(path, capsys)
    assert code == 0, data["warnings"]
    assert data["healthy"] and data["warnings"] == []
    stripe = data["regions"][0]["stripes"][0]
    assert [(s["name"], s["role"], s["state"], s["version"]) for s in stripe["servers"]] == [
        ("tsa-1a", "ACTIVE", "ACTIVE-COORDINATOR", "4.2.1"),
        ("tsa-1b", "PASSIVE", "PASSIVE-STANDBY", "4.2.1"),
    ]
    assert data["regions"][0]["clients"][0]["jar_version"] == "4.2.1"
    code, text = status(path, capsys, as_json=False)
    assert code == 0
    assert "stripe stripe1: healthy" in text and "status: healthy" in text
    assert "app-1" in text and "running" in text


def test_degraded_mixed_and_unreachable(  # noqa: PLR0917 (pytest fixtures)
    tmp_path: Path,
    host: Host,
    mgmt: list[JsonServer],
    client_lib: Path,
    address: Callable[[], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_states(mgmt, [("ACTIVE-COORDINATOR", "4.2.1"), ("PASSIVE-UNINITIALIZED", "4.2.0")])
    down = address()
    path = inventory(tmp_path, host, rest_servers(mgmt), client_host=down, client_lib=client_lib)
    code, data = status(path, capsys)
    assert code == 1
    warnings = "\n".join(data["warnings"])
    assert "no PASSIVE-STANDBY mirror" in warnings
    assert "tsa-1b is PASSIVE-UNINITIALIZED" in warnings
    assert "mixed versions: 4.2.0 (tsa-1b); 4.2.1 (tsa-1a)" in warnings
    assert f"host {down} is unreachable" in warnings
    assert data["regions"][0]["clients"][0]["reachable"] is False
    code, text = status(path, capsys, as_json=False)
    assert code == 1 and "DEGRADED" in text


def test_ssh_probe_and_server_down(
    tmp_path: Path, host: Host, client_lib: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kit = host.work / "status kit"
    bin_dir = kit / "server" / "bin"
    bin_dir.mkdir(parents=True)
    stat = (FIXTURES / "server-stat-4.2.txt").read_text(encoding="utf-8")
    scripts = {
        "server-stat.sh": f"#!/bin/sh\ncat <<'EOF'\n{stat}EOF\n",
        "version.sh": "#!/bin/sh\ncat <<'EOF'\n"
        + (FIXTURES / "version-sh-4.2.1.txt").read_text(encoding="utf-8")
        + "EOF\n",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    chown_to(host, kit, kit / "server", bin_dir, *bin_dir.iterdir())
    # Two servers of one host never share a kit root (inventory rule): the second one's is
    # a link to the same scripts.
    kit_b = host.work / "status kit b"
    kit_b.symlink_to(kit)
    servers = [
        {
            "name": name,
            "host": host.address,
            "install_dir": str(root),
            "tc_config": "/etc/tc.xml",
            "data_dir": f"/var/{name}",
            "tsa_port": port,
            "management_port": port + 30,
        }
        for name, port, root in (("tsa-a1", 9510, kit), ("tsa-a2", 9610, kit_b))
    ]
    path = inventory(
        tmp_path, host, servers, client_host=host.address, client_lib=client_lib, probe_via="ssh"
    )
    code, data = status(path, capsys)
    assert code == 0, data["warnings"]
    assert [(s["state"], s["version"]) for s in data["regions"][0]["stripes"][0]["servers"]] == [
        ("ACTIVE-COORDINATOR", "4.2.1"),
        ("PASSIVE-STANDBY", "4.2.1"),
    ]
    (bin_dir / "server-stat.sh").write_text(
        "#!/bin/sh\ncat <<'EOF'\n"
        + (FIXTURES / "server-stat-unreachable.txt")
        .read_text(encoding="utf-8")
        .replace("10.0.0.12", host.address)
        + "EOF\n",
        encoding="utf-8",
    )
    code, data = status(path, capsys)
    assert code == 1
    assert "server tsa-a1 on " + host.address + " is unreachable" in "\n".join(data["warnings"])


def test_invalid_inventory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("cluster: x\n", encoding="utf-8")
    assert main(["status", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err
