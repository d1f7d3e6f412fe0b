"""The server steps against a real sandbox (real sshd per host, real servers started by the
kit's scripts, a client writing all the time): a full stripe upgrade 4.2.0 -> 4.2.1 checked
on the sandbox's journal, failback, an idempotent rerun, and a rollback to 4.2.0.

The sandbox is shared by the module and the tests run in file order: each starts from the
state the previous one left (documented at the top of each test).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bm_upgrade.errors import PlanRefused, StepFailed
from bm_upgrade.inventory import Inventory, Server, Stripe
from bm_upgrade.procedure.kit import StagedKit, fetch_kit, stage_kit
from bm_upgrade.procedure.records import StepRecord
from bm_upgrade.procedure.seen import server_pids
from bm_upgrade.procedure.servers import ServerOps, failover, upgrade_mirrors
from bm_upgrade.procedure.waits import Poll, wait_for
from bm_upgrade.remote import HostPool
from bm_upgrade.remote.quoting import quote
from bm_upgrade.sandbox import cluster
from tests.e2e import journal_check
from tests.e2e.conftest import E2ESandbox, start_e2e_sandbox, stop_e2e_sandbox
from tests.unit.inventories import server_model

pytestmark = pytest.mark.e2e

SETENV = "BM_E2E_SETENV=carried-over\nexport BM_E2E_SETENV\n"
log = logging.getLogger("tests.e2e.servers")


# -- pure parts -------------------------------------------------------------------------------


def test_server_pids_match_only_that_servers_processes() -> None:
    server = server_model()
    ps = "\n".join(
        [
            "  101 /bin/sh /opt/tc/bigmemory-max/server/bin/start-tc-server.sh -f "
            "/etc/tc/tc-config.xml -n tsa-a1",
            "  102 /usr/bin/python3 /opt/tc/bigmemory-max/server/lib/tcserver.py -f "
            "/etc/tc/tc-config.xml -n tsa-a1",
            "  103 /bin/sh stop-tc-server.sh -f /etc/tc/tc-config.xml -n tsa-a1",
            "  104 /bin/sh start-tc-server.sh -f /etc/tc/tc-config.xml -n tsa-a10",
            "  105 /bin/sh start-tc-server.sh -f /etc/other/tc-config.xml -n tsa-a1",
            "  junk",
        ]
    )
    assert server_pids(ps, server) == [101, 102]


def test_wait_for_ends_on_value_hopeless_or_timeout() -> None:
    looks = iter([Poll[int](now="starting"), Poll[int](now="syncing"), Poll(7, "done")])
    outcome = wait_for(lambda: next(looks), what="x", timeout_s=5, log=log, poll_s=0.01)
    assert outcome.value == 7 and outcome.ok
    gone = wait_for(
        lambda: Poll[int](now="down", hopeless="x exited"), what="x", timeout_s=5, log=log
    )
    assert not gone.ok and gone.why_not(5) == "x exited"
    late = wait_for(
        lambda: Poll[int](now="syncing"), what="x", timeout_s=0.05, log=log, poll_s=0.01
    )
    assert not late.ok and late.why_not(0.05) == "still syncing after 0.05 s"


# -- helpers ----------------------------------------------------------------------------------
def stage(sandbox: E2ESandbox, pool: HostPool, version: str) -> dict[str, StagedKit]:
    """Fetch the kit from the sandbox's kit server and stage it with the license key."""
    inv = sandbox.inventory
    kit = inv.kit_for(version)
    assert kit is not None
    path = fetch_kit(kit, cache_dir=sandbox.directory.parent / "kit-cache")
    return stage_kit(pool, inv, kit, path, Path(inv.license_file))


def the_stripe(inv: Inventory) -> Stripe:
    return inv.regions[0].stripes[0]


def mirrors_then_failover(ctx: ServerOps, inv: Inventory) -> list[StepRecord]:
    """The stripe's two steps in the job's order, as one run does them."""
    region, stripe = inv.regions[0], the_stripe(inv)
    return upgrade_mirrors(ctx, region, stripe) + failover(ctx, region, stripe)


def kit_version_on_disk(server: Server) -> str:
    props = Path(server.install_dir) / "server" / "lib" / "tc-version.properties"
    return props.read_text(encoding="utf-8").splitlines()[0].removeprefix("version=")


