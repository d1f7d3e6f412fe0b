"""The sandbox engine as processes: servers started by the kit's own scripts (no sshd).

Each test cluster lives in a temporary folder laid out like a sandbox (``sandbox.json``,
``hosts/<address>/...``); every server is on its own 127.A.B.n address with the standard
ports. Every process started is killed by its process group at teardown, also on failure.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bm_upgrade.sandbox import clientapp, journal, kits, license, protocol, tcconfig

ELECTION_S = 0.3
SYNC_S = 0.3
API = "/tc-management-api/v2"
# What a minimal SSH login has, plus a JAVA_HOME: the kit scripts refuse to run without one
# naming a directory (any: the sandbox runs no Java).
ENV = {"PATH": "/usr/bin:/bin", "JAVA_HOME": "/usr"}


@pytest.fixture(scope="session")
def kit_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kits 4.2.0, 4.2.1 and 4.3.0, built and unpacked once."""
    cache = tmp_path_factory.mktemp("kits")
    for version in ("4.2.0", "4.2.1", "4.3.0"):
        kits.unpack_kit(kits.build_kit(version, cache), cache / version)
    return cache


def _free_block() -> str:
    """``127.A.B``, a loopback block nobody listens in (other test runs may run at once)."""
    while True:
        block = f"127.{random.randint(100, 199)}.{random.randint(0, 255)}"
        with socket.socket() as probe:
            try:
                probe.bind((f"{block}.11", 9540))
            except OSError:
                continue
        return block


