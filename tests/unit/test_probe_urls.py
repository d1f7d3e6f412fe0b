"""Probes reach an IPv6 host: the management REST URL puts an IPv6 literal in brackets
(issue 11 F). A real HTTP server on ::1 answers with saved real output. (An orchestrator has
no HTTP status: its probe runs on its own host, tests/unit/test_wan_logs.py.)"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bm_upgrade.probes import STAT_PATH, TOPOLOGY_PATH, probe_server_rest
from tests.unit.inventories import server_model

FIXTURES = Path(__file__).parent.parent / "fixtures"
ROUTES = {STAT_PATH: "rest-stat.json", TOPOLOGY_PATH: "rest-topology.json"}


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")


class _Server6(http.server.HTTPServer):
    address_family = socket.AF_INET6


class _Saved(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        name = ROUTES.get(self.path)
        body = (FIXTURES / name).read_bytes() if name else b"{}"
        self.send_response(200 if name else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def served_on_ipv6() -> Iterator[int]:
    httpd = _Server6(("::1", 0), _Saved)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_the_rest_probe_reaches_an_ipv6_server() -> None:
    with served_on_ipv6() as port:
        status = probe_server_rest(server_model(host="::1", management_port=port), timeout=5.0)
    assert status.reachable, status.error
    assert (status.state, status.version) == ("ACTIVE-COORDINATOR", "4.2.1")


def test_an_unreachable_ipv6_server_is_named_by_a_valid_url() -> None:
    with socket.socket(socket.AF_INET6) as closed:  # a port nobody listens on
        closed.bind(("::1", 0))
        port = closed.getsockname()[1]
        status = probe_server_rest(server_model(host="::1", management_port=port), timeout=5.0)
    assert not status.reachable
    assert f"http://[::1]:{port}{STAT_PATH}" in (status.error or "")
    url = (status.error or "").split(": ", 1)[0]
    assert (urlsplit(url).hostname, urlsplit(url).port) == ("::1", port)
