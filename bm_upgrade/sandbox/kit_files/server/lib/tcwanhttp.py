"""The WAN orchestrator's HTTP side: its status server, the calls orchestrators make to each
other, and what ``stop-wan.sh`` runs (``tcwan.py stop -f <wan.xml>``).

Endpoints on the wan.xml ``<bind>``: ``GET /wan/status`` (public, what the tool probes),
``GET /wan/peer`` (the status plus the run id, for other orchestrators), ``POST
/wan/shutdown`` (stop-wan.sh). See ENGINE.md, "WAN orchestrators".
"""

from __future__ import annotations

import http.client
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import tccommon, tcwanxml
    from bm_upgrade.sandbox.kit_files.server.lib.tcwan import Orchestrator
else:
    import tccommon
    import tcwanxml

PEER_TIMEOUT_S = 0.5


def call(
    host: str, port: int, path: str, method: str = "GET", timeout_s: float = PEER_TIMEOUT_S
) -> tuple[int, dict[str, Any]]:
    """One HTTP call to an orchestrator; raises OSError when it does not answer."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None)
        response = conn.getresponse()
        data = json.loads(response.read() or b"{}")
    except (http.client.HTTPException, ValueError) as exc:
        raise ConnectionError(str(exc)) from None
    finally:
        conn.close()
    return response.status, data if isinstance(data, dict) else {}


class _Handler(BaseHTTPRequestHandler):
    server_version = "Terracotta-WAN"
    sys_version = ""
    orch: Orchestrator

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the console log is the orchestrator's own."""

    def _json(self, code: int, payload: object) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        """/wan/status (public), /wan/peer (status plus the run id, for other orchestrators)."""
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/wan/status":
            self._json(200, self.orch.status())
        elif path == "/wan/peer":
            self._json(200, {**self.orch.status(), "run": self.orch.run_id})
        else:
            self._json(404, {"error": f"no resource at {path}"})

    def do_POST(self) -> None:
        """/wan/shutdown."""
        if self.path.split("?", 1)[0].rstrip("/") != "/wan/shutdown":
            self._json(404, {"error": f"no resource at {self.path}"})
            return
        self._json(200, {"message": f"orchestrator {self.orch.name} is shutting down"})
        self.orch.request_stop(0)


def config_arg(argv: list[str]) -> str:
    """The ``-f <wan.xml>`` argument (default ``wan.xml``)."""
    args = iter(argv)
    for arg in args:
        if arg in ("-f", "--config"):
            return next(args, "")
    return "wan.xml"


def stop(argv: list[str]) -> int:
    """What stop-wan.sh runs: ask the orchestrator of this wan.xml to stop."""
    path = config_arg(argv)
    try:
        config = tcwanxml.parse_wan_xml(Path(path).read_text(encoding="utf-8"))
    except (OSError, tcwanxml.WanConfigError) as exc:
        print(f"Error: cannot use {path}: {exc}", file=sys.stderr)
        return 2
    host, port = config["host"], config["port"]
    try:
        code, _ = call(host, port, "/wan/shutdown", "POST", timeout_s=5.0)
    except OSError:
        print(
            f"Unable to connect to host '{host}', port {port}. Are you sure there is a WAN "
            "orchestrator running there?"
        )
        return 1
    print(f"Stop success. Response code {code}")
    return 0 if code == 200 else 1


def serve(orch: Orchestrator) -> ThreadingHTTPServer:
    """Serve the endpoints on the orchestrator's bind address (raises OSError if taken)."""
    handler = type("Handler", (_Handler,), {"orch": orch})
    return tccommon.serve_http(handler, orch.config["host"], orch.config["port"])
