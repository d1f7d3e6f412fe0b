"""The SSH client against a real sshd: host keys, authentication, unreachable hosts, commands,
timeouts, detached starts and quoting."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest

from bm_upgrade.errors import (
    AuthenticationFailed,
    CommandFailed,
    CommandTimeout,
    HostKeyRejected,
    HostUnreachable,
)
from bm_upgrade.inventory import JumpHost
from bm_upgrade.remote import Connection, HostPool, shell
from bm_upgrade.sandbox import sshkeys
from tests.remote.conftest import Host, pid_alive, stop_pid


@pytest.fixture(scope="module")
def conn(host: Host) -> Iterator[Connection]:
    with Connection(host.address, host.settings()) as connection:
        yield connection


def test_run_returns_exit_code_stdout_stderr_on_one_reused_connection(conn: Connection) -> None:
    first = conn.run(["sh", "-c", "echo out; echo err >&2"])
    transport = conn.transport
    second = conn.run("exit 7", check=False)
    assert (first.exit_code, first.stdout, first.stderr) == (0, "out\n", "err\n")
    assert second.exit_code == 7 and not second.ok
    assert conn.transport is transport


def test_commands_share_one_transport_whose_socket_has_tcp_nodelay(conn: Connection) -> None:
    """Without TCP_NODELAY each channel open stalls ~40 ms on the delayed ACK (what a
    command costs is a figure of bench/bench_sandbox.py, not asserted here)."""
    conn.run(["true"])
    transport = conn.transport
    for _ in range(3):
        conn.run(["true"])
    assert conn.transport is transport
    sock = transport.sock
    assert isinstance(sock, socket.socket)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_command_failure_names_host_command_exit_code_and_stderr_tail(conn: Connection) -> None:
    with pytest.raises(CommandFailed) as info:
        conn.run(["sh", "-c", "for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 4"])
    exc = info.value
    assert exc.exit_code == 4 and exc.host == conn.host
    message = str(exc)
    assert conn.host in message and "exited 4" in message and "line7" in message
    assert "line1" not in message  # only the tail
    assert "for i in" in message


def test_command_timeout(conn: Connection) -> None:
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"did not finish within 0.5 s: sleep 30"):
        conn.run(["sleep", "30"], timeout=0.5)
    assert time.monotonic() - started < 20  # liveness: it did not wait for the 30 s
    assert conn.run(["echo", "still usable"]).stdout == "still usable\n"


def test_quoting_with_spaces_quotes_and_command_substitution(conn: Connection, host: Host) -> None:
    marker = host.work / "injected"
    nasty = host.work / f"dir with spaces 'single' \"double\" $(touch {marker}) `touch {marker}`"
    conn.run(["mkdir", "-p", str(nasty)])
    conn.run(f"echo hello > {shell([str(nasty / 'file $HOME.txt')])}")
    listing = conn.run(["ls", "-1", str(nasty)]).stdout
    assert listing == "file $HOME.txt\n"
    assert (nasty / "file $HOME.txt").read_text() == "hello\n"
    assert not marker.exists()


def test_detached_start_survives_disconnect(host: Host) -> None:
    log = host.work / "detached dir" / "app's.log"
    with Connection(host.address, host.settings()) as first:
        first.run(["mkdir", "-p", str(log.parent)])
        pid = first.start_detached(
            ["sh", "-c", "echo started; exec sleep 30"], str(log), cwd=str(host.work)
        )
    try:
        # The connection is closed: a fresh one still sees the program, as its own session.
        with Connection(host.address, host.settings()) as second:
            assert second.run(["kill", "-0", str(pid)], check=False).exit_code == 0
            assert pid_alive(pid)
            assert os.getsid(pid) == pid
        deadline = time.monotonic() + 5
        while "started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.read_text() == "started\n"
    finally:
        stop_pid(pid)


@contextmanager
def connections_counted() -> Iterator[mock.MagicMock]:
    """socket.create_connection as the client calls it, counted (one call per attempt)."""
    with mock.patch.object(socket, "create_connection", wraps=socket.create_connection) as m:
        yield m


def test_unknown_host_key_rejected(host: Host, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    settings = host.settings(known_hosts=str(empty))
    with pytest.raises(HostKeyRejected) as info:
        Connection(host.address, settings).open()
    message = str(info.value)
    assert host.address in message and str(empty) in message
    assert "accept_unknown_host_keys" in message and "SHA256:" in message
    assert "bm-upgrade trust-hosts" in message


def test_unknown_host_key_accepted_when_the_inventory_says_so_but_never_recorded(
    host: Host, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """accept_unknown_host_keys lets the connection go on with a warning; only trust-hosts
    records keys, so the file stays as it was and the next strict connection still refuses."""
    known = tmp_path / "sub" / "known_hosts"
    with (
        caplog.at_level(logging.WARNING, logger="bm_upgrade.remote.hostkeys"),
        Connection(
            host.address, host.settings(known_hosts=str(known), accept_unknown_host_keys=True)
        ) as c,
    ):
        assert c.run(["true"]).ok
    assert not known.exists()
    assert "NOT CHECKED" in caplog.text and "bm-upgrade trust-hosts" in caplog.text
    with pytest.raises(HostKeyRejected, match="trust-hosts"):
        Connection(host.address, host.settings(known_hosts=str(known))).open()


def test_changed_host_key_rejected(host: Host, second_host: Host, tmp_path: Path) -> None:
    wrong = tmp_path / "known_hosts"
    sshkeys.write_known_hosts(
        wrong, [(host.address, host.handle.port, second_host.handle.host_key_pub)]
    )
    with pytest.raises(HostKeyRejected, match="CHANGED") as info:
        Connection(
            host.address, host.settings(known_hosts=str(wrong), accept_unknown_host_keys=True)
        ).open()
    assert "ssh-keygen -R" in str(info.value)


def test_wrong_key_is_not_retried(host: Host, tmp_path: Path) -> None:
    other = sshkeys.create_client_key(tmp_path / "other_key")
    settings = host.settings(key_file=str(other.private))
    conn = Connection(host.address, settings, retries=5, backoff_s=1.0)
    with connections_counted() as connects, pytest.raises(AuthenticationFailed) as info:
        conn.open()
    assert connects.call_count == 1  # not retried
    message = str(info.value)
    assert host.address in message and "authorized_keys" in message
    assert str(other.private) in message


def test_missing_key_file_and_passphrase(host: Host, tmp_path: Path) -> None:
    with pytest.raises(AuthenticationFailed, match="does not exist"):
        Connection(host.address, host.settings(key_file=str(tmp_path / "none"))).open()
    encrypted = tmp_path / "enc"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret pass", "-f", str(encrypted)], check=True
    )
    with pytest.raises(AuthenticationFailed, match="is encrypted"):
        Connection(host.address, host.settings(key_file=str(encrypted))).open()
    with pytest.raises(AuthenticationFailed, match="BM_TEST_NO_SUCH_VAR"):
        Connection(
            host.address,
            host.settings(key_file=str(encrypted), key_passphrase_env="BM_TEST_NO_SUCH_VAR"),
        ).open()
    secret = tmp_path / "pass"
    secret.write_text("s3cret pass\n")
    # Decrypts; the server then refuses this key (not authorized): an auth error, no leak.
    with pytest.raises(AuthenticationFailed, match="refused 1 key") as info:
        Connection(
            host.address, host.settings(key_file=str(encrypted), key_passphrase_file=str(secret))
        ).open()
    assert "s3cret" not in str(info.value)


def test_host_down_names_the_host_after_retries(host: Host, address: Callable[[], str]) -> None:
    down = address()
    conn = Connection(down, host.settings(), retries=3, backoff_s=0.01)
    with pytest.raises(HostUnreachable) as info:
        conn.run(["true"])
    message = str(info.value)
    assert info.value.host == down
    assert down in message and "3 attempt(s)" in message and "refused" in message.lower()


def test_unresolvable_host_is_not_retried(host: Host) -> None:
    conn = Connection("no-such-host.invalid", host.settings(), retries=5, backoff_s=1.0)
    with (
        connections_counted() as connects,
        pytest.raises(HostUnreachable, match="cannot resolve host name"),
    ):
        conn.open()
    assert connects.call_count == 1  # not retried


def test_reconnects_after_the_connection_died(host: Host) -> None:
    with Connection(host.address, host.settings()) as conn:
        conn.run(["true"])
        conn.transport.close()
        assert conn.run(["echo", "again"]).stdout == "again\n"


def test_jump_host(host: Host, second_host: Host) -> None:
    jump = JumpHost(host=host.address, port=host.handle.port, user=host.handle.login_user)
    with Connection(second_host.address, second_host.settings(jump_host=jump)) as conn:
        assert conn.run(["sh", "-c", "echo $SSH_CONNECTION"]).stdout.split()[2] == (
            second_host.address
        )
        # The hop's sshd saw the connection come from the jump host's sshd, itself local.
        assert conn.run(["echo", "via jump"]).stdout == "via jump\n"


def test_jump_host_cannot_reach_target(host: Host, address: Callable[[], str]) -> None:
    down = address()
    jump = JumpHost(host=host.address, port=host.handle.port)
    with pytest.raises(HostUnreachable, match=f"through jump host {host.address}"):
        Connection(down, host.settings(jump_host=jump), retries=1).open()


def test_pool_fan_out_reports_each_host(host: Host, address: Callable[[], str]) -> None:
    down = address()
    with HostPool(host.settings(), retries=1) as pool:
        outcome = pool.fan_out(
            [host.address, down, host.address], lambda c: c.run(["echo", c.host]).stdout.strip()
        )
        assert outcome.results == {host.address: host.address}
        assert list(outcome.errors) == [down]
        assert isinstance(outcome.errors[down], HostUnreachable)
        assert pool.get(host.address) is pool.get(host.address)
        with pytest.raises(HostUnreachable, match=down):
            outcome.values()


def test_command_killed_by_a_signal_fails_fast(conn: Connection) -> None:
    # Waiting for the exit status that never comes would end in CommandTimeout instead.
    with pytest.raises(CommandFailed) as info:
        conn.run(["sh", "-c", "kill -9 $$"], timeout=60)
    assert not isinstance(info.value, CommandTimeout)
    assert info.value.exit_code != 0
