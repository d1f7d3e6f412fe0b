"""The client steps' safety branches, driven through ``upgrade_clients`` over a scripted fake
host (tests/unit/fake_hosts.py): no client is stopped while a server is not ready
(docs/safety.md rule 5); the kit's jars are checked before the client is stopped; a failed
swap puts the old jars back and starts the client again; a failed stop command leaves the
client on its untouched jars; a client that does not start on the new jars gets its kept
jars back and is started on them; a failing command is named by client, host and exit code,
never by its text; a finished client is skipped on a rerun. The same branches against real
sandbox clients: tests/e2e/test_client_swap.py and tests/e2e/test_faults_clients_wan.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Client, Inventory
from bm_upgrade.procedure import client_actions, halt
from bm_upgrade.procedure.clients import upgrade_clients
from bm_upgrade.procedure.kit import StagedKit
from bm_upgrade.procedure.servers import StepContext
from bm_upgrade.remote.quoting import echo_mark, shell
from tests.unit.fake_hosts import ACTIVE, SYNCING, Done, FakeHosts, marked
from tests.unit.inventories import client, minimal, server

OLD = ["ehcache-ee-2.10.0.jar", "terracotta-toolkit-runtime-ee-4.2.0.jar"]
NEW = ["ehcache-ee-2.10.1.jar", "terracotta-toolkit-runtime-ee-4.2.1.jar"]
KIT_DIRS = {"ehcache": "apis/ehcache/lib", "terracotta": "apis/toolkit/lib"}
H1, H2 = "10.0.1.1", "10.0.1.2"
SECRET = "s3cr3t-token"
KEPT = "/srv/staged/previous-jars-"
LOG = logging.getLogger("tests.unit.client_branches")


@dataclass
class FakeClient:
    """One application as its host shows it: whether it runs, what its lib_dir holds, and
    the exit code its start command gives."""

    client: Client
    running: bool = True
    lib: list[str] = field(default_factory=lambda: ["app.jar", *OLD])
    kept: list[str] = field(default_factory=list)
    start_exit: int = 0
    only_on_new: bool = False  # the start command fails only while lib holds the NEW jars
    stop_exit: int = 0
    stop_stops: bool = True
    dies_on_new: bool = False  # runs on the NEW jars for one status look, then exits

    def listing(self) -> list[str]:
        return sorted(self.lib)


class FakeClientHosts(FakeHosts):
    """The client hosts: the application's own commands, ``ls`` of lib_dir and the jar
    swap's three commands (prepare, swap, recover), from :attr:`clients` and :attr:`kit`."""

    def __init__(self, inventory: Inventory, servers: dict[str, tuple[str, str]]) -> None:
        super().__init__(inventory, "4.2.1", servers)
        self.clients = {c.host: FakeClient(c) for _, c in inventory.clients()}
        self.kit = list(NEW)
        self.swap_fails = False

    def answer(self, host: str, line: str) -> tuple[str, Done]:
        fake = self.clients[host]
        me = fake.client
        if line == me.status_command:
            running = fake.running
            if running and fake.dies_on_new and NEW[1] in fake.lib:
                fake.running = False  # seen once, gone at the next look
            return "status", Done(0 if running else 3, "")
        if line == shell(["ls", "-1p", "--", me.lib_dir]):
            return "ls", Done(0, "".join(f"{name}\n" for name in fake.listing()))
        if "tar -xzf" in line:
            found = [f"./bigmemory-max-4.2.1/{KIT_DIRS[j.split('-')[0]]}/{j}" for j in self.kit]
            return "prepare", Done(0, marked(kit=found, lib=fake.listing()))
        if line.startswith(f"set -e; cp -p -- {KEPT}"):
            fake.lib = [j for j in fake.lib if j not in OLD + NEW] + fake.kept
            fake.kept = []
            return "restore", Done(0, marked(lib=fake.listing()))
        if line.startswith(echo_mark("kept")):
            return "kept", Done(0, marked(kept=sorted(fake.kept), lib=fake.listing()))
        if line.startswith("set -e"):
            if self.swap_fails:
                return "swap", Done(1, "", "cp: cannot open the toolkit jar: Permission denied")
            fake.kept = [j for j in fake.lib if j in OLD]
            fake.lib = [j for j in fake.lib if j not in OLD] + NEW
            return "swap", Done(0, marked(lib=fake.listing()))
        if " then :; else " in line:
            complete = all(j in fake.lib for j in NEW)
            gone = OLD if complete else [j for j in NEW if j not in OLD]
            fake.lib = [j for j in fake.lib if j not in gone]
            return "recover", Done(0, marked(lib=fake.listing()))
        if line == me.stop_command:
            fake.running = fake.running and not fake.stop_stops
            return "stop", Done(fake.stop_exit, "")
        if line == me.start_command:
            refused = fake.start_exit if not fake.only_on_new or NEW[1] in fake.lib else 0
            fake.running = refused == 0
            return "start", Done(refused, "", "the application said no")
        raise AssertionError(f"unexpected command on {host}: {line}")


