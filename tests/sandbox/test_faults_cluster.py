"""Every fault kind injected (and cleared) through `bm-upgrade sandbox fault` on a real sandbox,
with what the cluster then does observed over SSH and the REST port, as the tool sees it."""

from __future__ import annotations

import json
import shlex
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from bm_upgrade.cli import main
from bm_upgrade.sandbox import cluster, faults

from .conftest import Sandbox, running_sandbox, ssh_connect
from .test_hosts_failover import Node, stripe_nodes

DRAIN = "Stopping; flushing takes 1.5 s (sandbox fault slow-stop)"
SYNC_S = 0.5  # this topology's (small.yaml)


@pytest.fixture(scope="module")
def sandbox(sandbox_tmp: Path) -> Iterator[Sandbox]:
    with running_sandbox(sandbox_tmp, "sandbox-faults") as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def nodes(sandbox: Sandbox) -> Iterator[tuple[Node, Node]]:
    with stripe_nodes(sandbox) as both:
        yield both


def fault(sandbox: Sandbox, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["sandbox", "fault", "--dir", str(sandbox.directory), *args])
    out, err = capsys.readouterr()
    return code, out + err


def fault_events(sandbox: Sandbox) -> list[tuple[str, str, str]]:
    lines = (sandbox.directory / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    return [
        (e["kind"], e["target"], e["action"])
        for e in map(json.loads, lines)
        if e["event"] == "fault"
    ]


def journal_events(sandbox: Sandbox, event: str, **match: str) -> list[dict[str, Any]]:
    lines = (sandbox.directory / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    return [
        e
        for e in map(json.loads, lines)
        if e["event"] == event and all(e.get(k) == v for k, v in match.items())
    ]


def start_foreground(node: Node) -> tuple[int, str]:
    """Run start-tc-server.sh in the foreground over SSH: returns when the server exits."""
    script = node.kit / "server" / "bin" / "start-tc-server.sh"
    argv = [*node.java, str(script), "-f", str(node.config), "-n", node.name]
    code, out, err = node.run(shlex.join(argv))
    return code, out + err


def wait_gone(node: Node, timeout_s: float = 10.0) -> None:
    """Until the server's management port stops answering."""
    deadline = time.monotonic() + timeout_s
    while cluster.server_stat(node.host, int(str(node.info["management_port"]))) is not None:
        assert time.monotonic() < deadline, f"{node.name} still answers"
        time.sleep(0.05)


def restart_mirror(node: Node) -> None:
    node.start()
    node.wait_state("PASSIVE-STANDBY")


def test_no_sync_keeps_a_mirror_uninitialized_until_cleared(
    sandbox: Sandbox, nodes: tuple[Node, Node], capsys: pytest.CaptureFixture[str]
) -> None:
    _, mirror = nodes
    code, out = fault(sandbox, "no-sync", mirror.name, capsys=capsys)
    assert code == 0, out
    assert mirror.stop()[0] == 0
    mirror.start()
    mirror.wait_state("PASSIVE-UNINITIALIZED")
    # The mirror journals nothing while the fault holds its sync: it is watched for three
    # sync times from its journaled PASSIVE-UNINITIALIZED.
    joined = journal_events(
        sandbox, "server_state", server=mirror.name, state="PASSIVE-UNINITIALIZED"
    )[-1]["t"]
    while time.time() < joined + 3 * SYNC_S:
        assert mirror.stat()["state"] == "PASSIVE-UNINITIALIZED"
    assert fault(sandbox, "--list", capsys=capsys) == (0, f"no-sync {mirror.name}\n")
    code, out = fault(sandbox, "--clear", mirror.name, capsys=capsys)
    assert code == 0 and "cleared no-sync" in out
    assert fault(sandbox, "--list", capsys=capsys) == (0, "")
    mirror.wait_state("PASSIVE-STANDBY")
    cleared = [
        e for e in journal_events(sandbox, "fault", target=mirror.name) if e["action"] == "clear"
    ][-1]["t"]
    synced = journal_events(sandbox, "server_state", server=mirror.name, state="PASSIVE-STANDBY")[
        -1
    ]["t"]
    assert synced > cleared
    assert ("no-sync", mirror.name, "inject") in fault_events(sandbox)
    assert ("no-sync", mirror.name, "clear") in fault_events(sandbox)


def test_injected_clears_its_fault_even_when_the_block_fails(sandbox: Sandbox) -> None:
    with (
        pytest.raises(RuntimeError, match="the block failed"),
        faults.injected(sandbox.directory, "no-sync", "east-s1-b") as said,
    ):
        assert "east-s1-b" in said
        assert [f["kind"] for f in faults.active(sandbox.directory)] == ["no-sync"]
        raise RuntimeError("the block failed")
    assert faults.active(sandbox.directory) == []
    assert ("no-sync", "east-s1-b", "clear") in fault_events(sandbox)


def test_crash_on_start_makes_a_kit_version_exit_2(
    sandbox: Sandbox, nodes: tuple[Node, Node], capsys: pytest.CaptureFixture[str]
) -> None:
    _, mirror = nodes
    assert fault(sandbox, "crash-on-start", "4.2.0", capsys=capsys)[0] == 0
    assert mirror.stop()[0] == 0
    wait_gone(mirror)
    code, out = start_foreground(mirror)
    assert code == 2, out
    assert "FATAL" in out and "crash-on-start" in out
    assert fault(sandbox, "--clear", capsys=capsys)[0] == 0
    restart_mirror(mirror)
    assert ("crash-on-start", "4.2.0", "clear") in fault_events(sandbox)


def test_expired_license_refuses_the_start_and_clear_restores_the_key(
    sandbox: Sandbox, nodes: tuple[Node, Node], capsys: pytest.CaptureFixture[str]
) -> None:
    _, mirror = nodes
    key = mirror.kit / "terracotta-license.key"
    original = key.read_text(encoding="utf-8")
    owner = key.stat().st_uid
    assert fault(sandbox, "expired-license", mirror.name, capsys=capsys)[0] == 0
    assert "Expiration Date: 2015-01-01" in key.read_text(encoding="utf-8")
    assert key.stat().st_uid == owner
    assert mirror.stop()[0] == 0
    wait_gone(mirror)
    code, out = start_foreground(mirror)
    assert code == 2, out
    assert "Your Terracotta license has expired on 2015-01-01" in out
    assert fault(sandbox, "--clear", mirror.name, capsys=capsys)[0] == 0
    assert key.read_text(encoding="utf-8") == original
    restart_mirror(mirror)

    # The sandbox's own key (the inventory's license_file) can be expired too.
    main_key = sandbox.directory / "terracotta-license.key"
    before = main_key.read_text(encoding="utf-8")
    assert fault(sandbox, "expired-license", "license", capsys=capsys)[0] == 0
    assert "Expiration Date: 2015-01-01" in main_key.read_text(encoding="utf-8")
    assert fault(sandbox, "--clear", "license", capsys=capsys)[0] == 0
    assert main_key.read_text(encoding="utf-8") == before


def test_slow_stop_keeps_the_server_up_for_the_given_time(
    sandbox: Sandbox, nodes: tuple[Node, Node], capsys: pytest.CaptureFixture[str]
) -> None:
    _, mirror = nodes
    assert fault(sandbox, "slow-stop", mirror.name, "--seconds", "1.5", capsys=capsys)[0] == 0
    drains = mirror.console.read_text(encoding="utf-8").count(DRAIN)
    start = time.monotonic()
    code, out, _ = mirror.stop()
    assert (code, out.strip()) == (0, "Stop success. Response code 200")
    assert mirror.stat()["state"] == "PASSIVE-STANDBY"  # still up, answering
    wait_gone(mirror)
    assert time.monotonic() - start >= 1.5
    assert fault(sandbox, "--clear", mirror.name, capsys=capsys)[0] == 0
    restart_mirror(mirror)
    assert mirror.stop()[0] == 0
    wait_gone(mirror)
    # Cleared: the second stop did not drain (the engine logs each drain it does).
    assert mirror.console.read_text(encoding="utf-8").count(DRAIN) == drains + 1
    restart_mirror(mirror)


def test_host_down_makes_ssh_hang_until_cleared(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    clients = sandbox.info["clients"]
    assert isinstance(clients, dict)
    host = clients["east-app1"]["host"]
    key, known = sandbox.directory / "ssh" / "id_ed25519", sandbox.directory / "ssh" / "known_hosts"
    code, out = fault(sandbox, "host-down", "east-app1", capsys=capsys)
    assert code == 0 and host in out
    start = time.monotonic()
    with pytest.raises((OSError, paramiko.SSHException, EOFError)):
        _connect_with_timeout(host, sandbox, key, known, timeout_s=1.0)
    assert time.monotonic() - start < 30  # liveness: the 1 s timeouts end it, it does not hang
    assert fault(sandbox, "--clear", host, capsys=capsys)[0] == 0
    client = ssh_connect(host, sandbox.port, sandbox.user, key, known)
    client.close()
    assert ("host-down", "east-app1", "clear") in fault_events(sandbox)


def _connect_with_timeout(
    host: str, sandbox: Sandbox, key: Path, known: Path, timeout_s: float
) -> None:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    sock = socket.create_connection((host, sandbox.port), timeout=timeout_s)
    try:
        client.connect(
            host,
            sandbox.port,
            username=sandbox.user,
            key_filename=str(key),
            sock=sock,
            allow_agent=False,
            look_for_keys=False,
            timeout=timeout_s,
            banner_timeout=timeout_s,
            auth_timeout=timeout_s,
        )
    finally:
        client.close()
        sock.close()


def test_kill_the_active_fails_over_and_loses_no_acknowledged_write(
    sandbox: Sandbox, nodes: tuple[Node, Node], capsys: pytest.CaptureFixture[str]
) -> None:
    active, mirror = nodes
    code, out = fault(sandbox, "kill", active.name, capsys=capsys)
    assert code == 0 and "kill -9" in out
    mirror.wait_state("ACTIVE-COORDINATOR")
    lines = (sandbox.directory / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    exits = [
        e
        for e in map(json.loads, lines)
        if e["event"] == "server_process" and e["server"] == active.name and e["action"] == "exit"
    ]
    assert exits[-1]["exit_code"] == 137 and exits[-1]["version"] == "4.2.0"
    code, out = fault(sandbox, "kill", active.name, capsys=capsys)
    assert code == 2 and "not running" in out
    restart_mirror(active)
    lines = (sandbox.directory / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    back = [
        e
        for e in map(json.loads, lines)
        if e["event"] == "server_state"
        and e["server"] == active.name
        and e["state"] == "PASSIVE-STANDBY"
    ][-1]
    sandbox.wait_acked_after(back["t"])  # writes replicated to the returned mirror count too
    assert cluster.verify(sandbox.directory)["lost"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["melt", "east-s1-a"], "unknown fault kind 'melt'"),
        (["no-sync", "nobody"], "'nobody' is not a server name"),
        (["kill"], "needs KIND TARGET"),
        (["no-sync", "east-s1-a", "--seconds", "2"], "--seconds goes with slow-stop only"),
    ],
)
def test_mistakes_get_one_clear_message(
    sandbox: Sandbox, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = fault(sandbox, *args, capsys=capsys)
    assert code == 2
    assert message in out and "Traceback" not in out
