"""Timeouts against a real sshd: a command past its limit dies on the host (a program it
detached does not), and an upload to a host that stopped answering fails within its bound."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bm_upgrade.errors import CommandTimeout, TransferFailed
from bm_upgrade.remote import Connection, quote
from bm_upgrade.remote.quoting import detached
from tests.remote.conftest import Host, frozen, pid_alive, stop_pid, wait_until


@pytest.fixture(scope="module")
def conn(host: Host) -> Iterator[Connection]:
    with Connection(host.address, host.settings()) as connection:
        yield connection


@pytest.fixture
def folder(host: Host, tmp_path: Path) -> Path:
    """A folder of this test on the host, that the login user may write into."""
    path = host.work / tmp_path.name
    path.mkdir()
    os.chmod(path, 0o777)
    return path


def read_pid(path: Path) -> int:
    wait_until(lambda: path.exists() and path.read_text().strip().isdigit(), 5, f"{path}")
    return int(path.read_text())


def test_a_timed_out_command_and_its_children_are_killed_on_the_host(
    conn: Connection, folder: Path
) -> None:
    shell_pid, child_pid = folder / "shell.pid", folder / "child.pid"
    line = (
        f"sleep 30 & echo $! > {quote(str(child_pid))}; echo $$ > {quote(str(shell_pid))}; "
        "exec sleep 30"
    )
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"did not finish within 1 s: sleep 30 &") as info:
        conn.run(line, timeout=1)
    assert time.monotonic() - started < 20  # liveness: it did not wait for the 30 s
    assert info.value.command == line  # the caller's line, not the wrapper
    pids = [read_pid(shell_pid), read_pid(child_pid)]
    try:
        # The command was stopped on the host: no process of it is left.
        wait_until(lambda: not any(pid_alive(p) for p in pids), 3, f"{pids} to be gone")
    finally:
        for pid in pids:
            stop_pid(pid)
    assert conn.run(["echo", "still usable"]).stdout == "still usable\n"


def test_a_program_detached_by_a_command_that_times_out_keeps_running(
    conn: Connection, folder: Path
) -> None:
    pid_file = folder / "app.pid"
    start = detached(
        ["sh", "-c", f"echo $$ > {quote(str(pid_file))}; exec sleep 30"], str(folder / "app.log")
    )
    with pytest.raises(CommandTimeout):
        conn.run(f"{start}; sleep 30", timeout=1)
    pid = read_pid(pid_file)
    try:
        assert pid_alive(pid)
        assert os.getsid(pid) == pid
    finally:
        stop_pid(pid)


def test_an_exit_status_of_124_in_time_is_an_exit_status(conn: Connection) -> None:
    result = conn.run("exit 124", timeout=5, check=False)
    assert result.exit_code == 124


def test_an_upload_to_a_host_that_stopped_answering_fails_within_its_bound(
    own_host: Host, tmp_path: Path
) -> None:
    payload = tmp_path / "kit.tar.gz"
    payload.write_bytes(os.urandom(4 * 1024 * 1024))
    dest = own_host.work / "kit.tar.gz"
    conn = Connection(own_host.address, own_host.settings(command_timeout_s=1.5), retries=1)
    conn.sftp()  # the session is up before the host freezes
    outcome: dict[str, BaseException] = {}

    def upload() -> None:
        try:
            conn.upload(payload, str(dest))
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=upload, daemon=True)
    with frozen(own_host):
        worker.start()
        # A liveness bound (the stall limit is 1.5 s), not a speed goal.
        worker.join(timeout=30)
        assert not worker.is_alive(), "the upload still hangs on the stopped host"
    conn.close()
    error = outcome.get("error")
    assert isinstance(error, TransferFailed), error
    message = str(error)
    assert own_host.address in message and str(dest) in message
    assert "stalled" in message and "1.5 s" in message