def states(inv: Inventory) -> dict[str, str | None]:
    """Each server's state as the sandbox's REST port says."""
    return {
        s.name: (cluster.server_stat(s.host, s.management_port) or {}).get("state")
        for s in the_stripe(inv).servers
    }


def stop_commands(events: list[dict[str, Any]]) -> list[tuple[float, str]]:
    return [
        (float(e["t"]), str(e["host"]))
        for e in events
        if e["event"] == "command" and "stop-tc-server.sh" in e["command"]
    ]


def last_states_before(events: list[dict[str, Any]], t: float) -> dict[str, str]:
    last: dict[str, str] = {}
    for e in events:
        if e["event"] == "server_state" and float(e["t"]) < t:
            last[str(e["server"])] = str(e["state"])
    return last


def assert_safety_rules(events: list[dict[str, Any]], inv: Inventory) -> None:
    """Rules 2, 3 and 4 of docs/safety.md on the journal of one run."""
    by_host = {s.host: s.name for s in the_stripe(inv).servers}
    for t, host in stop_commands(events):
        before = last_states_before(events, t)
        if before.get(by_host[host]) == "ACTIVE-COORDINATOR":
            others = [st for name, st in before.items() if name != by_host[host]]
            assert "PASSIVE-STANDBY" in others, f"ACTIVE {by_host[host]} stopped with {before}"
    down: set[str] = set()
    for e in events:
        if e["event"] == "server_process":
            (down.add if e["action"] == "exit" else down.discard)(str(e["server"]))
            assert len(down) <= 1, f"two servers down at {e['t']}: {down}"
    for host in by_host:
        # The caller's own lines, without the `timeout -k` wrapper every command runs in.
        commands = [
            journal_check.untimed(str(e["command"]))
            for e in events
            if e["event"] == "command" and e["host"] == host
        ]
        # A new kit root becomes the install folder (the swap) only once it holds the key,
        # so every start after a swap finds it: the key is copied into the work folder's kit
        # root earlier in the same command (joined by &&), or by an earlier command.
        for i, command in enumerate(commands):
            swap = re.search(r"mv -- \S*/\.bm-upgrade-work/\S+ ", command)
            if swap is None:
                continue
            copied = re.search(
                r"cp -- \S+ \S*/\.bm-upgrade-work/\S+/terracotta-license\.key "
                r"&& ",
                command[: swap.start()],
            )
            assert copied or any(
                c.startswith("cp ") and "terracotta-license.key" in c for c in commands[:i]
            ), f"{host}: kit swapped in without its license key: {command}"


def environ_of(sandbox: E2ESandbox, server: Server) -> str:
    pid = (sandbox.directory / "run" / f"server-{server.name}.pid").read_text().strip()
    return Path(f"/proc/{pid}/environ").read_bytes().decode("utf-8", "replace")


def all_skipped(records: list[StepRecord]) -> bool:
    return bool(records) and all(r.skipped for r in records)


# -- against the sandbox, in order ------------------------------------------------------------
def test_active_is_not_touched_before_its_mirror(small_sandbox: E2ESandbox, pool: HostPool) -> None:
    """Fresh sandbox on 4.2.0: the failover step before the mirrors step is refused, nothing
    stops."""
    inv = small_sandbox.inventory
    ctx = ServerOps.create(inv, pool, target="4.2.1")
    since = time.time()
    with pytest.raises(StepFailed) as failed:
        failover(ctx, inv.regions[0], the_stripe(inv))
    assert failed.value.node == "east-s1-b"
    assert "run upgrade_mirrors_east_stripe1 (upgrade_mirrors) for it first" in str(failed.value)
    assert stop_commands(small_sandbox.journal(since)) == []
    assert states(inv) == {"east-s1-a": "ACTIVE-COORDINATOR", "east-s1-b": "PASSIVE-STANDBY"}