def cluster(
    servers: dict[str, tuple[str, str]] | None = None,
    halted: str | None = None,
) -> tuple[StepContext, FakeClientHosts]:
    """Two servers on 10.0.0.1-2, probed over SSH; clients app1 and app2 on their own hosts."""
    apps = [client("app1", H1), client("app2", H2)]
    for app in apps:
        app.update(status_command="app status", start_command=f"app start --token {SECRET}")
    data = minimal(probe_via="ssh", policy={"timeouts": {"client_s": 0.2}})
    data["regions"][0].update(
        clients=apps,
        stripes=[
            {
                "name": "stripe1",
                "servers": [server("tsa-a1", "10.0.0.1"), server("tsa-a2", "10.0.0.2")],
            }
        ],
    )
    inventory = Inventory.model_validate(data)
    hosts = FakeClientHosts(inventory, servers or {})
    staged = {
        host: StagedKit(host, "/srv/staged/k-4.2.1.tar.gz", "/srv/staged/license.key", "uploaded")
        for host in (H1, H2)
    }
    ctx = StepContext.create(inventory, hosts, target="4.2.1", staged=staged, logger=LOG)
    ctx.poll_s, ctx.halted = 0.01, (lambda: halted)
    return ctx, hosts


def apps(ctx: StepContext, *names: str) -> list[Client]:
    return [c for _, c in ctx.inventory.clients() if c.name in names]