class Cluster:
    """A sandbox folder with one region of stripes; starts servers with the kit's scripts."""

    def __init__(
        self,
        root: Path,
        kit_cache: Path,
        *,
        stripes: int = 1,
        servers: int = 2,
        persistent: bool = True,
        version: str = "4.2.0",
        reconnect_window_s: float = 5.0,
        sync_s: float = SYNC_S,
    ) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.kit_cache = kit_cache
        self.block = _free_block()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.clients: list[Path] = []
        self.servers: dict[str, dict[str, Any]] = {}
        layout = []
        for s in range(1, stripes + 1):
            members = []
            for n in range(1, servers + 1):
                name = f"tsa-{s}{'abcdefgh'[n - 1]}"
                host = f"{self.block}.{10 * s + n}"
                home = root / "hosts" / host
                member = {
                    "name": name,
                    "host": host,
                    "data": str(home / "data" / name),
                    "logs": str(home / "logs" / name),
                    "tsa_port": 9510,
                    "jmx_port": 9520,
                    "group_port": 9530,
                    "management_port": 9540,
                }
                members.append(member)
                self.servers[name] = {**member, "stripe": f"stripe{s}", "home": home}
            layout.append({"name": f"stripe{s}", "servers": members})
        (root / "sandbox.json").write_text(
            json.dumps(
                {
                    "dir": str(root),
                    "journal": str(root / "journal.jsonl"),
                    "faults_dir": str(root / "faults"),
                    "ledger_dir": str(root / "ledgers"),
                    "timing": {"start_s": 0.2, "election_s": ELECTION_S, "sync_s": sync_s},
                    "servers": {
                        n: {
                            "region": "east",
                            "stripe": i["stripe"],
                            "host": i["host"],
                            "tsa_port": 9510,
                            "management_port": 9540,
                        }
                        for n, i in self.servers.items()
                    },
                    "clients": {
                        f"app-{n}": {"region": "east", "host": f"{self.block}.{200 + n}"}
                        for n in range(1, 4)
                    },
                }
            )
        )
        for info in self.servers.values():
            tcconfig.write_tc_config(
                info["home"] / "etc" / "tc-config.xml",
                stripes=layout,
                persistent=persistent,
                reconnect_window_s=reconnect_window_s,
                election_s=ELECTION_S,
            )
            self.install(info["name"], version)

    # ---------------------------------------------------------------- kits

    def kit(self, name: str) -> Path:
        return Path(self.servers[name]["home"]) / "bigmemory-max"

    def install(self, name: str, version: str, license_version: str | None = None) -> None:
        """Put kit ``version`` (and a license for it) in the server's kit root."""
        root = self.kit(name)
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(self.kit_cache / version, root, symlinks=True)
        license.write_license(
            root / "terracotta-license.key",
            expiry=datetime.date.today() + datetime.timedelta(days=365),
            version=license_version or ".".join(version.split(".")[:2]),
        )

    def config(self, name: str) -> Path:
        return Path(self.servers[name]["home"]) / "etc" / "tc-config.xml"

    # ---------------------------------------------------------------- processes

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Run start-tc-server.sh in its own session, console to logs/<name>.console.log."""
        assert name not in self.procs, f"{name} was started and not waited for"
        console = self.servers[name]["home"] / "logs" / f"{name}.console.log"
        console.parent.mkdir(parents=True, exist_ok=True)
        with console.open("ab") as out:
            proc = subprocess.Popen(
                [
                    str(self.kit(name) / "server/bin/start-tc-server.sh"),
                    "-f",
                    str(self.config(name)),
                    "-n",
                    name,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=ENV,
            )
        self.procs[name] = proc
        return proc

    def script(self, name: str, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kit(name) / "server/bin" / script), *args],
            capture_output=True,
            text=True,
            timeout=30,
            env=ENV,
            check=False,
        )

    def stop(self, name: str, force: bool = False) -> subprocess.CompletedProcess[str]:
        args = ["-f", str(self.config(name)), "-n", name] + (["--force"] if force else [])
        return self.script(name, "stop-tc-server.sh", *args)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            proc.wait(timeout=10)

    def wait_exit(self, name: str, timeout: float = 10.0) -> int:
        proc = self.procs.pop(name)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.procs[name] = proc
            raise

    def close(self) -> None:
        for app in self.clients:
            subprocess.run(
                [str(app / "bin/app.sh"), "stop"],
                capture_output=True,
                timeout=30,
                env=ENV,
                check=False,
            )
        for name in list(self.procs):
            self.kill(name)
        for pid_file in (self.root / "run").glob("*.pid"):
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)

    # ---------------------------------------------------------------- observing

    def rest(
        self, name: str, path: str, method: str = "GET", body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        info = self.servers[name]
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://{info['host']}:9540{API}{path}", data=data, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def state(self, name: str) -> str | None:
        try:
            return str(self.rest(name, "/local/stat")[1]["state"])
        except (OSError, http.client.HTTPException):  # a server stopping mid-answer
            return None

    def wait_state(self, name: str, state: str, timeout: float = 10.0) -> float:
        """Wait until ``name`` is in ``state``; returns the time it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.state(name) == state:
                return time.monotonic() - start
            time.sleep(0.02)
        raise AssertionError(f"{name} is {self.state(name)}, not {state}, after {timeout} s")

    def holds_state(self, name: str, state: str, until: float) -> None:
        """``name`` is in ``state`` at every look until the wall-clock time ``until``: for a
        decision the server journals nothing about (it polls every 0.05 s)."""
        while time.time() < until:
            assert self.state(name) == state, f"{name} left {state}: {self.state(name)}"
            time.sleep(0.02)

    def wait_log(self, name: str, text: str, timeout: float = 10.0) -> None:
        """Until ``name``'s console log holds ``text``."""
        console = self.servers[name]["home"] / "logs" / f"{name}.console.log"
        deadline = time.monotonic() + timeout
        while text not in console.read_text():
            assert time.monotonic() < deadline, f"{name} did not log {text!r}"
            time.sleep(0.02)

    def events(self, event: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in journal.read(self.root / "journal.jsonl")
            if e["event"] == event and all(e.get(k) == v for k, v in match.items())
        ]

    def write(self, name: str, key: str, value: str) -> None:
        protocol.write_key(self.servers[name]["host"], 9510, key, value)

    def read(self, name: str, key: str) -> str | None:
        return protocol.read_key(self.servers[name]["host"], 9510, key)

    # ---------------------------------------------------------------- clients

    def install_client(self, name: str, version: str, rate: float = 40.0) -> Path:
        app = self.root / "hosts" / f"app-{name}" / "app"
        clientapp.install_client_app(app, self.kit_cache / version, name=name, rate_per_s=rate)
        self.clients.append(app)
        return app