def test_upgrade_a_stripe_to_4_2_1(small_sandbox: E2ESandbox, pool: HostPool) -> None:
    """4.2.0 -> 4.2.1 without failback: mirror first, then the active through a failover;
    the operator's setenv.sh is carried into the new kits; no acknowledged write is lost."""
    inv = small_sandbox.inventory
    a, b = the_stripe(inv).servers
    for server in (a, b):
        setenv = Path(server.install_dir) / "server" / "bin" / "setenv.sh"
        pool.get(server.host).run(f"printf %s {quote(SETENV)} > {quote(str(setenv))}")
    staged_at = time.time()
    staged = stage(small_sandbox, pool, "4.2.1")
    ctx = ServerOps.create(inv, pool, target="4.2.1", staged=staged, failback=False)
    since = time.time()
    records = mirrors_then_failover(ctx, inv)
    ended = time.time()

    done = [(r.action, r.node) for r in records if not r.skipped]
    # confirm-standby is planned only if the mirror is not PASSIVE-STANDBY yet when looked at
    # again after its start (on a busy machine it may already be).
    assert done[:4] == [
        ("backup-data", "east-s1-a"),  # persistent: the data first (procedure/backup.py)
        ("stop", "east-s1-b"),
        ("install", "east-s1-b"),
        ("start", "east-s1-b"),
    ]
    assert ("failover-stop", "east-s1-a") in done
    assert done.index(("failover-stop", "east-s1-a")) > done.index(("start", "east-s1-b"))
    install = next(r for r in records if r.action == "install" and r.node == "east-s1-a")
    assert any("carried server/bin/setenv.sh" in d for d in install.did), install.did
    assert [kit_version_on_disk(s) for s in (a, b)] == ["4.2.1", "4.2.1"]
    assert states(inv) == {"east-s1-a": "PASSIVE-STANDBY", "east-s1-b": "ACTIVE-COORDINATOR"}
    for server in (a, b):
        kit_root = Path(server.install_dir)
        assert (kit_root / "server" / "bin" / "setenv.sh").read_text() == SETENV
        assert (kit_root / "terracotta-license.key").stat().st_size > 0
        assert "BM_E2E_SETENV=carried-over" in environ_of(small_sandbox, server)
        previous = Path(server.kit_root.previous_kit("4.2.0"))
        assert (
            kit_version_on_disk(server.model_copy(update={"install_dir": str(previous)})) == "4.2.0"
        )

    events = small_sandbox.journal(since)
    stops = stop_commands(events)
    assert [host for _, host in stops] == [b.host, a.host]
    assert_safety_rules(events, inv)
    assert (
        journal_check.violations(
            small_sandbox.journal_path, inv, "4.2.1", since=staged_at, until=ended
        )
        == []
    )
    assert small_sandbox.verify()["lost"] == 0


def test_fail_back_returns_the_active_to_the_first_server(
    small_sandbox: E2ESandbox, pool: HostPool
) -> None:
    """From: both on 4.2.1, east-s1-b ACTIVE. The failover step with failback asked makes
    east-s1-a ACTIVE again."""
    inv = small_sandbox.inventory
    ctx = ServerOps.create(inv, pool, target="4.2.1", failback=True)
    since = time.time()
    records = failover(ctx, inv.regions[0], the_stripe(inv))
    assert next((r.action, r.node) for r in records if not r.skipped) == (
        "failback-stop",
        "east-s1-b",
    )
    assert states(inv) == {"east-s1-a": "ACTIVE-COORDINATOR", "east-s1-b": "PASSIVE-STANDBY"}
    assert_safety_rules(small_sandbox.journal(since), inv)
    assert small_sandbox.verify()["lost"] == 0


def test_rerun_does_nothing(small_sandbox: E2ESandbox, pool: HostPool) -> None:
    """From: the stripe fully on 4.2.1 with east-s1-a ACTIVE: every step is skipped and no
    server is stopped or started."""
    inv = small_sandbox.inventory
    ctx = ServerOps.create(inv, pool, target="4.2.1")
    since = time.time()
    records = mirrors_then_failover(ctx, inv)
    assert all_skipped(records), [r.summary() for r in records]
    assert {(r.action, r.node) for r in records} >= {
        ("upgrade", "east-s1-a"),
        ("upgrade", "east-s1-b"),
        ("failback", "east-s1-a"),
    }
    events = small_sandbox.journal(since)
    touched = [
        e
        for e in events
        if e["event"] == "server_process"
        or (
            e["event"] == "command"
            and ("stop-tc-server" in e["command"] or "start-tc-server" in e["command"])
        )
    ]
    assert touched == []
    assert journal_check.changing_commands(small_sandbox.journal_path, since) == []
    mirrors = upgrade_mirrors(ctx, inv.regions[0], the_stripe(inv))
    assert all_skipped(mirrors) and {(r.action, r.node) for r in mirrors} == {
        ("upgrade", "east-s1-b")
    }
    active = failover(ctx, inv.regions[0], the_stripe(inv))
    assert all_skipped(active) and {(r.action, r.node) for r in active} == {
        ("upgrade", "east-s1-a"),
        ("failback", "east-s1-a"),
    }
    assert journal_check.changing_commands(small_sandbox.journal_path, since) == []


