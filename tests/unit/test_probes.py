"""Parsers of server-stat.sh, the REST stat/topology JSON and version.sh, on the exact
formats of docs/terracotta.md (saved under tests/fixtures/), and one stripe's health from its
servers' answers (wan.xml and the replication log: test_wan_logs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from bm_upgrade.inventory import Server, Stripe
from bm_upgrade.probes import (
    ServerStatus,
    parse_server_stat,
    parse_version,
    server_status_from_rest,
    server_status_from_stat,
    version_from_topology,
)
from bm_upgrade.procedure.health import stripe_health
from bm_upgrade.procedure.seen import PS, look_on_host, server_pids
from tests.unit.inventories import server_model

FIXTURES = Path(__file__).parent.parent / "fixtures"
STATES = [
    "START-STATE",
    "PASSIVE-UNINITIALIZED",
    "PASSIVE-STANDBY",
    "ACTIVE-COORDINATOR",
    "RECOVERING",
    "STOP-STATE",
]


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def server(name: str, host: str = "10.0.0.11", port: int = 9540) -> Server:
    return server_model(name=name, host=host, data_dir=f"/var/tc/{name}/data", management_port=port)


def status(name: str, state: str, reachable: bool = True) -> ServerStatus:
    role = (
        "ACTIVE"
        if state == "ACTIVE-COORDINATOR"
        else ("PASSIVE" if state.startswith("PASSIVE") else "unknown")
    )
    return ServerStatus(
        name, "h", "OK" if reachable else "unknown", role, state, "4.2.1", reachable
    )


def test_server_stat_two_blocks() -> None:
    blocks = parse_server_stat(fixture("server-stat-4.2.txt"))
    assert [b["prefix"] for b in blocks] == ["tsa-a1", "tsa-a2"]
    assert blocks[0]["state"] == "ACTIVE-COORDINATOR"
    assert blocks[1]["group name"] == "stripe1"


def test_server_stat_status_by_name() -> None:
    st = server_status_from_stat(
        server("tsa-a2", "10.0.0.12"), fixture("server-stat-4.2.txt"), "4.2.1"
    )
    assert (st.health, st.role, st.state, st.version, st.reachable, st.group) == (
        "OK",
        "PASSIVE",
        "PASSIVE-STANDBY",
        "4.2.1",
        True,
        "stripe1",
    )


def test_server_stat_unreachable_is_matched_by_host_and_has_no_version() -> None:
    st = server_status_from_stat(
        server("tsa-a2", "10.0.0.12"), fixture("server-stat-unreachable.txt"), "4.2.1"
    )
    assert not st.reachable
    assert (st.health, st.role, st.state, st.version) == ("unknown",) * 3 + (None,)
    assert st.error is not None and "Connection refused to 10.0.0.12:9540" in st.error


@pytest.mark.parametrize("state", STATES)
def test_server_stat_every_state(state: str) -> None:
    role = {
        "ACTIVE-COORDINATOR": "ACTIVE",
        "PASSIVE-UNINITIALIZED": "PASSIVE",
        "PASSIVE-STANDBY": "PASSIVE",
    }.get(state, "UNKNOWN")
    text = (
        fixture("server-stat-4.2.txt")
        .replace("ACTIVE-COORDINATOR", state)
        .replace("tsa-a1.role: ACTIVE", f"tsa-a1.role: {role}")
    )
    st = server_status_from_stat(server("tsa-a1"), text, "4.2.0")
    assert (st.state, st.role, st.reachable) == (state, role, True)


def test_server_stat_garbage_is_unreachable() -> None:
    st = server_status_from_stat(server("tsa-a1"), "bash: server-stat.sh: not found\n", None)
    assert not st.reachable and st.error


def test_rest_stat_and_topology() -> None:
    stat = json.loads(fixture("rest-stat.json"))
    topo = json.loads(fixture("rest-topology.json"))
    st = server_status_from_rest(server("tsa-a1"), stat, topo)
    assert (st.health, st.role, st.state, st.version, st.group) == (
        "OK",
        "ACTIVE",
        "ACTIVE-COORDINATOR",
        "4.2.1",
        "stripe1",
    )
    assert version_from_topology(topo, "tsa-a2") == "4.2.0"
    assert version_from_topology(topo, "nobody") is None
    assert server_status_from_rest(server("tsa-a1"), stat, None).version is None


def test_topology_version_as_the_product_writes_it() -> None:
    # The product's Version attribute is ProductInfo.toShortString (docs/terracotta.md).
    def topology(version: str) -> dict[str, object]:
        attrs = {"Name": "tsa-a1", "Version": version}
        return {"entities": [{"serverGroupEntities": [{"servers": [{"attributes": attrs}]}]}]}

    assert version_from_topology(topology("Terracotta Enterprise 4.2.1"), "tsa-a1") == "4.2.1"
    assert version_from_topology(topology("4.3.4.1.4"), "tsa-a1") == "4.3.4.1.4"
    assert version_from_topology(topology("[unknown]"), "tsa-a1") is None


def test_version_sh() -> None:
    assert parse_version(fixture("version-sh-4.2.1.txt")) == "4.2.1"
    assert parse_version("Terracotta Enterprise 4.3.4.1.4, as of x") == "4.3.4.1.4"
    assert parse_version("command not found") is None


def _stripe(n: int) -> Stripe:
    return Stripe(name="stripe1", servers=[server(f"s{i}", f"10.0.0.{i}") for i in range(n)])


def test_stripe_health_good() -> None:
    health = stripe_health(
        _stripe(3),
        [
            status("s0", "ACTIVE-COORDINATOR"),
            status("s1", "PASSIVE-STANDBY"),
            status("s2", "PASSIVE-STANDBY"),
        ],
    )
    assert health.healthy and health.active == "s0" and health.standbys == ["s1", "s2"]


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["ACTIVE-COORDINATOR", "PASSIVE-UNINITIALIZED"], "not PASSIVE-STANDBY"),
        (["PASSIVE-STANDBY", "PASSIVE-STANDBY"], "no ACTIVE"),
        (["ACTIVE-COORDINATOR", "ACTIVE-COORDINATOR"], "split brain"),
        (["ACTIVE-COORDINATOR", "RECOVERING"], "no PASSIVE-STANDBY mirror"),
        (["START-STATE", "STOP-STATE"], "no ACTIVE"),
    ],
)
def test_stripe_health_problems(states: list[str], expected: str) -> None:
    health = stripe_health(_stripe(2), [status(f"s{i}", s) for i, s in enumerate(states)])
    assert not health.healthy
    assert any(expected in p for p in health.problems), health.problems


def test_stripe_health_unreachable_mirror() -> None:
    health = stripe_health(
        _stripe(2), [status("s0", "ACTIVE-COORDINATOR"), status("s1", "unknown", reachable=False)]
    )
    assert any("s1" in p and "unreachable" in p for p in health.problems)


def test_an_answer_cut_off_midway_is_unreachable_not_a_crash() -> None:
    """A server stopping while it answers: the probe says unreachable, it does not raise."""
    import http.server
    import threading

    from bm_upgrade.probes import probe_server_rest

    class Cut(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "125")
            self.end_headers()
            self.wfile.write(b"{")  # then the connection closes

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Cut)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        server = server_model(host="127.0.0.1", management_port=httpd.server_address[1])
        status = probe_server_rest(server, timeout=2.0)
        assert not status.reachable
        assert status.error and "broke off" in status.error
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass(frozen=True)
class _Done:
    exit_code: int
    stdout: str
    stderr: str = ""


class _LocalRunner:
    """Runs commands here through sh, with ``COLUMNS`` set as a login profile might and the
    C locale an SSH login often has."""

    host = "localhost"

    def run(
        self, command: str | Sequence[str], timeout: float | None = None, check: bool = True
    ) -> _Done:
        assert isinstance(command, str)
        done = subprocess.run(
            ["sh", "-c", command],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "40", "LC_ALL": "C"},
            timeout=timeout,
            check=False,
        )
        return _Done(done.returncode, done.stdout)


def test_a_server_process_is_found_whatever_the_width_of_ps(tmp_path: Path) -> None:
    """The host's look lists whole command lines (ps -ww): with COLUMNS=40, ps would cut
    the line before the tc-config path and the server would look down."""
    kit = tmp_path / ("a-long-folder-name-" * 4) / "bigmemory-max"
    (kit / "server" / "bin").mkdir(parents=True)
    version_sh = kit / "server" / "bin" / "version.sh"
    version_sh.write_text("#!/bin/sh\necho 'Terracotta Enterprise 4.2.1, as of 2015'\n")
    version_sh.chmod(0o755)
    tc_config = str(kit.parent / "etc" / "tc-config.xml")
    srv = Server(
        name="east-s1-a",
        host="localhost",
        install_dir=str(kit),
        tc_config=tc_config,
        data_dir=str(tmp_path / "data"),
        management_port=9540,
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-f", tc_config, "-n", srv.name]
    )
    try:
        listing, kits = look_on_host(_LocalRunner(), [srv])
        assert server_pids(listing, srv) == [proc.pid]
        assert kits == {"east-s1-a": "4.2.1"}
    finally:
        proc.kill()
        proc.wait()


def test_a_server_process_is_found_under_a_non_ascii_path_in_the_c_locale(
    tmp_path: Path,
) -> None:
    """In the C locale ps prints non-ASCII letters as ``?``, so a server whose tc-config path
    has some would look down (and its kit root could be swapped under it); the look reads
    /proc instead."""
    tc_config = str(tmp_path / "région é" / "tc-config.xml")
    srv = server_model(name="east-s1-a", tc_config=tc_config)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-f", tc_config, "-n", srv.name]
    )
    try:
        listing = _LocalRunner().run(PS).stdout
        assert server_pids(listing, srv) == [proc.pid]
    finally:
        proc.kill()
        proc.wait()