@pytest.fixture
def make_cluster(tmp_path: Path, kit_cache: Path) -> Iterator[Callable[..., Cluster]]:
    clusters: list[Cluster] = []

    def make(**kwargs: Any) -> Cluster:
        cluster = Cluster(tmp_path / f"c{len(clusters)}", kit_cache, **kwargs)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()


def started_pair(cluster: Cluster, active: str = "tsa-1a", mirror: str = "tsa-1b") -> None:
    cluster.start(active)
    cluster.wait_state(active, "ACTIVE-COORDINATOR")
    cluster.start(mirror)
    cluster.wait_state(mirror, "PASSIVE-STANDBY")


def test_election_then_sync_to_standby(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    cluster.start("tsa-1a")
    cluster.start("tsa-1b")
    took = cluster.wait_state("tsa-1a", "ACTIVE-COORDINATOR")
    assert took >= ELECTION_S * 0.5
    cluster.wait_state("tsa-1b", "PASSIVE-STANDBY")
    states = [(e["server"], e["state"]) for e in cluster.events("server_state")]
    assert states.index(("tsa-1b", "PASSIVE-UNINITIALIZED")) < states.index(
        ("tsa-1b", "PASSIVE-STANDBY")
    )
    uninit = cluster.events("server_state", server="tsa-1b", state="PASSIVE-UNINITIALIZED")[0]
    standby = cluster.events("server_state", server="tsa-1b", state="PASSIVE-STANDBY")[0]
    assert standby["t"] - uninit["t"] >= SYNC_S * 0.9  # how close to sync_s: make bench
    assert uninit["region"] == "east" and uninit["stripe"] == "stripe1"
    assert uninit["version"] == "4.2.0"
    log = (cluster.servers["tsa-1a"]["home"] / "logs/tsa-1a.console.log").read_text()
    assert "Becoming State[ ACTIVE-COORDINATOR ]" in log
    log = (cluster.servers["tsa-1b"]["home"] / "logs/tsa-1b/terracotta-server.log").read_text()
    assert "Moved to State[ PASSIVE-STANDBY ]" in log
    assert (cluster.root / "run/server-tsa-1a.pid").is_file()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, kit_cache: Path) -> Iterator[Cluster]:
    """A running stripe (tsa-1a ACTIVE, tsa-1b PASSIVE-STANDBY) that tests only look at."""
    cluster = Cluster(tmp_path_factory.mktemp("pair") / "sb", kit_cache)
    try:
        started_pair(cluster)
        yield cluster
    finally:
        cluster.close()


def test_server_stat_output_exactly(pair: Cluster) -> None:
    a, b = pair.servers["tsa-1a"]["host"], pair.servers["tsa-1b"]["host"]
    down = f"{pair.block}.99"
    result = pair.script("tsa-1a", "server-stat.sh", "-s", f"{a}:9540,{b}:9540,{down}:9540")
    assert result.returncode == 0
    assert result.stdout == (
        "tsa-1a.health: OK\ntsa-1a.role: ACTIVE\ntsa-1a.state: ACTIVE-COORDINATOR\n"
        "tsa-1a.port: 9540\ntsa-1a.group name: stripe1\n\n"
        "tsa-1b.health: OK\ntsa-1b.role: PASSIVE\ntsa-1b.state: PASSIVE-STANDBY\n"
        "tsa-1b.port: 9540\ntsa-1b.group name: stripe1\n\n"
        f"{down}.health: unknown\n{down}.role: unknown\n{down}.state: unknown\n"
        f"{down}.port: 9540\n{down}.group name: unknown\n"
        f"{down}.error: Connection refused to {down}:9540. Is the TSA running?\n\n"
    )
    by_config = pair.script("tsa-1b", "server-stat.sh", "-f", str(pair.config("tsa-1b")))
    assert by_config.returncode == 0
    assert by_config.stdout == "\n".join(result.stdout.split("\n")[:12]) + "\n"


