"""What ``stop-tc-server.sh`` and ``server-stat.sh`` run: ``tcctl.py stop|stat ARGS``.

Both talk to servers through their management port, as the real scripts do, and take the
product's connection options (ENGINE.md, "Secured mode"): ``-u/--username``,
``-w/--password`` (read from standard input when ``-u`` comes without it), ``--secured``
(HTTPS; ``-s`` too for the stop script, where ``-s`` is no server list), ``-k/--ignoreSSLCert``.
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import tcconfigxml, tcsecurity
else:
    import tcconfigxml
    import tcsecurity

API = "/tc-management-api/v2"
TIMEOUT_S = 5.0


class UsageError(Exception):
    """Bad arguments or configuration; the message says what to pass."""


class TlsFailure(Exception):
    """The TLS handshake failed (an untrusted certificate): the product's tools end with the
    exception, exit code 1."""


def _call(
    host: str,
    port: int,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    options: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One REST call, over HTTPS with Basic credentials when ``options`` say so; raises
    OSError when the server cannot be reached, TlsFailure when its certificate is refused."""
    options = options or {}
    if options.get("secured"):
        context = tcsecurity.client_context(bool(options.get("ignore_untrusted")))
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=TIMEOUT_S, context=context
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        payload = json.dumps(body).encode("utf-8") if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        if options.get("username") is not None:
            headers["Authorization"] = tcsecurity.basic_header(
                options["username"], options.get("password") or ""
            )
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    except ssl.SSLError as exc:
        raise TlsFailure(f"javax.net.ssl.SSLHandshakeException: {exc}") from None
    except http.client.HTTPException as exc:
        raise ConnectionError(str(exc)) from None
    finally:
        conn.close()
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        data = {"error": raw.decode("utf-8", "replace")}
    return response.status, data if isinstance(data, dict) else {}


def _options(argv: list[str], command: str = "stat") -> dict[str, Any]:
    """The product's options; for ``stat`` ``-s`` is the server list, for ``stop`` it is
    ``--secured`` (ServerStat renames ``-s`` to ``--servers`` before parsing)."""
    options: dict[str, Any] = {"force": False, "secured": False, "ignore_untrusted": False}
    args = iter(argv)
    for arg in args:
        if arg in ("-f", "--config", "-config"):
            options["config"] = next(args, "")
        elif arg in ("-n", "--name", "-name"):
            options["name"] = next(args, "")
        elif arg in ("--servers", "-servers") or (arg == "-s" and command == "stat"):
            options["servers"] = next(args, "")
        elif arg in ("--secured", "-secured") or (arg == "-s" and command == "stop"):
            options["secured"] = True
        elif arg in ("-k", "--ignoreSSLCert", "-ignoreSSLCert"):
            options["ignore_untrusted"] = True
        elif arg in ("-u", "--username", "-username"):
            options["username"] = next(args, "")
        elif arg in ("-w", "--password", "-password"):
            options["password"] = next(args, "")
        elif arg in ("--force", "-force"):
            options["force"] = True
        else:
            raise UsageError(f"unknown argument {arg!r}")
    if options.get("username") is not None and "password" not in options:
        # No console over SSH: the password is read from standard input (assumed).
        options["password"] = sys.stdin.readline().rstrip("\r\n")
    return options


