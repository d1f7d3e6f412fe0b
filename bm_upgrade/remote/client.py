"""A connection to one host: opened lazily, reused for every command, closed once.

Lower-level errors are translated here, most specific first::

    socket.gaierror                     -> HostUnreachable (not retried: fix the host name)
    OSError, paramiko.SSHException      -> HostUnreachable (retried with backoff)
    unknown / changed host key          -> HostKeyRejected (not retried)
    every key refused, key unreadable   -> AuthenticationFailed (not retried)
    non-zero exit (check=True)          -> CommandFailed
    no exit within the timeout          -> CommandTimeout

A command runs under ``timeout`` on the host (:func:`~bm_upgrade.remote.quoting.timed`), so
one that overstays its limit is killed there, not merely abandoned by the client.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import paramiko

from bm_upgrade.errors import (
    AuthenticationFailed,
    CommandFailed,
    CommandTimeout,
    HostUnreachable,
    RemoteError,
)
from bm_upgrade.inventory import SshSettings
from bm_upgrade.remote.auth import candidate_keys
from bm_upgrade.remote.hostkeys import HostKeyChecker
from bm_upgrade.remote.quoting import (
    KILL_GRACE_S,
    Command,
    command_line,
    detached,
    printed_pid,
    timed,
)
from bm_upgrade.remote.transfer import UploadResult, upload
from bm_upgrade.remote.watchdog import Watchdog

log = logging.getLogger(__name__)

# AES-GCM first: authenticated encryption in one pass is the fastest cipher paramiko offers
# (bench/bench_upload.py compares these uploads with paramiko's defaults: aes128-ctr + HMAC).
_PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
    "aes192-ctr",
)
_READ_CHUNK = 65536
# Exit statuses of a command that ``timeout`` ended: 124 (SIGTERM), 137 (SIGKILL after the
# grace), -1 (``timeout`` itself killed by the group's SIGKILL: an exit signal, no status).
_TIMED_OUT = frozenset({124, 137, -1})
# How long past the limit and the kill grace the client waits for the host to report the
# kill before it gives up on the host (stopped, link gone).
_REPORT_MARGIN_S = 2.0


@dataclass(frozen=True)
class CommandResult:
    """What a remote command returned."""

    host: str
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class _Unreachable(HostUnreachable):
    """A connection attempt failed in a way worth retrying."""


class Connection:
    """One SSH connection to one host, opened on first use and reused across steps.

    Args:
        host: address or name of the host.
        settings: the inventory's SSH settings.
        retries: connection attempts before giving up on a transient error.
        backoff_s: first pause between attempts; doubles after each.
    """

    def __init__(
        self, host: str, settings: SshSettings, *, retries: int = 3, backoff_s: float = 0.5
    ) -> None:
        self.host = host
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

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Connection({self.settings.user}@{self.host}:{self.settings.port})"

    @property
    def transport(self) -> paramiko.Transport:
        """The open transport, connecting (with retries) when there is none or it died."""
        with self._lock:
            if self._transport is None or not self._transport.is_active():
                self._close_locked()
                self._transport = self._connect_with_retries()
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
    def _connect_with_retries(self) -> paramiko.Transport:
        delay = self.backoff_s
        for attempt in range(1, self.retries + 1):
            try:
                return self._connect_once()
            except _Unreachable as exc:
                if attempt == self.retries:
                    raise HostUnreachable(
                        self.host,
                        f"{exc} (gave up after {attempt} attempt(s)); check that "
                        f"{self.host} is up and its sshd listens on port {self.settings.port}",
                    ) from exc
                log.info("%s: %s; retrying in %.2f s", self.host, exc, delay)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _open_socket(self) -> socket.socket | paramiko.Channel:
        timeout = self.settings.connect_timeout_s
        port = self.settings.port
        jump = self.settings.jump_host
        if jump is not None:
            self._jump = Connection(jump.host, jump_settings(self.settings), retries=1)
            try:
                return self._jump.transport.open_channel(
                    "direct-tcpip", (self.host, port), ("127.0.0.1", 0), timeout=timeout
                )
            except (paramiko.ChannelException, paramiko.SSHException, OSError) as exc:
                raise _Unreachable(
                    self.host,
                    f"cannot reach {self.host}:{port} through jump host {jump.host} ({exc})",
                ) from exc
        try:
            sock = socket.create_connection((self.host, port), timeout=timeout)
        except socket.gaierror as exc:
            raise HostUnreachable(
                self.host,
                f"cannot resolve host name {self.host!r} "
                f"({exc.strerror}); fix the host in the inventory",
            ) from None
        except TimeoutError as exc:
            raise _Unreachable(
                self.host, f"connecting to {self.host}:{port} timed out after {timeout:g} s"
            ) from exc
        except OSError as exc:
            raise _Unreachable(
                self.host, f"cannot connect to {self.host}:{port} ({exc.strerror or exc})"
            ) from exc
        # Without TCP_NODELAY every channel open waits on Nagle + the peer's delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _handshake(self) -> paramiko.Transport:
        """A transport to the host past the key exchange (host key not yet checked)."""
        sock = self._open_socket()
        transport = paramiko.Transport(sock)
        # The connect timeout bounds every phase of logging in, not only the TCP connect.
        transport.banner_timeout = self.settings.connect_timeout_s
        transport.auth_timeout = self.settings.connect_timeout_s
        try:
            options = transport.get_security_options()
            offered = [c for c in _PREFERRED_CIPHERS if c in options.ciphers]
            options.ciphers = tuple(offered + [c for c in options.ciphers if c not in offered])
            # Ask for a key type known_hosts records for the host, as OpenSSH does: a host
            # that holds several keys then shows the recorded one.
            known = [
                k
                for k in self._hostkeys.preferred_key_types(self.host, self.settings.port)
                if k in options.key_types
            ]
            if known:
                options.key_types = tuple(known + [k for k in options.key_types if k not in known])
            try:
                transport.start_client(timeout=self.settings.connect_timeout_s)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise _Unreachable(
                    self.host, f"SSH handshake with {self.host} failed ({exc})"
                ) from exc
        except BaseException:
            transport.close()
            sock.close()  # a transport that never started leaves its socket open
            raise
        return transport

    def offered_host_key(self) -> paramiko.PKey:
        """The key the host shows, neither checked nor followed by a login (what
        ``ssh-keyscan`` does); through the jump host, checked and logged in as usual, when
        the inventory sets one. For ``bm-upgrade trust-hosts``."""
        try:
            transport = self._handshake()
        except _Unreachable as exc:
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

    def _connect_once(self) -> paramiko.Transport:
        transport = self._handshake()
        try:
            self._hostkeys.check(self.host, self.settings.port, transport.get_remote_server_key())
            self._authenticate(transport)
            if self.settings.keepalive_s:
                transport.set_keepalive(int(max(1, self.settings.keepalive_s)))
        except BaseException:
            transport.close()
            raise
        log.debug("connected to %s@%s:%s", self.settings.user, self.host, self.settings.port)
        return transport

    def _authenticate(self, transport: paramiko.Transport) -> None:
        user = self.settings.user
        keys, agent = candidate_keys(self.settings, self.host)
        try:
            if not keys:
                raise AuthenticationFailed(
                    self.host,
                    f"no key to log in to {self.host} with: set ssh.key_file, or "
                    "load a key into the SSH agent (ssh-add) with ssh.use_agent: true",
                )
            for key in keys:
                try:
                    transport.auth_publickey(user, key)
                except paramiko.AuthenticationException:
                    continue
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise _Unreachable(
                        self.host, f"connection to {self.host} dropped while logging in ({exc})"
                    ) from exc
                if transport.is_authenticated():
                    return
        finally:
            if agent is not None:
                agent.close()
        source = (
            f"ssh.key_file {self.settings.key_file}"
            if self.settings.key_file
            else ("the SSH agent's keys")
        )
        raise AuthenticationFailed(
            self.host,
            f"{user}@{self.host} refused {len(keys)} key(s) from {source}; check "
            f"ssh.user and that the matching public key is in ~{user}/.ssh/authorized_keys "
            f"on {self.host}",
        )

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
        chan = self._open_session()
        started = time.monotonic()
        # The host kills the command at ``limit`` (SIGKILL after the grace); the client waits
        # for that report a little longer, and the watchdog also bounds exec_command's wait
        # for the host's answer, which paramiko does not.
        wait_s = limit + KILL_GRACE_S + _REPORT_MARGIN_S
        with Watchdog(wait_s, chan.close) as watchdog:
            try:
                chan.exec_command(timed(line, limit))
                exit_code, out, err = self._collect(chan, line, limit, started + wait_s)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if watchdog.fired:
                    raise CommandTimeout(self.host, line, limit) from exc
                raise HostUnreachable(
                    self.host, f"connection to {self.host} failed while running {line} ({exc})"
                ) from exc
            finally:
                chan.close()
        if exit_code in _TIMED_OUT and time.monotonic() - started >= limit:
            raise CommandTimeout(self.host, line, limit)
        result = CommandResult(
            self.host,
            line,
            exit_code,
            out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"),
        )
        if check and exit_code != 0:
            raise CommandFailed(self.host, line, exit_code, result.stdout, result.stderr)
        return result

    def _collect(
        self, chan: paramiko.Channel, line: str, limit: float, deadline: float
    ) -> tuple[int, bytes, bytes]:
        out, err = bytearray(), bytearray()
        while True:
            if chan.recv_ready():
                out += chan.recv(_READ_CHUNK)
                continue
            if chan.recv_stderr_ready():
                err += chan.recv_stderr(_READ_CHUNK)
                continue
            if (chan.eof_received or chan.closed) and chan.exit_status_ready():
                # Closed without an exit status (killed by a signal): paramiko reports -1.
                return chan.recv_exit_status(), bytes(out), bytes(err)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CommandTimeout(self.host, line, limit)
            if chan.eof_received or chan.closed:
                # Output is complete; only the exit status is still on its way.
                chan.status_event.wait(min(remaining, 0.05))
            else:
                select.select([chan], [], [], min(remaining, 1.0))

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
        ``ssh.command_timeout_s``.
        """
        stall = self.settings.command_timeout_s if stall_s is None else stall_s
        return upload(self, Path(local), remote, sha256, stall_s=stall)


def jump_settings(settings: SshSettings) -> SshSettings:
    """The settings that reach the inventory's jump host itself (its port and user)."""
    jump = settings.jump_host
    if jump is None:
        raise ValueError("no jump host is set")
    return settings.model_copy(
        update={"jump_host": None, "port": jump.port, "user": jump.user or settings.user}
    )