def test_rest_stat_topology_and_config(pair: Cluster) -> None:
    assert pair.rest("tsa-1a", "/local/stat") == (
        200,
        {
            "health": "OK",
            "role": "ACTIVE",
            "state": "ACTIVE-COORDINATOR",
            "managementPort": "9540",
            "serverGroupName": "stripe1",
            "name": "tsa-1a",
        },
    )
    assert pair.rest("tsa-1b", "/local/stat")[1]["role"] == "PASSIVE"
    status, topology = pair.rest("tsa-1b", "/agents/topologies/servers")
    assert status == 200
    group = topology["entities"][0]["serverGroupEntities"][0]
    assert group["name"] == "stripe1"
    assert [
        (s["attributes"]["Name"], s["attributes"]["State"], s["attributes"]["Version"])
        for s in group["servers"]
    ] == [
        ("tsa-1a", "ACTIVE-COORDINATOR", "Terracotta Enterprise 4.2.0"),
        ("tsa-1b", "PASSIVE-STANDBY", "Terracotta Enterprise 4.2.0"),
    ]
    host = pair.servers["tsa-1a"]["host"]
    with urllib.request.urlopen(f"http://{host}:9510/config", timeout=5) as response:
        assert response.read().decode() == pair.config("tsa-1a").read_text()
    assert pair.rest("tsa-1a", "/no/such")[0] == 404


def test_writes_reach_the_standby_and_passives_do_not_serve(pair: Cluster) -> None:
    pair.write("tsa-1a", "k1", "v1")
    assert pair.read("tsa-1a", "k1") == "v1"
    with pytest.raises(protocol.NotActive):
        pair.read("tsa-1b", "k1")
    objectdb = pair.servers["tsa-1b"]["home"] / "data/tsa-1b/objectdb/store.jsonl"
    assert '"k1"' in objectdb.read_text()  # acknowledged only once the mirror has it


