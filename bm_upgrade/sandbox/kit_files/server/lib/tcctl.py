"""What ``stop-tc-server.sh`` and ``server-stat.sh`` run: ``tcctl.py stop|stat ARGS``.

Both talk to servers through their management port, as the real scripts do.
"""

from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import tcconfigxml
else:
    import tcconfigxml

API = "/tc-management-api/v2"
TIMEOUT_S = 5.0


class UsageError(Exception):
    """Bad arguments or configuration; the message says what to pass."""


def _call(
    host: str, port: int, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """One REST call; raises OSError when the server cannot be reached."""
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        payload = json.dumps(body).encode("utf-8") if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    except http.client.HTTPException as exc:
        raise ConnectionError(str(exc)) from None
    finally:
        conn.close()
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        data = {"error": raw.decode("utf-8", "replace")}
    return response.status, data if isinstance(data, dict) else {}


def _options(argv: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {"force": False}
    args = iter(argv)
    for arg in args:
        if arg in ("-f", "--config"):
            options["config"] = next(args, "")
        elif arg in ("-n", "--name"):
            options["name"] = next(args, "")
        elif arg in ("-s", "--server"):
            options["servers"] = next(args, "")
        elif arg in ("--force", "-force"):
            options["force"] = True
        else:
            raise UsageError(f"unknown argument {arg!r}")
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
    options = _options(argv)
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
    try:
        status, data = _call(
            host, port, "POST", f"{API}/local/shutdown", {"forceStop": bool(options["force"])}
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
    # What the product's stop tool prints for any other answer (a refusal included): the
    # error it read, as the exception it logs, and exit code 1 (ENGINE.md, Scripts).
    print("Unexpected error while stopping server")
    print(f"java.io.IOException: Error stopping server: {data.get('error')}")
    return 1


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


def stat(argv: list[str]) -> int:
    """Print one block per server (health, role, state, port, group name); exits 0."""
    for host, port in _targets(_options(argv)):
        try:
            status, data = _call(host, port, "GET", f"{API}/local/stat")
            if status != 200:
                raise ConnectionError(f"HTTP {status}")
        except OSError:
            print(
                f"{host}.health: unknown\n{host}.role: unknown\n{host}.state: unknown\n"
                f"{host}.port: {port}\n{host}.group name: unknown\n"
                f"{host}.error: Connection refused to {host}:{port}. Is the TSA running?\n"
            )
            continue
        name = data.get("name", host)
        print(
            f"{name}.health: {data.get('health')}\n{name}.role: {data.get('role')}\n"
            f"{name}.state: {data.get('state')}\n{name}.port: {data.get('managementPort')}\n"
            f"{name}.group name: {data.get('serverGroupName')}\n"
        )
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
