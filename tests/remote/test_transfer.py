"""Uploads against a real sshd: fresh, skipped when identical, resumed when partial, refused
on a checksum mismatch."""

from __future__ import annotations

import hashlib
import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from bm_upgrade.errors import TransferFailed, TransferInterrupted
from bm_upgrade.remote import Connection
from bm_upgrade.remote.transfer import REQUEST_SIZE, file_sha256, remote_sha256
from bm_upgrade.sandbox import fault_uploads, logins
from tests.remote.conftest import Host


@pytest.fixture(scope="module")
def conn(host: Host) -> Iterator[Connection]:
    with Connection(host.address, host.settings()) as connection:
        yield connection


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 MiB + a bit: several 252 KiB requests and an odd tail."""
    path = tmp_path_factory.mktemp("payload") / "bigmemory-max-4.2.1.tar.gz"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 12345))
    return path


def own(path: Path, host: Host) -> None:
    """Hand a file the test wrote (as root) to the login user, as if it had written it."""
    entry = pwd.getpwnam(host.handle.login_user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def target(host: Host, name: str) -> Path:
    folder = host.work / "uploads with space"
    folder.mkdir(exist_ok=True)
    logins.give_to_user(folder, host.handle.login_user)
    return folder / name


def test_upload_then_skip(conn: Connection, host: Host, payload: Path) -> None:
    dest = target(host, "kit.tar.gz")
    first = conn.upload(payload, str(dest))
    assert first.action == "uploaded" and first.bytes_sent == payload.stat().st_size
    assert dest.read_bytes() == payload.read_bytes()
    assert not Path(str(dest) + ".part").exists()
    second = conn.upload(payload, str(dest), file_sha256(payload))
    assert (second.action, second.bytes_sent) == ("skipped", 0)


def test_upload_creates_the_folder(conn: Connection, host: Host, payload: Path) -> None:
    dest = host.work / "new folder" / "deeper $(x)" / "kit.tar.gz"
    assert conn.upload(payload, str(dest)).action == "uploaded"
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == file_sha256(payload)


def test_resume_a_partial_upload(conn: Connection, host: Host, payload: Path) -> None:
    dest = target(host, "resumed.tar.gz")
    part = Path(str(dest) + ".part")
    cut = 1_000_003
    part.write_bytes(payload.read_bytes()[:cut])
    own(part, host)
    result = conn.upload(payload, str(dest))
    assert result.action == "resumed"
    assert result.bytes_sent == payload.stat().st_size - cut
    assert dest.read_bytes() == payload.read_bytes()


def test_partial_that_does_not_match_is_restarted(
    conn: Connection, host: Host, payload: Path
) -> None:
    dest = target(host, "restarted.tar.gz")
    part = Path(str(dest) + ".part")
    part.write_bytes(b"not the start of the kit")
    own(part, host)
    result = conn.upload(payload, str(dest))
    assert result.action == "uploaded" and result.bytes_sent == payload.stat().st_size
    assert dest.read_bytes() == payload.read_bytes()


def test_different_file_at_destination_is_replaced(
    conn: Connection, host: Host, payload: Path
) -> None:
    dest = target(host, "replaced.tar.gz")
    dest.write_bytes(b"x" * payload.stat().st_size)
    own(dest, host)
    assert conn.upload(payload, str(dest)).action == "uploaded"
    assert dest.read_bytes() == payload.read_bytes()


def test_checksum_mismatch_fails_and_leaves_nothing(
    conn: Connection, host: Host, payload: Path
) -> None:
    dest = target(host, "mismatch.tar.gz")
    wrong = "0" * 64
    with pytest.raises(TransferFailed) as info:
        conn.upload(payload, str(dest), wrong)
    message = str(info.value)
    assert host.address in message and wrong in message and file_sha256(payload) in message
    assert not dest.exists() and not Path(str(dest) + ".part").exists()


def test_remote_sha256_of_missing_file(conn: Connection, host: Host) -> None:
    assert remote_sha256(conn, str(host.work / "no such file")) is None


def drop_next_sftp_session(host: Host, after_bytes: int) -> Path:
    """What the sandbox's ``drop-upload`` fault writes: the host's wrapper cuts its next SFTP
    session's connection after ``after_bytes`` of requests."""
    marker = host.handle.root / fault_uploads.MARKER
    marker.write_text(f"{after_bytes}\n", encoding="ascii")
    return marker


def test_a_connection_dropped_mid_upload_is_reopened_and_resumed(host: Host, payload: Path) -> None:
    """The connection is killed on the host's side after two whole 252 KiB writes: the upload
    reconnects, finds the two writes in the .part file (checked by their sha256), sends the
    rest, and the whole file's sha256 is checked before the rename."""
    dest = target(host, "dropped.tar.gz")
    marker = drop_next_sftp_session(host, 2 * REQUEST_SIZE + 4096)
    with Connection(host.address, host.settings()) as conn:
        first = conn.transport
        result = conn.upload(payload, str(dest))
        assert conn.transport is not first  # a new connection finished it
    assert not marker.exists() and marker.with_name(marker.name + ".fired").exists()
    assert (result.action, result.attempts) == ("resumed", 2)
    assert result.bytes_sent == payload.stat().st_size - 2 * REQUEST_SIZE
    assert result.sha256 == file_sha256(payload)
    assert dest.read_bytes() == payload.read_bytes()
    assert not Path(str(dest) + ".part").exists()


def test_a_connection_dropped_at_every_attempt_fails_naming_the_host(
    host: Host, payload: Path
) -> None:
    """With one connection allowed, the drop is not retried: the failure names the host and
    says a rerun resumes; the partial file is kept for it."""
    dest = target(host, "dropped-once.tar.gz")
    drop_next_sftp_session(host, 2 * REQUEST_SIZE + 4096)
    with (
        Connection(host.address, host.settings(), retries=1) as conn,
        pytest.raises(TransferInterrupted) as info,
    ):
        conn.upload(payload, str(dest))
    message = str(info.value)
    assert host.address in message and "rerun to resume" in message
    assert Path(str(dest) + ".part").stat().st_size == 2 * REQUEST_SIZE
