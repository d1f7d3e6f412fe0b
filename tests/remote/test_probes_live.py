"""Probes over real transports: the REST probe against a real HTTP server answering the
docs/terracotta.md JSON, the SSH probe running scripts of a kit laid out on a real sshd host, in
every server state and when the server is down; clients and orchestrators."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bm_upgrade.inventory import Client, Orchestrator, Server
from bm_upgrade.probes import (
    kit_version,
    probe_client,
    probe_orchestrator,
    probe_server_rest,
    probe_server_ssh,
)
from bm_upgrade.remote import Connection
from tests.remote.conftest import Host, JsonServer, stat_json, topology_json
from tests.unit.test_probes import FIXTURES, STATES

STAT = "/tc-management-api/v2/local/stat"
TOPO = "/tc-management-api/v2/agents/topologies/servers"


@pytest.fixture(scope="module")
def conn(host: Host) -> Iterator[Connection]:
    with Connection(host.address, host.settings()) as connection:
        yield connection


@pytest.fixture(scope="module")
def mgmt(address: Callable[[], str]) -> Iterator[JsonServer]:
    server = JsonServer(address(), 9540, {})
    try:
        yield server
    finally:
        server.close()


def server_model(
    host: str, install_dir: str = "/opt/kit", name: str = "tsa-a1", port: int = 9540
) -> Server:
    return Server(
        name=name,
        host=host,
        install_dir=install_dir,
        tc_config="/etc/tc.xml",
        data_dir="/var/tc/data",
        management_port=port,
    )


def write_as_user(host: Host, path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    entry = pwd.getpwnam(host.handle.login_user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


@pytest.mark.parametrize("state", STATES)
def test_rest_probe_every_state(mgmt: JsonServer, state: str) -> None:
    mgmt.routes = {
        STAT: stat_json("tsa-a1", state),
        TOPO: topology_json({"tsa-a1": (state, "4.2.1")}),
    }
    status = probe_server_rest(server_model(str(mgmt.httpd.server_address[0])))
    assert status.reachable and status.state == state and status.version == "4.2.1"
    assert status.role == stat_json("tsa-a1", state)["role"]


def test_rest_probe_without_topology_has_no_version(mgmt: JsonServer) -> None:
    mgmt.routes = {STAT: stat_json("tsa-a1", "PASSIVE-STANDBY")}
    status = probe_server_rest(server_model(str(mgmt.httpd.server_address[0])))
    assert status.reachable and status.version is None


def test_rest_probe_server_down(address: Callable[[], str]) -> None:
    down = address()
    status = probe_server_rest(server_model(down), timeout=2)
    assert not status.reachable and status.state == "unknown"
    assert status.error is not None and f"http://{down}:9540" in status.error


@pytest.fixture(scope="module")
def kit_dir(host: Host) -> Path:
    """A kit root on the host whose server-stat.sh prints the file ``stat.txt`` beside it."""
    root = host.work / "opt dir" / "bigmemory-max"
    bin_dir = root / "server" / "bin"
    version = (FIXTURES / "version-sh-4.2.1.txt").read_text(encoding="utf-8")
    write_as_user(host, bin_dir / "version.sh", f"#!/bin/sh\necho '{version.strip()}'\n", 0o755)
    write_as_user(
        host,
        bin_dir / "server-stat.sh",
        '#!/bin/sh\n[ "$1" = -s ] || exit 2\ncat "$(dirname "$0")/stat.txt"\n',
        0o755,
    )
    return root


@pytest.mark.parametrize("state", STATES)
def test_ssh_probe_every_state(conn: Connection, host: Host, kit_dir: Path, state: str) -> None:
    text = (
        (FIXTURES / "server-stat-4.2.txt")
        .read_text(encoding="utf-8")
        .replace("ACTIVE-COORDINATOR", state)
    )
    write_as_user(host, kit_dir / "server" / "bin" / "stat.txt", text)
    status = probe_server_ssh(conn, server_model(host=host.address, install_dir=str(kit_dir)))
    assert status.reachable and status.state == state and status.version == "4.2.1"


def test_ssh_probe_server_down(conn: Connection, host: Host, kit_dir: Path) -> None:
    text = (
        (FIXTURES / "server-stat-unreachable.txt")
        .read_text(encoding="utf-8")
        .replace("10.0.0.12", host.address)
    )
    write_as_user(host, kit_dir / "server" / "bin" / "stat.txt", text)
    status = probe_server_ssh(conn, server_model(host.address, str(kit_dir), name="tsa-a2"))
    assert not status.reachable and status.version is None
    assert status.error is not None and "Is the TSA running?" in status.error


def test_ssh_probe_without_kit(conn: Connection, host: Host) -> None:
    status = probe_server_ssh(conn, server_model(host.address, str(host.work / "no kit")))
    assert not status.reachable and "exited 127" in (status.error or "")


def test_kit_version(conn: Connection, kit_dir: Path, host: Host) -> None:
    assert kit_version(conn, server_model(host=host.address, install_dir=str(kit_dir))) == "4.2.1"
    assert (
        kit_version(
            conn, server_model(host=host.address, install_dir=str(host.work / "nothing here"))
        )
        is None
    )


def test_client_probe(conn: Connection, host: Host) -> None:
    lib = host.work / "app lib"
    for jar in ("ehcache-ee-2.10.1.jar", "terracotta-toolkit-runtime-ee-4.2.0.jar"):
        write_as_user(host, lib / jar, "")
    flag = host.work / "app running"
    client = Client(
        name="app",
        host=host.address,
        lib_dir=str(lib),
        stop_command="true",
        start_command="true",
        status_command=f"test -e '{flag}'",
    )
    stopped = probe_client(conn, client)
    assert (stopped.running, stopped.jar_version) == (False, "4.2.0")
    write_as_user(host, flag, "")
    assert probe_client(conn, client).running is True
    no_status = client.model_copy(update={"status_command": None})
    assert probe_client(conn, no_status).running is None


def test_orchestrator_probe(conn: Connection, host: Host, address: Callable[[], str]) -> None:
    """Process, listen check on <bind>, replication log (since a mark), as the product shows an
    orchestrator: no HTTP anywhere."""
    bind = address()
    logs = host.work / "wan logs"  # a space: every value in the command is quoted
    wan_xml = host.work / "wan.xml"
    text = (FIXTURES / "wan.xml").read_text(encoding="utf-8").replace("127.0.0.1", bind)
    write_as_user(host, wan_xml, text.replace("/var/log/terracotta/wan", str(logs)))
    fixture_log = (FIXTURES / "wan-replication.log").read_text(encoding="utf-8")
    first, rest = fixture_log.split("\n", 3)[:3], fixture_log.split("\n", 3)[3]
    write_as_user(host, logs / "wan-orchestrator.log", "\n".join(first) + "\n")
    orch = Orchestrator(
        name="wan-f-master",
        host=host.address,
        install_dir="/opt/kit",
        wan_xml=str(wan_xml),
        role="master",
    )
    stopped = probe_orchestrator(conn, orch, timeout=10)
    assert (stopped.running, stopped.listening, stopped.state) == (False, False, "stopped")
    assert stopped.bind == f"{bind}:9889" and stopped.error is None
    assert [(s.replica, s.cache, s.synchronized) for s in stopped.syncs] == [
        ("10.1.8.1:9001", "orders", False),
        ("10.1.8.1:9001", "sessions", False),
    ]
    # A process started with this wan.xml, and its port: up.
    process = subprocess.Popen(["sh", "-c", "sleep 60", "start-wan.sh", "-f", str(wan_xml)])
    listener = socket.create_server((bind, 9889))
    try:
        mark = stopped.log
        assert mark is not None and mark.path == str(logs / "wan-orchestrator.log")
        with (logs / "wan-orchestrator.log").open("a", encoding="utf-8") as stream:
            stream.write(rest)
        up = probe_orchestrator(conn, orch, timeout=10, since=mark, version=False)
    finally:
        listener.close()
        process.kill()
        process.wait()
    assert (up.running, up.listening, up.up, up.version) == (True, True, True, None)
    # Only the lines written since the mark: west's orders synchronized, north's begun.
    assert [(s.side, s.replica, s.cache, s.synchronized) for s in up.syncs] == [
        ("master", "10.1.8.1:9001", "orders", True),
        ("master", "10.2.8.1:9001", "orders", False),
        ("replica", None, "audit", False),
    ]
    assert up.log is not None and up.log.size == len(fixture_log.encode())
    missing = orch.model_copy(update={"wan_xml": str(host.work / "no wan.xml")})
    gone = probe_orchestrator(conn, missing)
    assert gone.running is None and "exited 1" in (gone.error or "")
