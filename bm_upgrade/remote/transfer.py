"""Upload a file to a host: skipped when identical, resumed when partial, checked by sha256.

The upload goes to ``<path>.part`` and is renamed only once ``sha256sum`` on the host matches,
so a half-written kit is never mistaken for a good one. A ``.part`` whose bytes match the
start of the local file is continued from where it stopped.

A connection that breaks mid-transfer raises
:class:`~bm_upgrade.errors.TransferInterrupted`; :meth:`Connection.upload
<bm_upgrade.remote.client.Connection.upload>` then reconnects and resumes from the ``.part``.
A host that stops answering mid-transfer (frozen, a dead link) fails the upload with
:class:`~bm_upgrade.errors.TransferFailed` once no SFTP operation has moved on for
``stall_s`` seconds: a :class:`Watchdog` then closes the connection, which releases the SFTP
call paramiko would otherwise wait in forever.

The functions take any :class:`SftpHost` (a :class:`~bm_upgrade.remote.client.Connection` is
one), so this module does not import the client; the client imports it for ``upload``.

Speed: paramiko's default 32 KiB SFTP writes are slower than OpenSSH ``scp``; 252 KiB requests
(OpenSSH's sftp-server accepts messages up to 256 KiB) with pipelining and the AES-GCM cipher
chosen in :mod:`bm_upgrade.remote.connect` are faster (``bench/bench_upload.py`` prints both
against ``scp``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import posixpath
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import paramiko

from bm_upgrade.errors import TransferFailed, TransferInterrupted
from bm_upgrade.remote.quoting import Command, Ran, quote
from bm_upgrade.remote.watchdog import Watchdog

log = logging.getLogger(__name__)

REQUEST_SIZE = 252 * 1024
"""Bytes per SFTP write request (sftp-server's limit is 256 KiB including the header)."""

_READ_SIZE = 4 * REQUEST_SIZE


class SftpHost(Protocol):
    """What a transfer needs of a connection to one host."""

    @property
    def host(self) -> str: ...

    def run(self, command: Command, timeout: float | None = None, check: bool = True) -> Ran: ...

    def sftp(self) -> paramiko.SFTPClient: ...


@dataclass(frozen=True)
class UploadResult:
    """What :func:`upload` did on one host."""

    host: str
    path: str
    action: Literal["skipped", "uploaded", "resumed"]
    bytes_sent: int
    seconds: float
    sha256: str
    attempts: int = 1
    """Connections the upload took (more than one: it was resumed after a drop)."""


def file_sha256(path: Path, limit: int | None = None) -> str:
    """sha256 of a local file, or of its first ``limit`` bytes."""
    digest = hashlib.sha256()
    left = limit
    with path.open("rb") as fh:
        while left is None or left > 0:
            chunk = fh.read(1 << 20 if left is None else min(1 << 20, left))
            if not chunk:
                break
            digest.update(chunk)
            if left is not None:
                left -= len(chunk)
    return digest.hexdigest()


def remote_sha256(
    conn: SftpHost, path: str, *, rename_to: tuple[str, str] | None = None
) -> str | None:
    """sha256 of ``path`` on the host (None: no such file); with ``rename_to`` = (expected,
    destination), the file is also renamed there in the same command when its sum is the
    expected one."""
    # openssl uses the CPU's SHA instructions, which coreutils' sha256sum does not (several
    # times faster on a kit-sized file); sha256sum is the fallback on hosts without openssl.
    src = quote(path)
    script = (
        f"test -f {src} || exit 3; if command -v openssl >/dev/null 2>&1; then "
        f"sum=$(openssl dgst -sha256 -r < {src}); else sum=$(sha256sum < {src}); fi "
        f'|| exit 4; sum=${{sum%% *}}; echo "$sum"'
    )
    if rename_to is not None:
        expected, destination = rename_to
        script += (
            f'; if [ "$sum" = {quote(expected)} ]; then mv -f -- {src} {quote(destination)}; fi'
        )
    result = conn.run(script, check=False)
    if result.exit_code == 3:
        return None
    words = result.stdout.split()
    if result.exit_code != 0 or (rename_to is not None and not words):
        what, need = (
            ("checksum", "the file is readable")
            if rename_to is None
            else ("checksum or rename", "the folder is writable")
        )
        raise TransferFailed(
            conn.host,
            f"cannot {what} {path} on {conn.host} (exit "
            f"{result.exit_code}: {result.stderr.strip()}); check that "
            f"openssl or sha256sum exists and {need}",
        )
    return words[0] if words else None


def _remote_size(sftp: paramiko.SFTPClient, path: str) -> int | None:
    try:
        size = sftp.stat(path).st_size
    except FileNotFoundError:
        return None
    return size


def _send(
    sftp: paramiko.SFTPClient, local: Path, part: str, offset: int, watchdog: Watchdog | None = None
) -> int:
    sent = 0
    with sftp.open(part, "r+b" if offset else "wb") as remote, local.open("rb") as src:
        remote.MAX_REQUEST_SIZE = REQUEST_SIZE
        remote.set_pipelined(True)
        remote.seek(offset)
        src.seek(offset)
        while chunk := src.read(_READ_SIZE):
            remote.write(chunk)
            sent += len(chunk)
            if watchdog is not None:
                watchdog.progress()
    return sent


class _Sftp:
    """The connection's SFTP session with every operation under a stall limit."""

    def __init__(self, conn: SftpHost, local: Path, stall_s: float) -> None:
        self.conn = conn
        self.local = local
        self.stall_s = stall_s
        self.session = conn.sftp()

    @contextlib.contextmanager
    def guarded(self, path: str) -> Iterator[Watchdog]:
        """A block of SFTP work on ``path``: a stall or a broken session -> TransferFailed."""
        transport = self.session.get_channel().get_transport()  # type: ignore[union-attr]
        host = self.conn.host
        with Watchdog(self.stall_s, transport.close) as watchdog:
            try:
                yield watchdog
            except (OSError, paramiko.SSHException, EOFError) as exc:
                if watchdog.fired:
                    raise TransferFailed(
                        host,
                        f"uploading {self.local} to {host}:{path} "
                        f"stalled: nothing moved for {self.stall_s:g} s, so "
                        "the connection was closed; check the host and the "
                        "network, then rerun to resume from where it "
                        "stopped",
                    ) from exc
                raise TransferInterrupted(
                    host,
                    f"uploading {self.local} to {host}:{path} failed "
                    f"({exc}); rerun to resume from where it stopped",
                ) from exc

    def size(self, path: str) -> int | None:
        with self.guarded(path):
            return _remote_size(self.session, path)


def upload(
    conn: SftpHost, local: Path, remote: str, sha256: str | None = None, *, stall_s: float
) -> UploadResult:
    """Put ``local`` at ``remote`` on the connection's host (creating its folder).

    Args:
        sha256: the expected checksum (default: the local file's).
        stall_s: seconds an SFTP operation may go without progress.

    Raises:
        TransferFailed: the transfer broke or stalled, or the host's copy does not match
            ``sha256``.
    """
    started = time.monotonic()
    expected = (sha256 or file_sha256(local)).lower()
    size = local.stat().st_size
    sftp = _Sftp(conn, local, stall_s)
    folder = posixpath.dirname(remote) or "."
    with sftp.guarded(remote):
        try:
            sftp.session.stat(folder)
            missing = False
        except FileNotFoundError:
            missing = True
    if missing:
        conn.run(["mkdir", "-p", "--", folder])
    if sftp.size(remote) == size and remote_sha256(conn, remote) == expected:
        log.info("%s: %s already there (sha256 matches); skipped", conn.host, remote)
        return UploadResult(conn.host, remote, "skipped", 0, time.monotonic() - started, expected)

    part = remote + ".part"
    offset = 0
    part_size = sftp.size(part)
    if (
        part_size
        and part_size <= size
        and (remote_sha256(conn, part) == file_sha256(local, limit=part_size))
    ):
        offset = part_size
        log.info("%s: resuming %s at byte %d of %d", conn.host, remote, offset, size)
    with sftp.guarded(part) as watchdog:
        sent = _send(sftp.session, local, part, offset, watchdog)
    got = remote_sha256(conn, part, rename_to=(expected, remote))
    if got != expected:
        conn.run(["rm", "-f", "--", part], check=False)
        raise TransferFailed(
            conn.host,
            f"{remote} on {conn.host} has sha256 {got}, expected "
            f"{expected}; the copy was removed. Check that {local} is the "
            "right file (fetch the kit again) and rerun",
        )
    seconds = time.monotonic() - started
    log.info("%s: uploaded %s (%d bytes in %.1f s)", conn.host, remote, sent, seconds)
    return UploadResult(
        conn.host, remote, "resumed" if offset else "uploaded", sent, seconds, expected
    )
