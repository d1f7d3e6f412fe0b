"""Code shared by every program of the kit and by the sandbox that builds it.

Stdlib only: the kit's programs run with the system python3 and cannot import bm_upgrade.
The same file is shipped in ``server/lib/`` and inside the client "jars", and the sandbox's
own modules (journal, license, tcconfig, protocol) import it, so each rule is written once:

- the journal line format (one O_APPEND write per line),
- the license key format and its signature,
- the tc-config.xml reader and writer,
- the wire protocol (newline-delimited JSON over TCP) on the tsa-port and tsa-group-port,
- finding ``sandbox.json`` from a path inside the sandbox,
- reading the sandbox's faults (``DIR/faults/<kind>@<target>.json``).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import socket
import threading
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


def serve_http(handler: type[BaseHTTPRequestHandler], host: str, port: int) -> ThreadingHTTPServer:
    """Serve ``handler`` on ``host:port`` from a daemon thread (raises OSError if taken)."""
    from http.server import ThreadingHTTPServer  # only the programs that serve pay for it

    httpd = ThreadingHTTPServer((host, port), handler)
    httpd.daemon_threads = True
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
    line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode("utf-8")
    fd = os.open(os.fspath(journal), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def append_line(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON line to a file in one O_APPEND write (ledgers)."""
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
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


# ---------------------------------------------------------------- license

LICENSE_FILE_NAME = "terracotta-license.key"
LICENSE_PRODUCT = "BigMemory Max"
# The kit's programs know this key; a real product would use a public-key signature.
_LICENSE_HMAC_KEY = b"bm_upgrade-sandbox-license-v1"
_LICENSE_ORDER = (
    "License type",
    "License number",
    "Licensee",
    "Product",
    "Edition",
    "Version",
    "Capabilities",
    "Max Client Count",
    "Expiration date",
)


def _license_signature(body_lines: list[str]) -> str:
    body = "\n".join(body_lines).encode("utf-8")
    return hmac.new(_LICENSE_HMAC_KEY, body, hashlib.sha256).hexdigest()


def render_license(fields: dict[str, str]) -> str:
    """The text of a signed license key holding ``fields`` (keys of ``_LICENSE_ORDER``)."""
    body = [f"{key} = {fields[key]}" for key in _LICENSE_ORDER]
    return "\n".join(
        ["# Terracotta license key", *body, f"Signature = {_license_signature(body)}", ""]
    )


def parse_license(text: str) -> tuple[dict[str, str], list[str]]:
    """Split a license key into its fields and the signed body lines (in file order)."""
    fields: dict[str, str] = {}
    body: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        fields[key] = value
        if key != "Signature":
            body.append(f"{key} = {value}")
    return fields, body


def check_license(path: Path, version: str, today: datetime.date | None = None) -> str | None:
    """Why the license at ``path`` does not allow ``version`` to run, or None when it does."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return (
            f"License key not found: {path} is missing; place terracotta-license.key "
            "in the kit root"
        )
    except (OSError, UnicodeDecodeError) as exc:
        return f"License key {path} cannot be read: {exc}"
    return _license_problem(path, text, version, today or datetime.date.today())


def _license_problem(path: Path, text: str, version: str, today: datetime.date) -> str | None:
    fields, body = parse_license(text)
    if not hmac.compare_digest(fields.get("Signature", ""), _license_signature(body)):
        return (
            f"License key {path} has an invalid signature (the file was altered or is "
            "not a Terracotta license key)"
        )
    product = fields.get("Product", "")
    licensed = fields.get("Version", "")
    problem = None
    if product != LICENSE_PRODUCT:
        problem = f"is for product '{product}', not '{LICENSE_PRODUCT}'"
    elif major_minor(licensed) != major_minor(version):
        problem = f"is for version {licensed}; it does not cover {version}"
    else:
        try:
            expiry = datetime.date.fromisoformat(fields.get("Expiration date", ""))
        except ValueError:
            problem = "has no valid 'Expiration date'"
        else:
            if today > expiry:
                problem = f"expired on {expiry.isoformat()}"
    return f"License key {path} {problem}" if problem else None


# ---------------------------------------------------------------- tc-config

TC_NS = "http://www.terracotta.org/config"
DEFAULT_ELECTION_S = 5.0
DEFAULT_RECONNECT_WINDOW_S = 120.0


class ConfigError(Exception):
    """tc-config.xml is unreadable or invalid; the message says where."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _port(server: ET.Element, name: str, default: int) -> int:
    element = _child(server, name)
    if element is None or not (element.text or "").strip():
        return default
    try:
        return int((element.text or "").strip())
    except ValueError:
        raise ConfigError(f"<{name}> of server {server.get('name')!r} is not a number") from None


