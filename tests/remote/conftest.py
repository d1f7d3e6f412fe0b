"""Real sshd hosts for the remote layer's tests (bm_upgrade.sandbox.sshd), shared per session.

Every sshd is stopped by PID when the session ends; tests that start programs on a host stop
them by PID themselves.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import json
import os
import shutil
import signal
import socketserver
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bm_upgrade.inventory import SshSettings
from bm_upgrade.sandbox import blocks, logins, processes, sshd, sshkeys


@dataclass
class Host:
    """A running sshd and what a client needs to log in to it."""

    handle: sshd.SshdHandle
    key: sshkeys.ClientKey
    known_hosts: Path
    work: Path
    """A folder on the host the login user may write (the host is this machine)."""

    @property
    def address(self) -> str:
        return self.handle.address

    def settings(self, **changes: object) -> SshSettings:
        base: dict[str, object] = {
            "user": self.handle.login_user,
            "port": self.handle.port,
            "key_file": str(self.key.private),
            "known_hosts": str(self.known_hosts),
            "use_agent": False,
            "connect_timeout_s": 5.0,
            "command_timeout_s": 20.0,
        }
        base.update(changes)
        return SshSettings.model_validate(base)


@pytest.fixture(scope="session")
def session_dir() -> Iterator[Path]:
    """This session's folder for hosts and keys, removed at the end.

    Not under pytest's basetemp: pytest prunes old ``pytest-N`` folders when another session
    starts, which would delete a running host's files under a concurrent session's feet.
    """
    folder = Path(tempfile.mkdtemp(prefix="bm-upgrade-remote-tests-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def block(session_dir: Path) -> Iterator[str]:
    """A loopback block ``127.a.b`` no other test session or sandbox uses."""
    owner = session_dir / "block"
    reserved = blocks.reserve_block(owner)
    yield reserved
    blocks.release_block(owner)


_numbers = itertools.count(10)


@pytest.fixture(scope="session")
def address(block: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh addresses of the session's block."""
    yield lambda: f"{block}.{next(_numbers)}"


@pytest.fixture(scope="session")
def client_dir(session_dir: Path) -> Path:
    """The client side: one key every test host accepts, one known_hosts listing them all."""
    folder = session_dir / "client"
    sshkeys.create_client_key(folder / "id_ed25519")
    (folder / "known_hosts").write_text("", encoding="utf-8")
    return folder


def _start_host(base: Path, addr: str, client: Path) -> Host:
    user = logins.login_user()
    key = sshkeys.ClientKey(
        client / "id_ed25519",
        client / "id_ed25519.pub",
        (client / "id_ed25519.pub").read_text(encoding="utf-8").strip(),
    )
    root = base / "host"
    work = base / "work"
    for folder in (root, work):
        folder.mkdir(parents=True)
        logins.give_to_user(folder, user)
    logins.grant_traverse(work)
    handle = sshd.start_sshd(
        addr, logins.default_port(), root, authorized_key=key.public_line, login_user=user
    )
    known_hosts = client / "known_hosts"
    with known_hosts.open("a", encoding="utf-8") as fh:
        fh.write(handle.known_hosts_line() + "\n")
    return Host(handle, key, known_hosts, work)


@pytest.fixture(scope="session")
def host(session_dir: Path, address: Callable[[], str], client_dir: Path) -> Iterator[Host]:
    """One real sshd shared by the tests that do not change it."""
    started = _start_host(session_dir / "host1", address(), client_dir)
    try:
        yield started
    finally:
        started.handle.stop()


@pytest.fixture(scope="session")
def second_host(session_dir: Path, address: Callable[[], str], client_dir: Path) -> Iterator[Host]:
    """Another sshd (jump-host, fan-out and staging tests); same client key and known_hosts."""
    started = _start_host(session_dir / "host2", address(), client_dir)
    try:
        yield started
    finally:
        started.handle.stop()


def pid_alive(pid: int) -> bool:
    return processes.pid_alive(pid)


def stop_pid(pid: int) -> None:
    if pid > 1 and pid != os.getpid():
        processes.stop_pids([pid], timeout_s=2.0)


class JsonServer:
    """A real HTTP server on ``address:port`` answering GET ``path`` with the JSON in
    ``routes`` (what a management port answers)."""

    def __init__(self, address: str, port: int, routes: dict[str, object]) -> None:
        self.routes = routes
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = owner.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((address, port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def stat_json(name: str, state: str, group: str = "stripe1", port: int = 9540) -> dict[str, str]:
    """The REST stat answer of docs/terracotta.md for a server in ``state``."""
    role = (
        "ACTIVE"
        if state == "ACTIVE-COORDINATOR"
        else ("PASSIVE" if state.startswith("PASSIVE") else "UNKNOWN")
    )
    return {
        "health": "OK",
        "role": role,
        "state": state,
        "managementPort": str(port),
        "serverGroupName": group,
        "name": name,
    }


def topology_json(servers: dict[str, tuple[str, str]], group: str = "stripe1") -> object:
    """The topologies answer: ``servers`` maps name -> (state, version)."""
    return {
        "entities": [
            {
                "serverGroupEntities": [
                    {
                        "name": group,
                        "servers": [
                            {"attributes": {"Name": name, "State": state, "Version": version}}
                            for name, (state, version) in servers.items()
                        ],
                    }
                ]
            }
        ]
    }


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` (a state on the host) until true; fail naming ``what`` after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def own_host(session_dir: Path, address: Callable[[], str], client_dir: Path) -> Iterator[Host]:
    """An sshd of the test's own, for tests that freeze or break their host."""
    started = _start_host(session_dir / f"own-{next(_numbers)}", address(), client_dir)
    try:
        yield started
    finally:
        started.handle.stop()


@contextlib.contextmanager
def frozen(host: Host) -> Iterator[list[int]]:
    """The host's sshd and everything it runs SIGSTOPped (a host that stopped answering, as
    the sandbox's host-down fault does), SIGCONTed when the block ends."""
    pids = [host.handle.pid, *processes.children_of(host.handle.pid)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


S = TypeVar("S", bound=socketserver.BaseServer)


@contextmanager
def serving(server: S) -> Iterator[S]:
    """``server`` answering from a thread of its own for the block; shut down and closed
    after it."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
