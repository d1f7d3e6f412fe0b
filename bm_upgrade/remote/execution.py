"""One command on an open session channel: run under ``timeout`` on the host, its output
collected, its exit status read, and the ways it can fail translated::

    no exit within the timeout          -> CommandTimeout
    the connection fails meanwhile      -> HostUnreachable

A command runs under coreutils ``timeout`` on the host (:func:`~bm_upgrade.remote.quoting.timed`),
so one that overstays its limit is killed there, not merely abandoned by the client.
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass

import paramiko

from bm_upgrade.errors import CommandTimeout, HostUnreachable
from bm_upgrade.remote.quoting import KILL_GRACE_S, timed
from bm_upgrade.remote.watchdog import Watchdog

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


def execute(
    chan: paramiko.Channel, host: str, line: str, limit: float, stdin: str | None = None
) -> CommandResult:
    """Run ``line`` on ``chan`` (a fresh session, closed here) within ``limit`` seconds;
    ``stdin`` (a secret the line reads, never logged) is written to it and closed.

    Raises:
        CommandTimeout: no exit within the limit.
        HostUnreachable: the connection failed while the command ran.
    """
    started = time.monotonic()
    # The host kills the command at ``limit`` (SIGKILL after the grace); the client waits
    # for that report a little longer, and the watchdog also bounds exec_command's wait
    # for the host's answer, which paramiko does not.
    wait_s = limit + KILL_GRACE_S + _REPORT_MARGIN_S
    with Watchdog(wait_s, chan.close) as watchdog:
        try:
            chan.exec_command(timed(line, limit))
            if stdin is not None:
                chan.sendall(stdin.encode("utf-8"))
            # No command reads more: an end of input, not a wait for it.
            chan.shutdown_write()
            exit_code, out, err = _collect(chan, host, line, limit, started + wait_s)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if watchdog.fired:
                raise CommandTimeout(host, line, limit) from exc
            raise HostUnreachable(
                host, f"connection to {host} failed while running {line} ({exc})"
            ) from exc
        finally:
            chan.close()
    if exit_code in _TIMED_OUT and time.monotonic() - started >= limit:
        raise CommandTimeout(host, line, limit)
    return CommandResult(
        host, line, exit_code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    )


def _collect(
    chan: paramiko.Channel, host: str, line: str, limit: float, deadline: float
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
            raise CommandTimeout(host, line, limit)
        if chan.eof_received or chan.closed:
            # Output is complete; only the exit status is still on its way.
            chan.status_event.wait(min(remaining, 0.05))
        else:
            select.select([chan], [], [], min(remaining, 1.0))
