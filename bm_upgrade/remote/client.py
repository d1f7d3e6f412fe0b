"""A connection to one host: opened lazily, reused for every command, closed once.

Opening it (socket, jump host, handshake, host key, login, retries) is
:mod:`~bm_upgrade.remote.connect`; one command on a session is
:mod:`~bm_upgrade.remote.execution`; uploads are :mod:`~bm_upgrade.remote.transfer`. Lower-level
errors are translated there, most specific first::

    socket.gaierror                     -> HostUnreachable (not retried: fix the host name)
    OSError, paramiko.SSHException      -> HostUnreachable (retried with backoff)
    unknown / changed host key          -> HostKeyRejected (not retried)
    every key refused, key unreadable   -> AuthenticationFailed (not retried)
    non-zero exit (check=True)          -> CommandFailed (here)
    no exit within the timeout          -> CommandTimeout

A command runs under ``timeout`` on the host (:func:`~bm_upgrade.remote.quoting.timed`), so
one that overstays its limit is killed there, not merely abandoned by the client.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path

import paramiko

from bm_upgrade.errors import CommandFailed, HostUnreachable, RemoteError, TransferInterrupted
from bm_upgrade.inventory import SshSettings
from bm_upgrade.remote.commands import CommandLog
from bm_upgrade.remote.connect import JumpOpener, Unreachable, connect_with_retries, handshake
from bm_upgrade.remote.execution import CommandResult, execute
from bm_upgrade.remote.hostkeys import HostKeyChecker
from bm_upgrade.remote.quoting import Command, WithInput, command_line, detached, printed_pid
from bm_upgrade.remote.transfer import UploadResult, upload
from bm_upgrade.remote.watchdog import Watchdog

log = logging.getLogger(__name__)


class Connection:
    """One SSH connection to one host, opened on first use and reused across steps.

    Args:
        host: address or name of the host.
        settings: the inventory's SSH settings.
        retries: connection attempts before giving up on a transient error.
        backoff_s: first pause between attempts; doubles after each.
        commands: where each command run and each upload is recorded (the pool's, for the
            evidence report); None: nowhere.
    """

    def __init__(
        self,
        host: str,
        settings: SshSettings,
        *,
        retries: int = 3,
        backoff_s: float = 0.5,
        commands: CommandLog | None = None,
    ) -> None:
        self.host = host
        self.commands = commands
        self.settings = settings
        self.retries = max(1, retries)
        self.backoff_s = backoff_s
        self._lock = threading.Lock()
        self._transport: paramiko.Transport | None = None
        self._jump: Connection | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._hostkeys = HostKeyChecker(settings.known_hosts, settings.accept_unknown_host_keys)

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Connection({self.settings.user}@{self.host}:{self.settings.port})"

    @property
    def transport(self) -> paramiko.Transport:
        """The open transport, connecting (with retries) when there is none or it died."""
        with self._lock:
            if self._transport is None or not self._transport.is_active():
                self._close_locked()
                self._transport = connect_with_retries(
                    self.host,
                    self.settings,
                    self._hostkeys,
                    self._jump_opener(),
                    retries=self.retries,
                    backoff_s=self.backoff_s,
                )
            return self._transport

    def open(self) -> Connection:
        """Connect now rather than on first use (to fail early); returns self."""
        _ = self.transport
        return self

    def close(self) -> None:
        """Close the SFTP session, the connection and any jump-host connection."""
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._jump is not None:
            self._jump.close()
            self._jump = None

    # -- connecting -----------------------------------------------------------------------
    def _jump_opener(self) -> JumpOpener | None:
        """What opens a new connection to the jump host (closed with this one), if one is set."""
        jump = self.settings.jump_host
        if jump is None:
            return None

        def open_jump() -> paramiko.Transport:
            self._jump = Connection(jump.host, jump_settings(self.settings), retries=1)
            return self._jump.transport

        return open_jump

    def offered_host_key(self) -> paramiko.PKey:
        """The key the host shows, neither checked nor followed by a login (what
        ``ssh-keyscan`` does); through the jump host, checked and logged in as usual, when
        the inventory sets one. For ``bm-upgrade trust-hosts``."""
        try:
            transport = handshake(self.host, self.settings, self._hostkeys, self._jump_opener())
        except Unreachable as exc:
            raise HostUnreachable(
                self.host,
                f"{exc}; check that {self.host} is up and its "
                f"sshd listens on port {self.settings.port}",
            ) from exc
        try:
            return transport.get_remote_server_key()
        finally:
            transport.close()
            self.close()

    # -- commands -------------------------------------------------------------------------
    def _open_session(self) -> paramiko.Channel:
        try:
            return self.transport.open_session(timeout=self.settings.connect_timeout_s)
        except (paramiko.SSHException, EOFError, OSError):
            # The connection died between steps (idle cut, host restarted): reconnect once.
            # Nothing ran yet, so this is safe.
            self.close()
            try:
                return self.transport.open_session(timeout=self.settings.connect_timeout_s)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise HostUnreachable(
                    self.host,
                    f"cannot open a session on {self.host} ({exc}); check the host and its sshd",
                ) from exc

    def run(
        self, command: Command, timeout: float | None = None, check: bool = True
    ) -> CommandResult:
        """Run a command and wait for it.

        Args:
            command: an argv list (each element quoted) or a command line built with
                :mod:`bm_upgrade.remote.quoting`.
            timeout: seconds until :class:`CommandTimeout` (default ``ssh.command_timeout_s``).
            check: raise :class:`CommandFailed` on a non-zero exit.
        """
        line = command_line(command)
        limit = self.settings.command_timeout_s if timeout is None else timeout
        log.debug("%s$ %s", self.host, line)
        stdin = command.stdin if isinstance(command, WithInput) else None
        exit_code: int | None = None
        try:
            result = execute(self._open_session(), self.host, line, limit, stdin)
            exit_code = result.exit_code
        finally:
            if self.commands is not None:  # the line only: a secret goes on stdin
                self.commands.add(self.host, line, exit_code)
        if check and not result.ok:
            raise CommandFailed(self.host, line, result.exit_code, result.stdout, result.stderr)
        return result

    def start_detached(
        self, argv: list[str], log_path: str, cwd: str | None = None, timeout: float | None = None
    ) -> int:
        """Start a foreground program so it outlives this connection; returns its pid.

        Its stdout and stderr are appended to ``log_path`` (whose folder must exist).
        """
        result = self.run(detached(argv, log_path, cwd), timeout=timeout)
        pid = printed_pid(result.stdout)
        if pid is None:
            raise CommandFailed(
                self.host,
                result.command,
                result.exit_code,
                result.stdout,
                f"expected a pid on stdout, got {result.stdout!r}",
            )
        return pid

    # -- files ----------------------------------------------------------------------------
    def sftp(self) -> paramiko.SFTPClient:
        """The connection's SFTP session (opened once)."""
        transport = self.transport
        with self._lock:
            if self._sftp is None or self._sftp.sock.closed:
                self._sftp = self._start_sftp(transport)
            return self._sftp

    def _start_sftp(self, transport: paramiko.Transport) -> paramiko.SFTPClient:
        limit = self.settings.connect_timeout_s
        try:
            chan = transport.open_session(timeout=limit)
            # invoke_subsystem waits for the answer without a bound; the first SFTP exchange
            # reads through the channel, whose timeout bounds it.
            with Watchdog(limit, chan.close):
                chan.settimeout(limit)
                chan.invoke_subsystem("sftp")
                client = paramiko.SFTPClient(chan)
            chan.settimeout(None)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            why = str(exc) or f"no answer within {limit:g} s"
            raise RemoteError(
                self.host,
                f"cannot start SFTP on {self.host} ({why}); check "
                "that sshd's sftp subsystem is enabled",
            ) from exc
        return client

    def upload(
        self,
        local: str | Path,
        remote: str,
        sha256: str | None = None,
        stall_s: float | None = None,
    ) -> UploadResult:
        """Upload a file, skipping an identical one and resuming a partial one.

        See :func:`bm_upgrade.remote.transfer.upload`; ``stall_s`` defaults to
        ``ssh.command_timeout_s``. A connection that breaks mid-upload is opened again and the
        upload resumed from its partial file, up to ``retries`` connections in all.
        """
        stall = self.settings.command_timeout_s if stall_s is None else stall_s
        done: UploadResult | None = None
        try:
            done = self._upload(Path(local), remote, sha256, stall)
            return done
        finally:
            if self.commands is not None:  # an upload is evidence too: what went where
                line = f"sftp put {Path(local).name} {remote}"
                self.commands.add(self.host, line, 0 if done is not None else None)

    def _upload(self, local: Path, remote: str, sha256: str | None, stall: float) -> UploadResult:
        for attempt in range(1, self.retries + 1):
            try:
                result = upload(self, local, remote, sha256, stall_s=stall)
            except TransferInterrupted as exc:
                if attempt == self.retries:
                    raise
                # The connection broke (not a stall: a frozen host would stall again): a new
                # one resumes from the .part file, whose bytes are checked first.
                log.warning(
                    "%s: %s; reconnecting to resume (attempt %d of %d)",
                    self.host,
                    exc,
                    attempt + 1,
                    self.retries,
                )
                self.close()
                continue
            return dataclasses.replace(result, attempts=attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")


def jump_settings(settings: SshSettings) -> SshSettings:
    """The settings that reach the inventory's jump host itself (its port and user)."""
    jump = settings.jump_host
    if jump is None:
        raise ValueError("no jump host is set")
    return settings.model_copy(
        update={"jump_host": None, "port": jump.port, "user": jump.user or settings.user}
    )
