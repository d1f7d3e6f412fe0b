"""The WAN cycle's order and safety branches, driven through ``cycle_orchestrators`` over a
scripted fake host (tests/unit/fake_hosts.py) and a scripted status probe: no orchestrator is
touched while a server is not ready (docs/safety.md rule 6); standby orchestrators stop before
masters, every one is installed before any starts, masters start before standbys (the order
docs/terracotta.md gives); one that does not come back within ``orchestrator_s`` fails naming
it; a rerun skips finished orchestrators. The whole cycle against the sandbox:
tests/e2e/test_wan_upgrade.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory, Orchestrator
from bm_upgrade.probes import LogMark, OrchestratorStatus, ReplicaSync, Runner, WanConfig
from bm_upgrade.probes.processes import PROCESS_LIST
from bm_upgrade.procedure import halt
from bm_upgrade.procedure.kit import StagedKit
from bm_upgrade.procedure.servers import StepContext
from bm_upgrade.procedure.wan import cycle_orchestrators
from bm_upgrade.remote.quoting import MARK
from tests.unit.fake_hosts import SYNCING, Done, FakeHosts, marked, version_sh
from tests.unit.inventories import two_regions_wan

LOG = logging.getLogger("tests.unit.wan_branches")
WAN_NS = "http://config.wan.terracottatech.com"
EAST_M, EAST_S, WEST_M, WEST_S = "east-wan-m", "east-wan-s", "west-wan-m", "west-wan-s"


@dataclass
class FakeOrchestrator:
    """One orchestrator as its host shows it.

    Attributes:
        kit: what its kit root's ``version.sh`` prints.
        running: a process of it runs (``ps`` shows it).
        answers: its ``<bind>`` port listens while it runs (False: it never comes up).
    """

    orch: Orchestrator
    kit: str
    running: bool = True
    answers: bool = True


class FakeWan(FakeHosts):
    """The orchestrator hosts: wan.xml, ``ps``, ``version.sh``, ``stop-wan.sh``, a detached
    ``start-wan.sh`` and the kit swap's four commands (look, room, unpack, swap); and
    :meth:`probe`, the look at process, port, version and replication log. East is the
    master region: its running orchestrators' logs show every running west orchestrator
    successfully synchronized for cache ``orders``."""

    def __init__(self, inventory: Inventory, servers: dict[str, tuple[str, str]]) -> None:
        super().__init__(inventory, "4.2.1", servers)
        self.orchs = {o.host: FakeOrchestrator(o, "4.2.0") for _, o in inventory.orchestrators()}
        self.resyncs = True  # east's logs show west's replicas synchronized

    def answer(self, host: str, line: str) -> tuple[str, Done]:
        fake = self.orchs[host]
        if line.startswith("cat -- "):
            xml = (
                f'<config xmlns="{WAN_NS}"><bind host="{host}" port="9889"/><logs>/var/wan</logs>'
                '<cacheManager><cache name="orders"/></cacheManager></config>'
            )
            return "wan.xml", Done(0, xml)
        if line.startswith(PROCESS_LIST):
            running = f"java -cp x com.tc.Wan start-wan.sh -f {fake.orch.wan_xml}"
            return "ps", Done(0, running + "\n" if fake.running else "")
        if "stop-wan.sh" in line:
            fake.running = False
            return "stop", Done(0, "")
        if "start-wan.sh" in line:
            fake.running = True
            return "start", Done(0, "4242\n")
        if line.startswith(f"echo '{MARK}version'"):
            found = ("root_exists", "root_license", "staged_kit", "staged_license")
            lines: dict[str, list[str]] = {name: [] for name in found}
            return "look", Done(0, marked(version=[version_sh(fake.kit)], **lines))
        if "df -Pk" in line:
            return "room", Done(0, marked(**{"0": ["/dev/sda1 9999999 1 9999998 1% /"]}))
        if "tar -xzf" in line:
            return "unpack", Done(0, "bigmemory-max\n" + marked(version=[version_sh("4.2.1")]))
        if f"{MARK}installed" in line:  # the swap, which ends with the new kit's version.sh
            fake.kit = "4.2.1"
            return "swap", Done(0, marked(installed=[version_sh("4.2.1")]))
        if line.endswith("server/bin/version.sh"):
            return "version", Done(0, version_sh(fake.kit))
        raise AssertionError(f"unexpected command on {host}: {line}")

    def probe(
        self,
        conn: Runner,
        orch: Orchestrator,
        timeout: float = 5.0,
        *,
        config: WanConfig | None = None,
        since: LogMark | None = None,
        version: bool = True,
    ) -> OrchestratorStatus:
        assert config == WanConfig((orch.host, 9889), "/var/wan", ("orders",))
        fake = self.orchs[orch.host]
        up = fake.running and fake.answers
        syncs = tuple(
            ReplicaSync("master", "orders", f"{orch.host}:9889", f"{other}:9889", True)
            for other, peer in self.orchs.items()
            if up and self.resyncs and orch.host.startswith("10.0.")
            if other.startswith("10.1.") and peer.running
        )
        return OrchestratorStatus(
            orch.name,
            orch.host,
            running=fake.running,
            listening=up,
            version=fake.kit if version else None,
            bind=f"{orch.host}:9889",
            syncs=syncs,
            log=LogMark("/var/wan/wan.log", 100),
        )

    def did(self) -> list[tuple[str, str]]:
        """(orchestrator, kind) of every stop, kit swap and start, in order."""
        changes = ("stop", "swap", "start")
        return [(self.orchs[h].orch.name, k) for h, k in self.ran if k in changes]


def wan(
    servers: dict[str, tuple[str, str]] | None = None, halted: str | None = None
) -> tuple[StepContext, FakeWan]:
    """Two regions, each a master and a standby orchestrator on 4.2.0; servers on 4.2.1."""
    data = two_regions_wan()
    data.update(probe_via="ssh", policy={"timeouts": {"orchestrator_s": 0.2}})
    inventory = Inventory.model_validate(data)
    hosts = FakeWan(inventory, servers or {})
    staged = {
        host: StagedKit(host, "/srv/staged/k-4.2.1.tar.gz", "/srv/staged/license.key", "up", 1)
        for host in hosts.orchs
    }
    ctx = StepContext.create(inventory, hosts, target="4.2.1", staged=staged, logger=LOG)
    ctx.poll_s, ctx.halted = 0.01, (lambda: halted)
    return ctx, hosts


@pytest.fixture(autouse=True)
def no_stop_requested() -> Iterator[None]:
    halt.reset()
    yield
    halt.reset()


def test_standbys_stop_first_all_install_then_masters_start_first() -> None:
    ctx, hosts = wan()
    records = cycle_orchestrators(ctx, hosts.probe)
    assert [(r.node, r.action, r.skipped) for r in records] == [
        (EAST_S, "stop", False),
        (WEST_S, "stop", False),
        (EAST_M, "stop", False),
        (WEST_M, "stop", False),
        (EAST_M, "install", False),
        (EAST_S, "install", False),
        (WEST_M, "install", False),
        (WEST_S, "install", False),
        (EAST_M, "start", False),
        (WEST_M, "start", False),
        (EAST_S, "start", False),
        (WEST_S, "start", False),
        ("test", "confirm-wan", False),
    ]
    # Orchestrators of one stage work side by side: compare each stage as a set.
    did = hosts.did()
    stages = [set(did[0:2]), set(did[2:4]), set(did[4:8]), set(did[8:10]), set(did[10:12])]
    assert len(did) == 12
    assert stages == [
        {(EAST_S, "stop"), (WEST_S, "stop")},
        {(EAST_M, "stop"), (WEST_M, "stop")},
        {(name, "swap") for name in (EAST_M, EAST_S, WEST_M, WEST_S)},
        {(EAST_M, "start"), (WEST_M, "start")},
        {(EAST_S, "start"), (WEST_S, "start")},
    ]
    assert {f.orch.name: (f.running, f.kit) for f in hosts.orchs.values()} == dict.fromkeys(
        (EAST_M, EAST_S, WEST_M, WEST_S), (True, "4.2.1")
    )
    # wan.xml is read once per orchestrator and cycle; every later look is the probe.
    assert [hosts.on(host).count("wan.xml") for host in hosts.orchs] == [1, 1, 1, 1]


def test_an_orchestrator_that_does_not_come_back_fails_naming_it_and_a_rerun_goes_on() -> None:
    ctx, hosts = wan()
    east_m = hosts.orchs["10.0.8.1"]
    east_m.answers = False
    with pytest.raises(StepFailed) as failed:
        cycle_orchestrators(ctx, hosts.probe)
    assert failed.value.node == EAST_M
    assert str(failed.value) == (
        f"orchestrator {EAST_M} on 10.0.8.1 did not come up on 4.2.1 (still starting after "
        f"0.2 s); check /opt/terracotta/{EAST_M}.console.log (license with WAN? same "
        "version everywhere?), then rerun; the other orchestrators now: "
        f"{EAST_S} stopped (kit 4.2.1), {WEST_M} up on 4.2.1, {WEST_S} stopped (kit 4.2.1); "
        "no server was touched by the WAN cycle"
    )
    # The other master of the stage came up; no standby was started.
    assert hosts.did()[-2:] in (
        [(EAST_M, "start"), (WEST_M, "start")],
        [(WEST_M, "start"), (EAST_M, "start")],
    )
    assert [f.running for f in hosts.orchs.values()] == [True, False, True, False]

    east_m.answers = True
    hosts.ran.clear()
    again = cycle_orchestrators(ctx, hosts.probe)
    assert [(r.node, r.action, r.skipped) for r in again] == [
        (EAST_M, "upgrade", True),
        (WEST_M, "upgrade", True),
        (EAST_S, "start", False),
        (WEST_S, "start", False),
        ("test", "confirm-wan", False),
    ]
    assert sorted(hosts.did()) == [(EAST_S, "start"), (WEST_S, "start")]


def test_a_rerun_after_the_cycle_skips_every_orchestrator() -> None:
    ctx, hosts = wan()
    cycle_orchestrators(ctx, hosts.probe)
    hosts.ran.clear()
    again = cycle_orchestrators(ctx, hosts.probe)
    assert [(r.node, r.action, r.skipped, r.reason) for r in again] == [
        (EAST_S, "upgrade", True, "already runs 4.2.1"),
        (WEST_S, "upgrade", True, "already runs 4.2.1"),
        (EAST_M, "upgrade", True, "already runs 4.2.1"),
        (WEST_M, "upgrade", True, "already runs 4.2.1"),
        ("test", "confirm-wan", False, ""),
    ]
    assert hosts.did() == []


def test_no_orchestrator_is_touched_while_a_server_is_not_ready() -> None:
    ctx, hosts = wan({"west-s2-2": (SYNCING, "4.2.1")})
    with pytest.raises(StepFailed) as failed:
        cycle_orchestrators(ctx, hosts.probe)
    assert failed.value.node == "orchestrators"
    message = str(failed.value)
    assert message.startswith("the orchestrators were not touched: the servers are not all on")
    assert f"server west-s2-2 is {SYNCING}, not PASSIVE-STANDBY" in message
    assert [h for h, _ in hosts.ran if h in hosts.orchs] == []


def test_a_halted_run_stops_no_orchestrator() -> None:
    ctx, hosts = wan(halted="step restart_clients_2 of this run failed")
    with pytest.raises(StepFailed) as failed:
        cycle_orchestrators(ctx, hosts.probe)
    assert failed.value.node == EAST_S
    assert str(failed.value) == (
        "the orchestrator cycle (stop, upgrade, start every orchestrator) not started: "
        "step restart_clients_2 of this run failed"
    )
    assert hosts.did() == []


def test_the_cycle_waits_for_the_master_regions_log_to_show_every_replica_resynced() -> None:
    """Every orchestrator comes up, but east's replication logs never show a west replica
    successfully synchronized: the cycle fails at confirm-wan (a bounded wait), naming the
    replica region's cache and orchestrators."""
    ctx, hosts = wan()
    hosts.resyncs = False
    with pytest.raises(StepFailed) as failed:
        cycle_orchestrators(ctx, hosts.probe)
    assert failed.value.node == "orchestrators"
    assert str(failed.value) == (
        "the replica caches west/orders did not resync within 0.2 s: the master region's "
        "replication log shows no 'successfully synchronized' line for them since the "
        "restart, while every orchestrator is up on 4.2.1 and the servers and clients are "
        f"upgraded; check the replication logs of {WEST_M}, {WEST_S}, then rerun"
    )
    assert {f.running for f in hosts.orchs.values()} == {True}
