"""Code shared by every program of the kit and by the sandbox that builds it.

Stdlib only: the kit's programs run with the system python3 and cannot import bm_upgrade.
The same file is shipped in ``server/lib/`` and inside the client "jars", and the sandbox's
own modules (journal, protocol, clientapp, kits) import it, so each rule is written once:

- the journal line format (one O_APPEND write per line),
- the wire protocol (newline-delimited JSON over TCP) on the tsa-port and tsa-group-port,
- finding ``sandbox.json`` from a path inside the sandbox,
- reading the sandbox's faults (``DIR/faults/<kind>@<target>.json``).

The license key format is in ``tckey.py``, tc-config.xml in ``tcconfigxml.py``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar

if TYPE_CHECKING:
    import ssl
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

T = TypeVar("T")

EXIT_STARTUP = 2
"""A kit program's exit code when it cannot start (configuration, license, port, version)."""


class StartupError(Exception):
    """A server or orchestrator cannot start; the message is its FATAL log line."""


class Booting(Protocol):
    """A server or orchestrator process as it starts."""

    name: str
    version: str
    start_s: float
    stopping: threading.Event

    @property
    def sandbox(self) -> dict[str, Any] | None: ...


def boot(node: Booting, crashed: str) -> None:
    """What a JVM takes to boot, before it checks its license and binds its ports; with the
    sandbox fault crash-on-start on its version or name, the start ends with ``crashed``."""
    node.stopping.wait(boot_time_left(node.start_s))
    if fault(node.sandbox, "crash-on-start", node.version, node.name):
        raise StartupError(f"{crashed} (sandbox fault crash-on-start)")


def bind_http(serve: Callable[[], T], host: str, port: int, kind: str) -> T:
    """``serve()``, the start of a node's HTTP port; a port taken ends the start."""
    try:
        return serve()
    except OSError as exc:
        raise StartupError(
            f"Cannot bind {host}:{port}: {exc.strerror}; is another {kind} using that port?"
        ) from None


# ---------------------------------------------------------------- versions


def boot_time_left(start_s: float) -> float:
    """What is left of a boot of ``start_s`` seconds, counted from this process's exec.

    ``start_s`` (the topology's timing) stands for the JVM's boot; the interpreter's own
    start-up and imports are part of it, not added to it, so a server or
    orchestrator reaches its first state ``start_s`` after its launch (or as soon as it can,
    when ``start_s`` is shorter than the start-up). Linux: /proc/self/stat field 22 is the
    process's start in clock ticks since boot.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        booted_for = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError):
        return start_s
    return max(0.0, start_s - max(0.0, booted_for))


def serve_http(
    handler: type[BaseHTTPRequestHandler], host: str, port: int, tls: ssl.SSLContext | None = None
) -> ThreadingHTTPServer:
    """Serve ``handler`` on ``host:port`` from a daemon thread (raises OSError if taken);
    over TLS with ``tls`` (each connection's handshake runs in its own thread)."""
    from http.server import ThreadingHTTPServer  # only the programs that serve pay for it

    httpd = ThreadingHTTPServer((host, port), handler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()
    return httpd


def major_minor(version: str) -> str:
    """``"4.2.1.4"`` -> ``"4.2"``."""
    return ".".join(version.split(".")[:2])


def read_properties(path: Path) -> dict[str, str]:
    """Read a ``key=value`` properties file (``#`` comments); missing file -> ``{}``."""
    props: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return props
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


# ---------------------------------------------------------------- journal


def journal_append(journal: str | os.PathLike[str] | None, event: str, **fields: Any) -> None:
    """Append one event to the journal as one JSON line, in one O_APPEND write.

    Many processes write the same journal; a single ``write`` of a line opened with
    O_APPEND keeps lines whole. ``journal`` None (no sandbox found) writes nothing.
    """
    if not journal:
        return
    record: dict[str, Any] = {"t": time.time(), "event": event}
    record.update(fields)
    append_line(journal, record)


def append_line(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON line to a file in one O_APPEND write (journal, ledgers)."""
    line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode("utf-8")
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def find_sandbox(start: Path) -> dict[str, Any] | None:
    """Walk up from ``start`` to the first ``sandbox.json``; return it parsed, or None."""
    for folder in [start, *start.parents]:
        candidate = folder / "sandbox.json"
        if candidate.is_file():
            try:
                data: dict[str, Any] = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            return data
    return None


def write_pid_file(sandbox: dict[str, Any] | None, kind: str, name: str) -> Path | None:
    """Write ``DIR/run/<kind>-<name>.pid`` (this process's pid) when inside a sandbox."""
    if not sandbox or not sandbox.get("dir"):
        return None
    run_dir = Path(sandbox["dir"]) / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"{kind}-{name}.pid"
    path.write_text(f"{os.getpid()}\n", encoding="utf-8")
    return path


def remove_pid_file(path: Path | None) -> None:
    """Remove a pid file written by :func:`write_pid_file`, if it is still ours."""
    if path is None:
        return
    try:
        if path.read_text(encoding="utf-8").strip() == str(os.getpid()):
            path.unlink()
    except OSError:
        pass


# ---------------------------------------------------------------- faults


def fault(sandbox: dict[str, Any] | None, kind: str, *targets: str) -> dict[str, Any] | None:
    """The sandbox fault ``kind`` recorded on any of ``targets`` (``DIR/faults/<kind>@<t>.json``),
    or None. Written by bm_upgrade.sandbox.faults; outside a sandbox there are none."""
    folder = (sandbox or {}).get("faults_dir")
    if not folder:
        return None
    for target in targets:
        try:
            data = json.loads((Path(folder) / f"{kind}@{target}.json").read_text("utf-8"))
        except (OSError, ValueError):
            continue
        return data if isinstance(data, dict) else {}
    return None


# ---------------------------------------------------------------- wire protocol

MAX_LINE = 64 * 1024 * 1024


def encode(message: dict[str, Any]) -> bytes:
    """One protocol message: compact JSON and a newline."""
    return (json.dumps(message, separators=(",", ":")) + "\n").encode("utf-8")


def decode(line: bytes) -> dict[str, Any]:
    """Parse one protocol line; raises ValueError when it is not a JSON object."""
    message = json.loads(line.decode("utf-8"))
    if not isinstance(message, dict):
        raise ValueError("a protocol message must be a JSON object")
    return message


def messages(stream: BinaryIO) -> Iterator[dict[str, Any]]:
    """The protocol messages read from ``stream``, one a line, until it closes."""
    while line := stream.readline(MAX_LINE):
        yield decode(line)


def connect(host: str, port: int, timeout_s: float) -> socket.socket:
    """A TCP connection with TCP_NODELAY (small request/answer messages)."""
    sock = socket.create_connection((host, port), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request(
    host: str, port: int, message: dict[str, Any], timeout_s: float = 2.0
) -> dict[str, Any]:
    """Send one message on a new connection and return the one answer.

    Raises OSError (refused, timed out, closed) or ValueError (garbled answer).
    """
    with connect(host, port, timeout_s) as sock:
        sock.sendall(encode(message))
        with sock.makefile("rb") as stream:
            line = stream.readline(MAX_LINE)
    if not line:
        raise ConnectionResetError(f"{host}:{port} closed the connection without answering")
    return decode(line)


def stripe_for_key(key: str, stripes: int) -> int:
    """Which stripe (0-based) holds ``key``: a stable hash, the same in every process."""
    return zlib.crc32(key.encode("utf-8")) % max(stripes, 1)
