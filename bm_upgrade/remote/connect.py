"""Opening an SSH transport to one host: the socket (direct, or a channel through the jump
host), the handshake, the host key check and the login, retried with backoff.

Lower-level errors are translated here, most specific first::

    socket.gaierror                     -> HostUnreachable (not retried: fix the host name)
    OSError, paramiko.SSHException      -> Unreachable, a HostUnreachable (retried with backoff)
    unknown / changed host key          -> HostKeyRejected (from the checker; not retried)
    every key refused, key unreadable   -> AuthenticationFailed (not retried)
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import paramiko

from bm_upgrade.errors import AuthenticationFailed, HostUnreachable
from bm_upgrade.inventory import SshSettings
from bm_upgrade.remote.auth import candidate_keys
from bm_upgrade.remote.hostkeys import HostKeyChecker

log = logging.getLogger(__name__)

# AES-GCM first: authenticated encryption in one pass is the fastest cipher paramiko offers
# (bench/bench_upload.py compares these uploads with paramiko's defaults: aes128-ctr + HMAC).
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
    "aes192-ctr",
)

JumpOpener = Callable[[], paramiko.Transport]
"""Opens (or reuses) the connection to the jump host and returns its transport."""


class Unreachable(HostUnreachable):
    """A connection attempt failed in a way worth retrying."""


def connect_with_retries(
    host: str,
    settings: SshSettings,
    hostkeys: HostKeyChecker,
    jump: JumpOpener | None,
    *,
    retries: int,
    backoff_s: float,
) -> paramiko.Transport:
    """A logged-in transport to ``host``; a retryable failure is tried ``retries`` times in
    all, the pause doubling from ``backoff_s``.

    Raises:
        HostUnreachable: the host cannot be reached (after the retries, when worth retrying).
        HostKeyRejected, AuthenticationFailed, KnownHostsError: not retried.
    """
    delay = backoff_s
    for attempt in range(1, retries + 1):
        try:
            return _connect_once(host, settings, hostkeys, jump)
        except Unreachable as exc:
            if attempt == retries:
                raise HostUnreachable(
                    host,
                    f"{exc} (gave up after {attempt} attempt(s)); check that "
                    f"{host} is up and its sshd listens on port {settings.port}",
                ) from exc
            log.info("%s: %s; retrying in %.2f s", host, exc, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def _open_socket(
    host: str, settings: SshSettings, jump: JumpOpener | None
) -> socket.socket | paramiko.Channel:
    timeout = settings.connect_timeout_s
    port = settings.port
    if settings.jump_host is not None and jump is not None:
        try:
            return jump().open_channel(
                "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout
            )
        except (paramiko.ChannelException, paramiko.SSHException, OSError) as exc:
            raise Unreachable(
                host,
                f"cannot reach {host}:{port} through jump host {settings.jump_host.host} ({exc})",
            ) from exc
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise HostUnreachable(
            host,
            f"cannot resolve host name {host!r} ({exc.strerror}); fix the host in the inventory",
        ) from None
    except TimeoutError as exc:
        raise Unreachable(
            host, f"connecting to {host}:{port} timed out after {timeout:g} s"
        ) from exc
    except OSError as exc:
        raise Unreachable(host, f"cannot connect to {host}:{port} ({exc.strerror or exc})") from exc
    # Without TCP_NODELAY every channel open waits on Nagle + the peer's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def handshake(
    host: str, settings: SshSettings, hostkeys: HostKeyChecker, jump: JumpOpener | None
) -> paramiko.Transport:
    """A transport to the host past the key exchange (host key not yet checked).

    Raises:
        Unreachable: the host does not answer, or the handshake fails.
    """
    sock = _open_socket(host, settings, jump)
    transport = paramiko.Transport(sock)
    # The connect timeout bounds every phase of logging in, not only the TCP connect.
    transport.banner_timeout = settings.connect_timeout_s
    transport.auth_timeout = settings.connect_timeout_s
    try:
        options = transport.get_security_options()
        offered = [c for c in PREFERRED_CIPHERS if c in options.ciphers]
        options.ciphers = tuple(offered + [c for c in options.ciphers if c not in offered])
        # Ask for a key type known_hosts records for the host, as OpenSSH does: a host
        # that holds several keys then shows the recorded one.
        known = [
            k for k in hostkeys.preferred_key_types(host, settings.port) if k in options.key_types
        ]
        if known:
            options.key_types = tuple(known + [k for k in options.key_types if k not in known])
        try:
            transport.start_client(timeout=settings.connect_timeout_s)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise Unreachable(host, f"SSH handshake with {host} failed ({exc})") from exc
    except BaseException:
        transport.close()
        sock.close()  # a transport that never started leaves its socket open
        raise
    return transport


def _connect_once(
    host: str, settings: SshSettings, hostkeys: HostKeyChecker, jump: JumpOpener | None
) -> paramiko.Transport:
    transport = handshake(host, settings, hostkeys, jump)
    try:
        hostkeys.check(host, settings.port, transport.get_remote_server_key())
        _authenticate(transport, host, settings)
        if settings.keepalive_s:
            transport.set_keepalive(int(max(1, settings.keepalive_s)))
    except BaseException:
        transport.close()
        raise
    log.debug("connected to %s@%s:%s", settings.user, host, settings.port)
    return transport


def _authenticate(transport: paramiko.Transport, host: str, settings: SshSettings) -> None:
    user = settings.user
    keys, agent = candidate_keys(settings, host)
    try:
        if not keys:
            raise AuthenticationFailed(
                host,
                f"no key to log in to {host} with: set ssh.key_file, or "
                "load a key into the SSH agent (ssh-add) with ssh.use_agent: true",
            )
        for key in keys:
            try:
                transport.auth_publickey(user, key)
            except paramiko.AuthenticationException:
                continue
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise Unreachable(
                    host, f"connection to {host} dropped while logging in ({exc})"
                ) from exc
            if transport.is_authenticated():
                return
    finally:
        if agent is not None:
            agent.close()
    source = f"ssh.key_file {settings.key_file}" if settings.key_file else "the SSH agent's keys"
    raise AuthenticationFailed(
        host,
        f"{user}@{host} refused {len(keys)} key(s) from {source}; check "
        f"ssh.user and that the matching public key is in ~{user}/.ssh/authorized_keys "
        f"on {host}",
    )