def test_rollback_to_4_2_0_over_ssh_probes(small_sandbox: E2ESandbox, pool: HostPool) -> None:
    """From: the stripe on 4.2.1. Rolling back is the same procedure with 4.2.0 as target
    (probing with server-stat.sh over SSH this time); failback leaves east-s1-a ACTIVE."""
    inv = small_sandbox.inventory.model_copy(update={"probe_via": "ssh"})
    staged = stage(small_sandbox, pool, "4.2.0")
    ctx = ServerOps.create(inv, pool, target="4.2.0", staged=staged, delete_dirty_backups=True)
    since = time.time()
    records = mirrors_then_failover(ctx, inv)
    assert not all_skipped(records)
    installs = [d for r in records if r.action == "install" for d in r.did]
    assert any("dirty-objectdb backup(s)" in d for d in installs), installs
    a, b = the_stripe(inv).servers
    assert [kit_version_on_disk(s) for s in (a, b)] == ["4.2.0", "4.2.0"]
    assert states(inv) == {"east-s1-a": "ACTIVE-COORDINATOR", "east-s1-b": "PASSIVE-STANDBY"}
    for server in (a, b):
        assert (Path(server.install_dir) / "server" / "bin" / "setenv.sh").read_text() == SETENV
    events = small_sandbox.journal(since)
    assert [host for _, host in stop_commands(events)][:2] == [b.host, a.host]
    assert_safety_rules(events, inv)
    assert any(e["event"] == "dirty_backup" and e["action"] == "deleted" for e in events)
    assert small_sandbox.verify()["lost"] == 0
    assert os.path.isdir(a.kit_root.previous_kit("4.2.1"))


def test_no_takeover_restarts_the_old_active_and_a_rerun_resumes(
    small_sandbox: E2ESandbox, pool: HostPool
) -> None:
    """From: the stripe on 4.2.0, east-s1-a ACTIVE. With a failover timeout (0.5 s) shorter
    than the election (4 s, in tc-config, read by the mirror when it restarts on its new
    kit), nobody takes over in time: east-s1-a is started again on its 4.2.0 kit at once and
    the step fails saying so; nothing is lost; a rerun with sane timeouts finishes."""
    base = small_sandbox.inventory
    hasty = base.policy.timeouts.model_copy(update={"failover_s": 0.5})
    inv = base.model_copy(update={"policy": base.policy.model_copy(update={"timeouts": hasty})})
    a, b = the_stripe(inv).servers
    staged = stage(small_sandbox, pool, "4.2.1")
    configs = {Path(s.tc_config): Path(s.tc_config).read_text(encoding="utf-8") for s in (a, b)}
    since = time.time()
    try:
        for path, text in configs.items():
            path.write_text(
                re.sub(r'election-time="[^"]*"', 'election-time="4"', text), encoding="utf-8"
            )
        with pytest.raises(StepFailed) as failed:
            mirrors_then_failover(ServerOps.create(inv, pool, target="4.2.1", staged=staged), inv)
    finally:
        for path, text in configs.items():
            path.write_text(text, encoding="utf-8")
    message = str(failed.value)
    assert failed.value.node == "east-s1-a", message
    assert "started east-s1-a on its 4.2.0 kit again at once" in message, message
    assert "ACTIVE-COORDINATOR again" in message, message
    assert kit_version_on_disk(a) == "4.2.0"
    watch = ServerOps.create(base, pool, target="4.2.1")
    assert watch.wait_state(a, {"PASSIVE-STANDBY", "ACTIVE-COORDINATOR"}, 30).ok
    assert small_sandbox.verify()["lost"] == 0

    records = mirrors_then_failover(
        ServerOps.create(base, pool, target="4.2.1", staged=staged), base
    )
    assert not all_skipped(records)
    assert [kit_version_on_disk(s) for s in (a, b)] == ["4.2.1", "4.2.1"]
    assert states(base) == {"east-s1-a": "ACTIVE-COORDINATOR", "east-s1-b": "PASSIVE-STANDBY"}
    assert_safety_rules(small_sandbox.journal(since), base)
    assert small_sandbox.verify()["lost"] == 0