def _server(element: ET.Element, index: int) -> dict[str, Any]:
    host = element.get("host") or "localhost"
    name = element.get("name") or f"{host}:{_port(element, 'tsa-port', 9510)}"
    tsa = _port(element, "tsa-port", 9510)
    data = _child(element, "data")
    logs = _child(element, "logs")
    return {
        "name": name,
        "host": host,
        "index": index,
        "data": (data.text or "").strip() if data is not None else "data",
        "logs": (logs.text or "").strip() if logs is not None else "logs",
        "tsa_port": tsa,
        "jmx_port": _port(element, "jmx-port", tsa + 10),
        "group_port": _port(element, "tsa-group-port", tsa + 20),
        "management_port": _port(element, "management-port", tsa + 30),
    }


def parse_tc_config(text: str) -> dict[str, Any]:
    """Parse tc-config.xml text into ``{"stripes": [...], "persistent", "reconnect_window_s"}``.

    Each stripe is ``{"name", "election_s", "servers": [server dicts]}``; ports not set take
    the tsa-port +10/+20/+30 defaults. Raises ConfigError.
    """
    try:
        root = ET.fromstring(text)  # noqa: S314 - the operator's own config file
    except ET.ParseError as exc:
        raise ConfigError(f"not well-formed XML: {exc}") from None
    servers = _child(root, "servers")
    if servers is None:
        raise ConfigError("no <servers> element")
    groups = _children(servers, "mirror-group")
    plain = _children(servers, "server")
    if groups and plain:
        raise ConfigError("<servers> holds both <server> and <mirror-group> elements")
    stripes: list[dict[str, Any]] = []
    index = 0
    if plain:
        group_servers = []
        for element in plain:
            group_servers.append(_server(element, index))
            index += 1
        stripes.append(
            {"name": "default-group", "election_s": DEFAULT_ELECTION_S, "servers": group_servers}
        )
    for number, group in enumerate(groups, start=1):
        group_servers = []
        for element in _children(group, "server"):
            group_servers.append(_server(element, index))
            index += 1
        try:
            election = float(group.get("election-time") or DEFAULT_ELECTION_S)
        except ValueError:
            raise ConfigError("election-time of a <mirror-group> is not a number") from None
        stripes.append(
            {
                "name": group.get("group-name") or f"group{number}",
                "election_s": election,
                "servers": group_servers,
            }
        )
    if not any(stripe["servers"] for stripe in stripes):
        raise ConfigError("no <server> is configured")
    restartable = _child(servers, "restartable")
    persistent = restartable is not None and restartable.get("enabled", "false") == "true"
    window = _child(servers, "client-reconnect-window")
    try:
        reconnect = (
            float((window.text or "").strip()) if window is not None else DEFAULT_RECONNECT_WINDOW_S
        )
    except ValueError:
        raise ConfigError("<client-reconnect-window> is not a number") from None
    return {"stripes": stripes, "persistent": persistent, "reconnect_window_s": reconnect}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_tc_config(
    stripes: list[dict[str, Any]], *, persistent: bool, reconnect_window_s: float, election_s: float
) -> str:
    """tc-config.xml text in the format of docs/terracotta.md: one <mirror-group> per stripe."""

    def esc(value: object) -> str:
        return (
            str(value)
            .replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace('"', "&quot;")
        )

    lines = [f'<tc:tc-config xmlns:tc="{TC_NS}">', "  <servers>"]
    for stripe in stripes:
        lines.append(
            f'    <mirror-group group-name="{esc(stripe["name"])}" '
            f'election-time="{_number(election_s)}">'
        )
        for server in stripe["servers"]:
            lines += [
                f'      <server host="{esc(server["host"])}" name="{esc(server["name"])}">',
                f"        <data>{esc(server['data'])}</data>",
                f"        <logs>{esc(server['logs'])}</logs>",
                f"        <tsa-port>{int(server['tsa_port'])}</tsa-port>",
                f"        <jmx-port>{int(server['jmx_port'])}</jmx-port>",
                f"        <tsa-group-port>{int(server['group_port'])}</tsa-group-port>",
                f"        <management-port>{int(server['management_port'])}</management-port>",
                '        <dataStorage size="64m"><offheap size="64m"/></dataStorage>',
                "      </server>",
            ]
        lines.append("    </mirror-group>")
    lines.append(f'    <restartable enabled="{"true" if persistent else "false"}"/>')
    lines.append(
        f"    <client-reconnect-window>{_number(reconnect_window_s)}</client-reconnect-window>"
    )
    lines += ["  </servers>", "</tc:tc-config>", ""]
    return "\n".join(lines)


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
