"""Election, sync, failover and failback driven by hand over SSH with the kit's own scripts,
under client load, on a sandbox of this module; then `down` leaves nothing behind."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paramiko
import pytest

from bm_upgrade.sandbox import cluster, processes
from bm_upgrade.sandbox.java import java_home_of

from .conftest import Sandbox, running_sandbox, ssh_run


@pytest.fixture(scope="module")
def sandbox(sandbox_tmp: Path) -> Iterator[Sandbox]:
    with running_sandbox(sandbox_tmp, "sandbox-failover") as sandbox:
        yield sandbox


class Node:
    """One server of the sandbox, driven over SSH like an operator would."""

    def __init__(self, sandbox: Sandbox, name: str) -> None:
        self.name = name
        self.info = sandbox.server(name)
        self.host = str(self.info["host"])
        root = sandbox.directory / "hosts" / self.host
        self.kit = root / "opt" / "terracotta" / "bigmemory-max"
        self.config = root / "etc" / "tc-config.xml"
        self.console = root / "logs" / f"{name}.console.log"
        # An SSH login has no JAVA_HOME: name the host's Java, as an operator would.
        self.java = ["env", f"JAVA_HOME={java_home_of(root)}"]
        self.ssh: paramiko.SSHClient = sandbox.connect(self.host)

    def run(self, command: str) -> tuple[int, str, str]:
        return ssh_run(self.ssh, command)

    def script(self, name: str, *args: str) -> tuple[int, str, str]:
        argv = [*self.java, str(self.kit / "server" / "bin" / name), *args]
        return self.run(shlex.join(argv))

    def stat(self) -> dict[str, str]:
        port = self.info["management_port"]
        code, out, err = self.script("server-stat.sh", "-s", f"{self.host}:{port}")
        assert code == 0, err
        values = {}
        for line in out.splitlines():
            key, sep, value = line.partition(": ")
            if sep:
                values[key.split(".", 1)[1]] = value
        return values

    def wait_state(self, state: str, timeout_s: float = 20.0) -> float:
        start = time.monotonic()
        while True:
            current = self.stat().get("state")
            if current == state:
                return time.monotonic() - start
            assert time.monotonic() - start < timeout_s, f"{self.name} stuck in {current}"
            time.sleep(0.05)

    def start(self) -> None:
        command = (
            f"nohup {shlex.join(self.java)} "
            f"{shlex.quote(str(self.kit / 'server/bin/start-tc-server.sh'))} "
            f"-f {shlex.quote(str(self.config))} -n {shlex.quote(self.name)} "
            f">>{shlex.quote(str(self.console))} 2>&1 </dev/null &"
        )
        assert self.run(command)[0] == 0

    def stop(self, *extra: str) -> tuple[int, str, str]:
        return self.script("stop-tc-server.sh", "-f", str(self.config), "-n", self.name, *extra)


@contextmanager
def stripe_nodes(sandbox: Sandbox) -> Iterator[tuple[Node, Node]]:
    """The two servers of the small topology's stripe, their SSH sessions closed after."""
    first, second = Node(sandbox, "east-s1-a"), Node(sandbox, "east-s1-b")
    try:
        yield first, second
    finally:
        first.ssh.close()
        second.ssh.close()


@pytest.fixture(scope="module")
def nodes(sandbox: Sandbox) -> Iterator[tuple[Node, Node]]:
    with stripe_nodes(sandbox) as both:
        yield both


def _events(sandbox: Sandbox, event: str) -> list[dict[str, object]]:
    lines = (sandbox.directory / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == event]


def test_up_elected_the_first_server_and_synced_the_mirror(nodes: tuple[Node, Node]) -> None:
    first, second = nodes
    assert first.stat() == {
        "health": "OK",
        "role": "ACTIVE",
        "state": "ACTIVE-COORDINATOR",
        "port": str(first.info["management_port"]),
        "group name": "stripe1",
    }
    assert second.stat()["state"] == "PASSIVE-STANDBY"


def test_the_stop_script_refuses_to_stop_an_active_without_standby(
    sandbox: Sandbox, nodes: tuple[Node, Node]
) -> None:
    first, second = nodes
    code, out, _ = second.stop()
    assert code == 0 and "Stop success" in out
    code, out, err = first.stop()
    assert code != 0, out
    # The product's own answer (docs/terracotta.md): the force option is the way out.
    assert "No passive server available in Standby mode. Use force option" in out + err
    assert first.stat()["state"] == "ACTIVE-COORDINATOR"
    second.start()
    second.wait_state("PASSIVE-STANDBY")


def test_failover_and_failback_by_hand_lose_no_acknowledged_write(
    sandbox: Sandbox, nodes: tuple[Node, Node]
) -> None:
    first, second = nodes
    timing = sandbox.info["timing"]
    assert isinstance(timing, dict)
    before = cluster.verify(sandbox.directory)["acked"]

    # Failover: stop the active; the standby mirror takes over after the election time.
    code, out, err = first.stop()
    assert (code, out.strip()) == (0, "Stop success. Response code 200"), err
    took = second.wait_state("ACTIVE-COORDINATOR")
    assert took >= 0
    # The old active comes back as a mirror: persistent, so its data goes to a dirty backup.
    first.start()
    first.wait_state("PASSIVE-STANDBY")
    created = [e for e in _events(sandbox, "dirty_backup") if e["action"] == "created"]
    assert any(e["server"] == first.name for e in created)

    # Failback: stop the current active, the original takes over, restart the other one.
    assert second.stop()[0] == 0
    first.wait_state("ACTIVE-COORDINATOR")
    second.start()
    second.wait_state("PASSIVE-STANDBY")

    standby = [
        e
        for e in _events(sandbox, "server_state")
        if e["server"] == second.name and e["state"] == "PASSIVE-STANDBY"
    ][-1]
    sandbox.wait_acked_after(float(str(standby["t"])))  # clients wrote to the final pair
    result = cluster.verify(sandbox.directory)
    assert result["lost"] == 0, result
    assert result["acked"] > before
    states = [(e["server"], e["state"]) for e in _events(sandbox, "server_state")]
    assert (second.name, "ACTIVE-COORDINATOR") in states
    assert (first.name, "STOP-STATE") in states


def test_down_leaves_no_process_behind(sandbox: Sandbox, nodes: tuple[Node, Node]) -> None:
    directory = sandbox.directory
    pids = set(cluster.recorded_pids(directory)) | set(processes.processes_mentioning(directory))
    assert len(pids) >= 6  # 3 sshd, 2 server scripts + programs, client, kit server
    nodes[0].ssh.close()
    nodes[1].ssh.close()
    cluster.down(directory)
    assert [pid for pid in pids if processes.pid_alive(pid)] == []
    assert processes.processes_mentioning(directory) == []
    assert not (directory / "address-block").exists()
    cluster.down(directory)  # idempotent