def test_a_kit_missing_on_a_host_is_refused_before_the_mirrors_stop(
    small_sandbox: E2ESandbox, pool: HostPool
) -> None:
    """From: the stripe on 4.2.1, east-s1-a ACTIVE. The 4.2.0 kit is missing on east-s1-b's
    host: it is found before east-s1-b is stopped, so nothing stops and the message says what
    to do; a rerun with the kit staged finishes the rollback. (An install that fails after
    the stop, its old kit untouched, restarts the mirror on it: the disk-full row of
    tests/e2e/test_faults_servers.py.)"""
    inv = small_sandbox.inventory
    a, b = the_stripe(inv).servers
    staged = stage(small_sandbox, pool, "4.2.0")
    missing = {
        **staged,
        b.host: StagedKit(
            b.host, staged[b.host].kit_path + ".gone", staged[b.host].license_path, "uploaded"
        ),
    }
    since = time.time()
    with pytest.raises(StepFailed) as failed:
        mirrors_then_failover(ServerOps.create(inv, pool, target="4.2.0", staged=missing), inv)
    message = str(failed.value)
    assert failed.value.node == "east-s1-b"
    assert "kit is not staged" in message and "east-s1-b was not stopped" in message, message
    assert "run the upgrade again" in message, message
    assert journal_check.stops(small_sandbox.journal_path, since) == []
    assert kit_version_on_disk(b) == "4.2.1"
    assert small_sandbox.verify()["lost"] == 0

    records = mirrors_then_failover(ServerOps.create(inv, pool, target="4.2.0", staged=staged), inv)
    assert not all_skipped(records)
    assert [kit_version_on_disk(s) for s in (a, b)] == ["4.2.0", "4.2.0"]
    assert states(inv) == {"east-s1-a": "ACTIVE-COORDINATOR", "east-s1-b": "PASSIVE-STANDBY"}
    assert_safety_rules(small_sandbox.journal(since), inv)
    assert small_sandbox.verify()["lost"] == 0


# -- a stripe of one server (downtime with consent) -------------------------------------------
SINGLE = """\
name: single
version: 4.2.0
kits: [4.2.0, 4.2.1]
persistent: true
reconnect_window_s: 10
regions:
  - {name: east, stripes: 1, mirrors: 0, clients: 1}
timing: {start_s: 0.2, election_s: 0.5, sync_s: 0.5}
"""


@pytest.fixture(scope="module")
def single_sandbox() -> Iterator[E2ESandbox]:
    folder = Path(tempfile.mkdtemp(prefix="bm-upgrade-e2e-topology-"))
    topology = folder / "single.yaml"
    topology.write_text(SINGLE, encoding="utf-8")
    try:
        sandbox = start_e2e_sandbox(str(topology))
    finally:
        topology.unlink()
        folder.rmdir()
    try:
        yield sandbox
    finally:
        stop_e2e_sandbox(sandbox)


def test_a_stripe_without_mirror_needs_consent_then_restarts_on_the_target(
    single_sandbox: E2ESandbox,
) -> None:
    """Without consent the plan refuses and nothing stops (and no backup is taken); with it
    the lone ACTIVE's data is backed up, then it is stopped (--force), upgraded and confirmed
    ACTIVE again, its data recovered from disk."""
    inv = single_sandbox.inventory
    (server,) = the_stripe(inv).servers
    with HostPool(inv.ssh) as hosts:
        since = time.time()
        with pytest.raises(PlanRefused, match="allow-downtime"):
            mirrors_then_failover(ServerOps.create(inv, hosts, target="4.2.1"), inv)
        assert stop_commands(single_sandbox.journal(since)) == []
        assert [e for e in single_sandbox.journal(since) if e["event"] == "data_backup"] == []
        staged = stage(single_sandbox, hosts, "4.2.1")
        ctx = ServerOps.create(inv, hosts, target="4.2.1", staged=staged, allow_downtime=True)
        records = mirrors_then_failover(ctx, inv)
    assert [r.action for r in records if not r.skipped] == [
        "backup-data",
        "stop",
        "install",
        "start",
        "confirm-active",
    ]
    assert kit_version_on_disk(server) == "4.2.1"
    assert states(inv) == {server.name: "ACTIVE-COORDINATOR"}
    assert single_sandbox.verify()["lost"] == 0