def _config_servers(path: str) -> list[dict[str, Any]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        config = tcconfigxml.parse_tc_config(text)
    except tcconfigxml.ConfigError as exc:
        raise UsageError(f"invalid configuration {path}: {exc}") from None
    return [server for stripe in config["stripes"] for server in stripe["servers"]]


def stop(argv: list[str]) -> int:
    """Ask one server to stop; 0 on success, 1 when unreachable or refused."""
    options = _options(argv, "stop")
    if "config" not in options:
        raise UsageError("pass -f <tc-config.xml> -n <server-name>")
    servers = _config_servers(options["config"])
    name = options.get("name")
    if not name and len(servers) == 1:
        name = servers[0]["name"]
    match = [s for s in servers if s["name"] == name]
    if not match:
        raise UsageError(
            f"server {name!r} is not defined in {options['config']}; "
            "pass -n with one of: " + ", ".join(s["name"] for s in servers)
        )
    host, port = match[0]["host"], int(match[0]["management_port"])
    # As the product's stop tool: a tc-config saying secure means HTTPS (ENGINE.md).
    options["secured"] = options["secured"] or _config_secure(options["config"])
    try:
        status, data = _call(
            host,
            port,
            "POST",
            f"{API}/local/shutdown",
            {"forceStop": bool(options["force"])},
            options=options,
        )
    except OSError:
        print(
            f"Unable to connect to host '{host}', port {port}. Are you sure there is a "
            "Terracotta server instance running there?"
        )
        return 1
    if 200 <= status < 300:
        print(f"Stop success. Response code {status}")
        return 0
    if status == 401:
        print("Authentication failure. Invalid username/password.")
        print("Unexpected error while stopping server")
        print("java.io.IOException: Incorrect username/password")
        return 1
    # What the product's stop tool prints for any other answer (a refusal included): the
    # error it read, as the exception it logs, and exit code 1 (ENGINE.md, Scripts).
    print("Unexpected error while stopping server")
    print(f"java.io.IOException: Error stopping server: {data.get('error')}")
    return 1


def _config_secure(path: str) -> bool:
    try:
        return bool(tcconfigxml.parse_tc_config(Path(path).read_text(encoding="utf-8"))["secure"])
    except (OSError, tcconfigxml.ConfigError):
        return False


def _targets(options: dict[str, Any]) -> list[tuple[str, int]]:
    if options.get("servers"):
        targets = []
        for item in str(options["servers"]).split(","):
            host, _, port = item.strip().rpartition(":")
            if not host or not port.isdigit():
                raise UsageError(f"{item!r} is not <host>:<management-port>")
            targets.append((host, int(port)))
        return targets
    if options.get("config"):
        return [(s["host"], int(s["management_port"])) for s in _config_servers(options["config"])]
    raise UsageError("pass -s <host>:<port>[,<host>:<port>...] or -f <tc-config.xml>")


def _unknown_block(host: str, port: int, error: str) -> str:
    """The block of a server that gave no stat: the HOST as prefix, ``unknown`` values and
    the ``.error`` line (the product's ServerStat; ENGINE.md, "Scripts")."""
    return (
        f"{host}.health: unknown\n{host}.role: unknown\n{host}.state: unknown\n"
        f"{host}.port: {port}\n{host}.group name: unknown\n{host}.error: {error}\n"
    )


def _stat_block(host: str, port: int, options: dict[str, Any]) -> str:
    """One server's block. Raises OSError for a failure other than a refused connection
    (the product's tool ends there), TlsFailure for a refused certificate."""
    try:
        status, data = _call(host, port, "GET", f"{API}/local/stat", options=options)
    except ConnectionRefusedError:
        return _unknown_block(
            host, port, f"Connection refused to {host}:{port}. Is the TSA running?"
        )
    if 200 <= status < 300:
        name = data.get("name", host)
        return (
            f"{name}.health: {data.get('health')}\n{name}.role: {data.get('role')}\n"
            f"{name}.state: {data.get('state')}\n{name}.port: {port}\n"
            f"{name}.group name: {data.get('serverGroupName')}\n"
        )
    if status == 401:
        return _unknown_block(
            host, port, "Authentication error, check username/password and try again."
        )
    if status == 404:
        return _unknown_block(host, port, "Got a 404, is the management server running?")
    return _unknown_block(host, port, f"Error fetching stats: {data.get('error')}")


def stat(argv: list[str]) -> int:
    """Print one block per server (health, role, state, port, group name), each followed by
    a blank line; exits 0, or 1 when a server fails in another way than refusing the
    connection (a timeout, a broken answer: the product's tool ends with the exception)."""
    options = _options(argv, "stat")
    for host, port in _targets(options):
        try:
            block = _stat_block(host, port, options)
        except OSError as exc:
            print(
                f'Exception in thread "main" javax.ws.rs.ProcessingException: {exc}',
                file=sys.stderr,
            )
            return 1
        print(block)
    return 0


def main(argv: list[str]) -> int:
    """``stop`` or ``stat``; usage errors print one line and exit 2."""
    commands = {"stop": stop, "stat": stat}
    if not argv or argv[0] not in commands:
        print("usage: tcctl.py stop|stat ARGS", file=sys.stderr)
        return 2
    try:
        return commands[argv[0]](argv[1:])
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except TlsFailure as exc:
        print(f'Exception in thread "main" {exc}', file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
