"""The management REST API on the management-port (the TMC agent's endpoints).

- ``GET  /tc-management-api/v2/local/stat``
- ``POST /tc-management-api/v2/local/shutdown`` body ``{"forceStop": bool}``; 400 when it
  would stop an ACTIVE-COORDINATOR that has no PASSIVE-STANDBY mirror and forceStop is false
- ``GET  /tc-management-api/v2/agents/topologies/servers`` (every reachable server of the
  cluster with its State and Version)
- ``GET  /tc-management-api/v2/local/config`` (the tc-config.xml the server runs with)
- ``POST /tc-management-api/v2/agents/backups?name=N`` (tcbackup.py)
"""

from __future__ import annotations

import json
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import tcbackup, tccommon, tcsecurity
    from bm_upgrade.sandbox.kit_files.server.lib.tcserver import Server
else:
    import tcbackup
    import tccommon
    import tcsecurity

API = "/tc-management-api/v2"


def role_of(state: str) -> str:
    """ACTIVE for ACTIVE-COORDINATOR, PASSIVE for PASSIVE-*, UNKNOWN otherwise."""
    if state == "ACTIVE-COORDINATOR":
        return "ACTIVE"
    if state.startswith("PASSIVE"):
        return "PASSIVE"
    return "UNKNOWN"


def topology(server: Server) -> dict[str, Any]:
    """The cluster topology as the TMC agent reports it (unreachable servers are left out)."""
    groups = []
    for stripe in server.config["stripes"]:
        members = []
        for member in stripe["servers"]:
            if member["name"] == server.name:
                status: dict[str, Any] | None = server.status()
            else:
                try:
                    status = tccommon.request(
                        member["host"], member["group_port"], {"op": "status"}, timeout_s=1.0
                    )
                except (OSError, ValueError):
                    status = None
            if status is None:
                continue
            members.append(
                {
                    "attributes": {
                        "Name": member["name"],
                        "Host": member["host"],
                        "TSAPort": member["tsa_port"],
                        "ManagementPort": member["management_port"],
                        "State": status["state"],
                        "Role": role_of(str(status["state"])),
                        # As the product fills it: ProductInfo's short form (docs/terracotta.md).
                        "Version": f"Terracotta Enterprise {status['version']}",
                    }
                }
            )
        groups.append({"name": stripe["name"], "servers": members})
    return {"entities": [{"serverGroupEntities": groups}]}


class _Handler(BaseHTTPRequestHandler):
    server_version = "Terracotta-Management"
    sys_version = ""
    tc: Server  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the console log is the server's own."""

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, payload: object) -> None:
        self._send(code, json.dumps(payload, separators=(",", ":")).encode("utf-8"))

    def _refused(self, *roles: str) -> bool:
        """On a secured server (ENGINE.md, "Secured mode"): 401 without valid Basic
        credentials, 403 without one of ``roles``; True when the request was answered."""
        security = self.tc.me.get("security") if self.tc.config.get("secure") else None
        if security is None:
            return False
        found = tcsecurity.authenticate(self.headers.get("Authorization"), security)
        if found is None:
            body = json.dumps({"error": "Authentication required"}).encode("utf-8")
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="Terracotta Management"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return True
        if roles and not found[1] & set(roles):
            self._json(403, {"error": f"user {found[0]} lacks the {'/'.join(roles)} role"})
            return True
        return False

    def do_GET(self) -> None:
        """stat, topology, config."""
        if self._refused():
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == f"{API}/local/stat":
            state = self.tc.state
            self._json(
                200,
                {
                    "health": "OK",
                    "role": role_of(state),
                    "state": state,
                    "managementPort": str(self.tc.me["management_port"]),
                    "serverGroupName": self.tc.stripe["name"],
                    "name": self.tc.name,
                },
            )
        elif path == f"{API}/agents/topologies/servers":
            self._json(200, topology(self.tc))
        elif path == f"{API}/local/config":
            self._send(200, self.tc.config_text.encode("utf-8"), "application/xml")
        else:
            self._json(404, {"error": f"no resource at {path}"})

    def do_POST(self) -> None:
        """shutdown (a secured server asks for the admin role)."""
        if self._refused(tcsecurity.ADMIN_ROLE):
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == f"{API}/agents/backups":  # the Database Backup Utility (tcbackup.py)
            name = urllib.parse.parse_qs(self.path.partition("?")[2]).get("name", [None])[0]
            self._json(200, [tcbackup.take(self.tc, name)])
            return
        if path != f"{API}/local/shutdown":
            self._json(404, {"error": f"no resource at {path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._json(400, {"error": 'the body must be JSON, e.g. {"forceStop": false}'})
            return
        force = bool(body.get("forceStop", False)) if isinstance(body, dict) else False
        refusal = self.tc.shutdown_refusal(force)
        if refusal:
            # The product answers 400 with the sentence under "error" (ENGINE.md).
            self._json(400, {"error": refusal})
            return
        self._json(200, {"message": f"server {self.tc.name} is shutting down"})
        self.tc.request_stop(0)


def start_rest(server: Server) -> ThreadingHTTPServer:
    """Serve the management API on the server's management port (raises OSError if taken)."""
    handler = type("Handler", (_Handler,), {"tc": server})
    security = server.me.get("security") if server.config.get("secure") else None
    tls = tcsecurity.server_context(security) if security else None
    return tccommon.serve_http(handler, server.me["host"], server.me["management_port"], tls)
