"""The tsa-port: what clients ask of the active (hello, put, get, get_many), and the
tc-config.xml a client fetches over HTTP on the same port (``GET /config``).

Only the ACTIVE-COORDINATOR serves; any other state answers ``not-active``. The protocol is in
ENGINE.md ("Client protocol").
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import tccommon
    from bm_upgrade.sandbox.kit_files.server.lib.tcserver import Server
else:
    import tccommon


def serve_tsa(server: Server, conn: socket.socket, stream: BinaryIO) -> None:
    """Answer one client connection until it closes."""
    first = True
    while True:
        line = stream.readline(tccommon.MAX_LINE)
        if not line:
            return
        if first and line.startswith(b"GET "):
            _serve_config_http(server, conn, stream, line)
            return
        first = False
        conn.sendall(tccommon.encode(_client_request(server, tccommon.decode(line))))


def _serve_config_http(server: Server, conn: socket.socket, stream: BinaryIO, line: bytes) -> None:
    while stream.readline(65536) not in (b"\r\n", b"\n", b""):
        pass  # skip the request headers
    path = line.split()[1].decode("ascii", "replace") if len(line.split()) > 1 else "/"
    if path.split("?")[0] == "/config":
        body, status = server.config_text.encode("utf-8"), "200 OK"
    else:
        body, status = b"Not Found\n", "404 Not Found"
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {len(body)}"
        "\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    conn.sendall(head + body)


def _client_request(server: Server, message: dict[str, Any]) -> dict[str, Any]:
    op = message.get("op")
    if server.state != server.ACTIVE:
        return {"ok": False, "error": "not-active", "state": server.state}
    if op == "hello":
        version = str(message.get("version", ""))
        if tccommon.major_minor(version) != tccommon.major_minor(server.version):
            server.log(
                f"Refusing client {message.get('client')}: client version {version} "
                f"is not compatible with server version {server.version}"
            )
            return {
                "ok": False,
                "error": "version",
                "version": server.version,
                "message": f"client {version} cannot connect to server "
                f"{server.version}: different minor version",
            }
        return {
            "ok": True,
            "server": server.name,
            "group": server.stripe["name"],
            "version": server.version,
            "reconnect_window_s": server.config["reconnect_window_s"],
        }
    if op == "put":
        if server.replicator.put(str(message["key"]), str(message["value"])):
            return {"ok": True}
        return {"ok": False, "error": "not-active", "state": server.state}
    if op == "get":
        return {"ok": True, "value": server.store.data.get(str(message["key"]))}
    if op == "get_many":
        keys = [str(key) for key in message.get("keys", [])]
        return {"ok": True, "values": {key: server.store.data.get(key) for key in keys}}
    return {"ok": False, "error": "bad-request", "message": f"unknown op {op!r}"}