def test_stop_script_messages(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    started_pair(cluster)
    # the mirror stops fine
    result = cluster.stop("tsa-1b")
    assert (result.returncode, result.stdout) == (0, "Stop success. Response code 200\n")
    assert cluster.wait_exit("tsa-1b") == 0
    # an active without a standby is not stopped without --force
    refused = cluster.stop("tsa-1a")
    assert refused.returncode == 1
    assert refused.stdout == (
        "Unexpected error while stopping server\n"
        "java.io.IOException: Error stopping server: No passive server available in "
        "Standby mode. Use force option to stop the server.\n"
    )
    assert cluster.state("tsa-1a") == "ACTIVE-COORDINATOR"
    forced = cluster.stop("tsa-1a", force=True)
    assert forced.stdout == "Stop success. Response code 200\n"
    assert cluster.wait_exit("tsa-1a") == 0
    host = cluster.servers["tsa-1a"]["host"]
    gone = cluster.stop("tsa-1a")
    assert (gone.returncode, gone.stdout) == (
        1,
        (
            f"Unable to connect to host '{host}', port 9540. Are you sure there is a Terracotta "
            "server instance running there?\n"
        ),
    )
    assert cluster.events("server_state", server="tsa-1a")[-1]["state"] == "STOP-STATE"
    assert cluster.events("server_process", server="tsa-1a", action="exit")[-1]["exit_code"] == 0
    assert not (cluster.root / "run/server-tsa-1a.pid").exists()


def test_failover_to_standby_and_failback(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    started_pair(cluster)
    cluster.write("tsa-1a", "before", "1")
    assert cluster.stop("tsa-1a").returncode == 0
    cluster.wait_state("tsa-1b", "ACTIVE-COORDINATOR")
    assert cluster.wait_exit("tsa-1a") == 0
    stopped = cluster.events("server_state", server="tsa-1a", state="STOP-STATE")[-1]
    became = cluster.events("server_state", server="tsa-1b", state="ACTIVE-COORDINATOR")[-1]
    assert became["t"] - stopped["t"] >= ELECTION_S * 0.9
    assert cluster.read("tsa-1b", "before") == "1"
    cluster.write("tsa-1b", "during", "2")
    # the old active comes back as a mirror: its persistent data is dirty, it restarts (11)
    cluster.start("tsa-1a")
    cluster.wait_state("tsa-1a", "PASSIVE-STANDBY")
    backups = cluster.events("dirty_backup", server="tsa-1a", action="created")
    assert len(backups) == 1
    assert Path(backups[0]["path"]).parent.name == "dirty-objectdb-backup"
    # fail back
    assert cluster.stop("tsa-1b").returncode == 0
    assert cluster.wait_exit("tsa-1b") == 0
    cluster.wait_state("tsa-1a", "ACTIVE-COORDINATOR")
    assert cluster.read("tsa-1a", "during") == "2"
    cluster.start("tsa-1b")
    cluster.wait_state("tsa-1b", "PASSIVE-STANDBY")


def test_no_failover_to_an_uninitialized_mirror(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(sync_s=30.0, persistent=False)
    cluster.start("tsa-1a")
    cluster.wait_state("tsa-1a", "ACTIVE-COORDINATOR")
    cluster.start("tsa-1b")
    cluster.wait_state("tsa-1b", "PASSIVE-UNINITIALIZED")
    assert cluster.stop("tsa-1a").stdout.startswith("Unexpected error while stopping server")
    cluster.kill("tsa-1a")
    # Logged when the link ends, where a standby would start its election instead.
    cluster.wait_log(
        "tsa-1b",
        "Lost the active tsa-1a before the sync completed; this server "
        "cannot take over and waits for an active",
    )
    assert cluster.state("tsa-1b") == "PASSIVE-UNINITIALIZED"
    assert not cluster.events("server_state", server="tsa-1b", state="ACTIVE-COORDINATOR")


def test_dirty_backup_on_a_persistent_mirror_restart(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    started_pair(cluster)
    cluster.write("tsa-1a", "k", "v")
    cluster.kill("tsa-1b")
    cluster.start("tsa-1b")
    cluster.wait_state("tsa-1b", "PASSIVE-STANDBY")
    data = cluster.servers["tsa-1b"]["home"] / "data/tsa-1b"
    backups = list((data / "dirty-objectdb-backup").iterdir())
    assert len(backups) == 1
    assert len(backups[0].name) == len("dirty-objectdb-") + 16
    assert '"k"' in (backups[0] / "store.jsonl").read_text()
    exits = [
        e["exit_code"] for e in cluster.events("server_process", server="tsa-1b", action="exit")
    ]
    assert exits == [11]  # the SIGKILLed run journaled nothing; the dirty run asked a restart
    assert len(cluster.events("server_process", server="tsa-1b", action="start")) == 3
    assert cluster.events("dirty_backup", server="tsa-1b")[0]["path"] == str(backups[0])
    assert '"k"' in (data / "objectdb/store.jsonl").read_text()


def test_last_active_recovers_from_disk(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    started_pair(cluster)
    cluster.write("tsa-1a", "kept", "yes")
    assert cluster.stop("tsa-1b").returncode == 0
    cluster.wait_exit("tsa-1b")
    assert cluster.stop("tsa-1a", force=True).returncode == 0
    cluster.wait_exit("tsa-1a")
    # the mirror alone waits for the last active
    cluster.start("tsa-1b")
    cluster.wait_state("tsa-1b", "START-STATE")
    # Its election runs from its START-STATE on: it journals no decision, so it is watched
    # through the election time and as long again.
    began = cluster.events("server_state", server="tsa-1b", state="START-STATE")[-1]["t"]
    cluster.holds_state("tsa-1b", "START-STATE", began + ELECTION_S * 2)
    assert not cluster.events("server_state", server="tsa-1b", state="ACTIVE-COORDINATOR")
    cluster.start("tsa-1a")
    cluster.wait_state("tsa-1a", "ACTIVE-COORDINATOR")
    assert cluster.read("tsa-1a", "kept") == "yes"
    cluster.wait_state("tsa-1b", "PASSIVE-STANDBY")


def test_non_persistent_stripe_loses_its_data(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(persistent=False)
    started_pair(cluster)
    cluster.write("tsa-1a", "lost", "yes")
    cluster.kill("tsa-1b")
    cluster.kill("tsa-1a")
    cluster.start("tsa-1a")
    cluster.wait_state("tsa-1a", "ACTIVE-COORDINATOR")
    assert cluster.read("tsa-1a", "lost") is None
    assert not (cluster.servers["tsa-1a"]["home"] / "data/tsa-1a/objectdb").exists()


@pytest.mark.parametrize("problem", ["missing", "expired", "product", "signature"])
def test_start_refused_without_a_valid_license(
    make_cluster: Callable[..., Cluster], problem: str
) -> None:
    cluster = make_cluster(servers=1)
    key = cluster.kit("tsa-1a") / "terracotta-license.key"
    if problem == "missing":
        key.unlink()
    elif problem == "signature":
        key.write_text(key.read_text().replace("Licensee: ", "Licensee: x"))
    else:
        license.write_license(
            key,
            expiry=datetime.date(2020, 1, 1) if problem == "expired" else datetime.date(2099, 1, 1),
            product="Ehcache" if problem == "product" else "BigMemory Max",
        )
    cluster.start("tsa-1a")
    assert cluster.wait_exit("tsa-1a") == 2
    console = (cluster.servers["tsa-1a"]["home"] / "logs/tsa-1a.console.log").read_text()
    reason = {
        "missing": "License key not found",
        "expired": "Your Terracotta license has expired on 2020-01-01",
        "product": "it is for product 'Ehcache'",
        "signature": "it has an invalid signature",
    }[problem]
    assert "FATAL - License key" in console and reason in console
    assert cluster.events("server_process", server="tsa-1a", action="exit")[0]["exit_code"] == 2


def test_minor_version_refused_but_maintenance_mix_works(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(servers=3)
    cluster.install("tsa-1b", "4.3.0")
    cluster.install("tsa-1c", "4.2.1")
    cluster.start("tsa-1a")
    cluster.wait_state("tsa-1a", "ACTIVE-COORDINATOR")
    cluster.start("tsa-1b")
    assert cluster.wait_exit("tsa-1b") == 2
    console = (cluster.servers["tsa-1b"]["home"] / "logs/tsa-1b.console.log").read_text()
    assert "runs 4.2.0 and this server runs 4.3.0 (a different minor version)" in console
    cluster.start("tsa-1c")
    cluster.wait_state("tsa-1c", "PASSIVE-STANDBY")
    status, topology = cluster.rest("tsa-1a", "/agents/topologies/servers")
    assert status == 200
    versions = {
        s["attributes"]["Name"]: s["attributes"]["Version"]
        for s in topology["entities"][0]["serverGroupEntities"][0]["servers"]
    }
    assert versions == {
        "tsa-1a": "Terracotta Enterprise 4.2.0",
        "tsa-1c": "Terracotta Enterprise 4.2.1",
    }


def test_port_in_use_is_a_startup_error(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(servers=1)
    cluster.start("tsa-1a")
    cluster.wait_state("tsa-1a", "ACTIVE-COORDINATOR")
    second = cluster.procs.pop("tsa-1a")
    cluster.start("tsa-1a")
    assert cluster.wait_exit("tsa-1a") == 2
    cluster.procs["tsa-1a"] = second
    console = (cluster.servers["tsa-1a"]["home"] / "logs/tsa-1a.console.log").read_text()
    assert "is another server using that port?" in console


def _ledger(cluster: Cluster, client: str) -> list[dict[str, Any]]:
    path = cluster.root / "ledgers" / f"{client}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _wait_ledger(
    cluster: Cluster, client: str, count: int, timeout: float = 15.0, **match: Any
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [r for r in _ledger(cluster, client) if all(r.get(k) == v for k, v in match.items())]
        if len(rows) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{client} has not acknowledged {count} writes {match}")


def _app(app: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(app / "bin/app.sh"), command],
        capture_output=True,
        text=True,
        timeout=30,
        env=ENV,
        check=False,
    )


def test_no_acknowledged_write_lost_across_failover_under_load(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(stripes=2)
    started_pair(cluster, "tsa-1a", "tsa-1b")
    started_pair(cluster, "tsa-2a", "tsa-2b")
    app = cluster.install_client("app-1", "4.2.0", rate=60)
    assert sorted(p.name for p in (app / "lib").iterdir()) == [
        "ehcache-ee-2.10.0.jar",
        "terracotta-toolkit-runtime-ee-4.2.0.jar",
    ]
    assert _app(app, "start").returncode == 0
    assert _app(app, "status").returncode == 0
    _wait_ledger(cluster, "app-1", 10, stripe="stripe1")
    _wait_ledger(cluster, "app-1", 10, stripe="stripe2")
    assert cluster.stop("tsa-1a").returncode == 0
    cluster.wait_state("tsa-1b", "ACTIVE-COORDINATOR")
    before = len(_ledger(cluster, "app-1"))
    _wait_ledger(cluster, "app-1", before + 20)
    assert _app(app, "stop").stdout == "stopped\n"
    assert _app(app, "status").returncode == 3
    rows = _ledger(cluster, "app-1")
    actives = {"stripe1": "tsa-1b", "stripe2": "tsa-2a"}
    for stripe, server in actives.items():
        mine = {r["key"]: r["value"] for r in rows if r["stripe"] == stripe}
        assert mine
        host = cluster.servers[server]["host"]
        assert protocol.read_keys(host, 9510, list(mine)) == mine
        assert all(protocol.stripe_for_key(key, 2) == int(stripe[-1]) - 1 for key in mine)
    assert cluster.events("client_process", client="app-1", action="start")[0]["version"] == "4.2.0"
    assert cluster.events("client_process", client="app-1", action="stop")[0]["exit_code"] == 0
    assert not (cluster.root / "run/client-app-1.pid").exists()


def test_client_refuses_a_server_of_another_minor_version(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(servers=1)
    cluster.start("tsa-1a")
    cluster.wait_state("tsa-1a", "ACTIVE-COORDINATOR")
    app = cluster.install_client("app-2", "4.3.0")
    assert _app(app, "start").returncode == 0
    deadline = time.monotonic() + 10
    while _app(app, "status").returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _app(app, "status").returncode == 3
    stop = cluster.events("client_process", client="app-2", action="stop")[0]
    assert stop["exit_code"] == 2 and stop["version"] == "4.3.0"
    assert "different minor version" in (app / "logs/app.log").read_text()
    assert _ledger(cluster, "app-2") == []


def test_client_upgrade_is_replacing_its_jars(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(servers=1, reconnect_window_s=0.5)
    cluster.start("tsa-1a")
    cluster.wait_state("tsa-1a", "ACTIVE-COORDINATOR")
    app = cluster.install_client("app-3", "4.2.0")
    for jar in (app / "lib").iterdir():
        jar.unlink()
    for jar in clientapp.client_jars(cluster.kit_cache / "4.2.1" / "apis"):
        shutil.copy(jar, app / "lib" / jar.name)
    assert _app(app, "start").returncode == 0
    _wait_ledger(cluster, "app-3", 3)
    assert cluster.events("client_process", client="app-3", action="start")[0]["version"] == "4.2.1"
    # the only server goes away for longer than the reconnect window: the client gives up
    cluster.stop("tsa-1a", force=True)
    deadline = time.monotonic() + 10
    while _app(app, "status").returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop = cluster.events("client_process", client="app-3", action="stop")[0]
    assert stop["exit_code"] == 3 and "reconnect window" in stop["reason"]
