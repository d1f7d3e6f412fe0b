"""Shared fixtures of the sandbox tests: a reserved loopback block, real sshd hosts, SSH helpers.

Expensive things (sshd, a whole sandbox cluster) are module- or session-scoped; every process
a fixture starts is stopped by PID when it ends.

Folders the sandbox's login user must reach live under :func:`host_tmp`, not pytest's tmp_path:
every pytest session that starts resets ``<tmp>/pytest-of-<user>`` to mode 0700, which would
lock the login user out of a running sandbox when test sessions overlap.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from bm_upgrade.sandbox import blocks, logins, sshd, sshkeys


@dataclass
class SshHost:
    """A running sandbox sshd plus what a client needs to log in."""

    handle: sshd.SshdHandle
    key: sshkeys.ClientKey
    known_hosts: Path
    journal: Path
    user: str

    @property
    def address(self) -> str:
        return self.handle.address


def ssh_connect(
    address: str, port: int, user: str, key_file: Path, known_hosts: Path
) -> paramiko.SSHClient:
    """A paramiko client that rejects unknown host keys (TCP_NODELAY, as the tool does)."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    sock = socket.create_connection((address, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        client.connect(
            address,
            port,
            username=user,
            key_filename=str(key_file),
            sock=sock,
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
        )
    except BaseException:
        client.close()
        sock.close()
        raise
    return client


def ssh_run(
    client: paramiko.SSHClient, command: str, stdin: bytes = b"", timeout_s: float = 30.0
) -> tuple[int, str, str]:
    """Run ``command``; returns (exit code, stdout, stderr)."""
    transport = client.get_transport()
    assert transport is not None
    channel = transport.open_session(timeout=timeout_s)
    channel.settimeout(timeout_s)
    channel.exec_command(command)
    if stdin:
        channel.sendall(stdin)
    channel.shutdown_write()
    out, err = bytearray(), bytearray()
    while True:
        chunk = channel.recv(65536)
        if not chunk:
            break
        out += chunk
    while True:
        chunk = channel.recv_stderr(65536)
        if not chunk:
            break
        err += chunk
    code = channel.recv_exit_status()
    channel.close()
    return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


@pytest.fixture(scope="session")
def sandbox_tmp() -> Iterator[Path]:
    """A session folder outside pytest's tmp root, traversable by the login user."""
    base = Path(tempfile.mkdtemp(prefix="bm-sandbox-tests-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


_folder_numbers = itertools.count()


def new_folder(base: Path, name: str) -> Path:
    folder = base / f"{name}{next(_folder_numbers)}"
    folder.mkdir()
    return folder


@pytest.fixture
def host_tmp(sandbox_tmp: Path) -> Path:
    """A fresh folder for one test's sshd or sandbox (see the module docstring)."""
    return new_folder(sandbox_tmp, "t")


@pytest.fixture(scope="session")
def address_block(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback block ``127.a.b`` no other sandbox or test session uses."""
    owner = tmp_path_factory.mktemp("address-block")
    block = blocks.reserve_block(owner)
    yield block
    blocks.release_block(owner)


@pytest.fixture(scope="module")
def ssh_host(sandbox_tmp: Path, address_block: str) -> Iterator[SshHost]:
    """One real sshd on a fresh address of the session's block, journaling commands."""
    base = new_folder(sandbox_tmp, "sshd-host")
    user = logins.login_user()
    key = sshkeys.create_client_key(base / "client" / "id_ed25519")
    journal = base / "journal.jsonl"
    root = base / "host"
    root.mkdir()
    logins.give_to_user(root, user)
    address = f"{address_block}.{_next_host_number()}"
    handle = sshd.start_sshd(
        address,
        logins.default_port(),
        root,
        authorized_key=key.public_line,
        login_user=user,
        journal=journal,
    )
    known_hosts = sshkeys.write_known_hosts(base / "client" / "known_hosts", [handle])
    try:
        yield SshHost(handle=handle, key=key, known_hosts=known_hosts, journal=journal, user=user)
    finally:
        handle.stop()


_host_numbers = iter(range(200, 255))


def _next_host_number() -> int:
    """Host numbers .200-.254 of the session block are for standalone sshd fixtures/tests."""
    return next(_host_numbers)


@pytest.fixture
def fresh_address(address_block: str) -> str:
    """An address of the session's block no other test of this session uses."""
    return f"{address_block}.{_next_host_number()}"


@dataclass
class Sandbox:
    """A running sandbox cluster (``sandbox up``) and ways to reach its hosts."""

    directory: Path
    inventory: Path
    info: dict[str, object]

    @property
    def user(self) -> str:
        return str(self.info["login_user"])

    @property
    def port(self) -> int:
        return int(str(self.info["ssh_port"]))

    def server(self, name: str) -> dict[str, object]:
        servers = self.info["servers"]
        assert isinstance(servers, dict)
        return dict(servers[name])

    def connect(self, host: str) -> paramiko.SSHClient:
        return ssh_connect(
            host,
            self.port,
            self.user,
            self.directory / "ssh" / "id_ed25519",
            self.directory / "ssh" / "known_hosts",
        )

    def wait_acked_after(self, since: float, timeout_s: float = 15.0) -> None:
        """Until some client's ledger holds a write acknowledged after ``since`` (a journal
        time): the clients then write against the cluster as it is now."""
        import json
        import time

        deadline = time.monotonic() + timeout_s
        while True:
            for ledger in (self.directory / "ledgers").glob("*.jsonl"):
                for line in ledger.read_text(encoding="utf-8").splitlines()[::-1]:
                    try:
                        if json.loads(line)["t"] > since:
                            return
                    except ValueError:
                        continue  # a line being written right now
                    break  # the last whole line is older: so is every line above it
            assert time.monotonic() < deadline, f"no write acknowledged after {since}"
            time.sleep(0.05)


def start_sandbox(directory: Path, topology: str = "small") -> Sandbox:
    """``sandbox up`` in ``directory`` (stopped by the caller with cluster.down)."""
    import json

    from bm_upgrade.sandbox import cluster

    inventory = cluster.up(topology, directory, timeout_s=60)
    info = json.loads((directory / "sandbox.json").read_text(encoding="utf-8"))
    return Sandbox(directory=directory, inventory=inventory, info=info)


@contextmanager
def running_sandbox(sandbox_tmp: Path, name: str, topology: str = "small") -> Iterator[Sandbox]:
    """A sandbox of ``topology`` in its own folder under ``sandbox_tmp``, down (by PID) after
    the block."""
    from bm_upgrade.sandbox import cluster

    directory = new_folder(sandbox_tmp, name)
    try:
        yield start_sandbox(directory, topology)
    finally:
        cluster.down(directory)


@pytest.fixture(scope="session")
def small_sandbox(sandbox_tmp: Path) -> Iterator[Sandbox]:
    """The shipped ``small`` topology, up for the whole session. Do not stop or fail over its
    servers (use your own sandbox for that); reading and running harmless commands is fine."""
    with running_sandbox(sandbox_tmp, "sandbox-small") as sandbox:
        yield sandbox