@pytest.fixture(autouse=True)
def no_stop_requested(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No stop requested; a started client is not looked at again (one test sets it)."""
    monkeypatch.setattr(client_actions, "SETTLE_S", 0.0)
    halt.reset()
    yield
    halt.reset()


@pytest.mark.parametrize(
    ("servers", "named"),
    [
        ({"tsa-a2": (SYNCING, "4.2.1")}, f"server tsa-a2 is {SYNCING}, not PASSIVE-STANDBY"),
        ({"tsa-a1": (ACTIVE, "4.2.0")}, "tsa-a1 ACTIVE-COORDINATOR on 4.2.0"),
    ],
)
def test_no_client_is_touched_while_a_server_is_not_ready(
    servers: dict[str, tuple[str, str]], named: str
) -> None:
    ctx, hosts = cluster(servers)
    with pytest.raises(StepFailed) as failed:
        upgrade_clients(ctx, apps(ctx, "app1"))
    assert failed.value.node == "clients"
    message = str(failed.value)
    assert message.startswith(
        "the clients were not touched: the servers are not all on 4.2.1 with a "
        "PASSIVE-STANDBY mirror per stripe ("
    ), message
    assert named in message and message.endswith("); finish the server steps, then rerun")
    assert hosts.on(H1) == []
    assert (hosts.clients[H1].running, hosts.clients[H1].listing()) == (True, ["app.jar", *OLD])


def test_the_kits_jars_are_checked_before_the_client_is_stopped() -> None:
    ctx, hosts = cluster()
    hosts.kit = [NEW[0]]
    with pytest.raises(StepFailed) as failed:
        upgrade_clients(ctx, apps(ctx, "app1"))
    assert failed.value.node == "app1"
    assert str(failed.value) == (
        f"the staged kit /srv/staged/k-4.2.1.tar.gz on host {H1} holds {NEW[0]}, not one "
        f"ehcache-ee jar and {NEW[1]}; client app1 was not touched: stage the 4.2.1 kit "
        "again and rerun"
    )
    assert hosts.on(H1) == ["status", "ls", "prepare"]
    assert (hosts.clients[H1].running, hosts.clients[H1].listing()) == (True, ["app.jar", *OLD])


def test_a_failed_swap_puts_the_old_jars_back_and_starts_the_client_again() -> None:
    ctx, hosts = cluster()
    hosts.swap_fails = True
    with pytest.raises(StepFailed) as failed:
        upgrade_clients(ctx, apps(ctx, "app1"))
    assert failed.value.node == "app1"
    assert str(failed.value) == (
        f"the jar swap of client app1 on host {H1} (/opt/app/lib) exited 1: cp: cannot open "
        "the toolkit jar: Permission denied; it holds its old jars again "
        f"({', '.join(OLD)}); client app1 was started again on them; fix the cause and rerun"
    )
    assert hosts.on(H1) == [
        *("status", "ls", "prepare", "stop", "status", "ls"),
        *("swap", "recover", "start", "status", "ls"),
    ]
    assert (hosts.clients[H1].running, hosts.clients[H1].listing()) == (True, ["app.jar", *OLD])


def test_a_failing_start_command_names_client_host_and_exit_code_not_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx, hosts = cluster()
    hosts.clients[H1].start_exit = 3
    with caplog.at_level(logging.INFO, LOG.name), pytest.raises(StepFailed) as failed:
        upgrade_clients(ctx, apps(ctx, "app1"))
    assert failed.value.node == "app1"
    start = f"the start command of client app1 on host {H1} exited 3"
    assert str(failed.value) == (
        f"{start}; its 4.2.0 jars were put back, but starting client app1 on them failed "
        f"too ({start}): it is stopped; find in the application's own log why it does not "
        "start on the 4.2.1 jars, then rerun"
    )
    told = "\n".join([str(failed.value), *getattr(failed.value, "__notes__", [])])
    assert SECRET not in told and failed.value.__cause__ is None
    assert any(SECRET in r.getMessage() for r in caplog.records)
    assert hosts.on(H1)[-7:] == ["swap", "start", "status", "ls", "kept", "restore", "start"]
    assert (hosts.clients[H1].running, hosts.clients[H1].listing()) == (False, ["app.jar", *OLD])


def test_a_client_that_does_not_start_on_the_new_jars_is_started_on_its_kept_ones() -> None:
    ctx, hosts = cluster()
    hosts.clients[H1].start_exit, hosts.clients[H1].only_on_new = 2, True
    with pytest.raises(StepFailed) as failed:
        upgrade_clients(ctx, apps(ctx, "app1"))
    assert failed.value.node == "app1"
    assert str(failed.value) == (
        f"the start command of client app1 on host {H1} exited 2; its 4.2.0 jars were put "
        "back and client app1 was started on them; find in the application's own log why "
        "it does not start on the 4.2.1 jars, then rerun"
    )
    assert hosts.on(H1) == [
        *("status", "ls", "prepare", "stop", "status", "ls", "swap", "start"),
        *("status", "ls", "kept", "restore", "start", "status", "ls"),
    ]
    fake = hosts.clients[H1]
    assert (fake.running, fake.listing(), fake.kept) == (True, ["app.jar", *OLD], [])


def test_a_client_that_exits_right_after_its_start_is_not_taken_for_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_actions, "SETTLE_S", 0.01)
    ctx, hosts = cluster()
    hosts.clients[H1].dies_on_new = True
    with pytest.raises(StepFailed) as failed:
        upgrade_clients(ctx, apps(ctx, "app1"))
    assert str(failed.value) == (
        f"client app1 on host {H1} did not run on the 4.2.1 jars (it exited within 0.01 s "
        "of its start); its 4.2.0 jars were put back and client app1 was started on them; "
        "find in the application's own log why it does not start on the 4.2.1 jars, then "
        "rerun"
    )
    # Seen running, then gone at the look SETTLE_S later; the kept jars settle too.
    assert hosts.on(H1) == [
        *("status", "ls", "prepare", "stop", "status", "ls", "swap"),
        *("start", "status", "ls", "status", "ls"),
        *("status", "ls", "kept", "restore"),
        *("start", "status", "ls", "status", "ls"),
    ]
    fake = hosts.clients[H1]
    assert (fake.running, fake.listing(), fake.kept) == (True, ["app.jar", *OLD], [])


@pytest.mark.parametrize(
    ("stops", "said", "after"),
    [
        (False, "client app1 still runs on its 4.2.0 jars, untouched", []),
        (
            True,
            "client app1 had stopped all the same and was started again on its 4.2.0 jars, "
            "untouched",
            ["start", "status", "ls"],
        ),
    ],
)
def test_a_failed_stop_command_leaves_the_client_on_its_untouched_jars(
    stops: bool, said: str, after: list[str]
) -> None:
    ctx, hosts = cluster()
    hosts.clients[H1].stop_exit, hosts.clients[H1].stop_stops = 1, stops
    with pytest.raises(StepFailed) as failed:
        upgrade_clients(ctx, apps(ctx, "app1"))
    assert failed.value.node == "app1"
    assert str(failed.value) == (
        f"the stop command of client app1 on host {H1} exited 1; {said}; its output and the "
        "command are in this step's log: make the stop command work, then rerun"
    )
    assert hosts.on(H1) == ["status", "ls", "prepare", "stop", "status", "ls", *after]
    assert (hosts.clients[H1].running, hosts.clients[H1].listing()) == (True, ["app.jar", *OLD])


def test_a_finished_client_is_skipped_on_a_rerun() -> None:
    ctx, hosts = cluster()
    first = upgrade_clients(ctx, apps(ctx, "app1"))
    assert [(r.node, r.action, r.skipped) for r in first] == [
        ("app1", "stop", False),
        ("app1", "replace-jars", False),
        ("app1", "start", False),
    ]
    assert hosts.on(H1) == [
        *("status", "ls", "prepare", "stop", "status", "ls"),
        *("swap", "start", "status", "ls"),
    ]
    hosts.ran.clear()
    again = upgrade_clients(ctx, apps(ctx, "app1"))
    assert [(r.node, r.action, r.skipped, r.reason) for r in again] == [
        ("app1", "upgrade", True, "already runs on the 4.2.1 jars")
    ]
    assert again[0].found == f"app1 running on {', '.join(NEW)}"
    assert hosts.on(H1) == ["status", "ls"]


def test_a_batch_finishes_every_client_and_names_each_failed_one() -> None:
    ctx, hosts = cluster()
    hosts.clients[H1].start_exit = 3
    hosts.clients[H2].start_exit = 4
    with pytest.raises(StepFailed) as failed:
        upgrade_clients(ctx, apps(ctx, "app1", "app2"))
    assert str(failed.value).startswith(f"the start command of client app1 on host {H1} exited 3")
    start = f"the start command of client app2 on host {H2} exited 4"
    assert getattr(failed.value, "__notes__", []) == [
        f"also failed on {H2}: {start}; its 4.2.0 jars were put back, but starting client "
        f"app2 on them failed too ({start}): it is stopped; find in the application's own "
        "log why it does not start on the 4.2.1 jars, then rerun"
    ]
    assert hosts.on(H2)[-1] == "start"


def test_a_halted_run_stops_no_client() -> None:
    ctx, hosts = cluster(halted="step failover_east_stripe1 of this run failed")
    with pytest.raises(StepFailed) as failed:
        upgrade_clients(ctx, apps(ctx, "app1"))
    assert str(failed.value) == (
        "stop of client app1 not started: step failover_east_stripe1 of this run failed"
    )
    assert hosts.on(H1) == ["status", "ls"]
