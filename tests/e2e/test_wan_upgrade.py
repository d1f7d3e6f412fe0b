"""The whole procedure on two regions with WAN (two stripes each, stripes upgraded side by
side by the multiprocess executor), clients writing throughout; then refusals and a host that
goes down mid-run."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bm_upgrade.defs.launch import rerun, run_upgrade
from bm_upgrade.errors import StepFailed
from bm_upgrade.procedure.records import StepRecorder
from bm_upgrade.procedure.servers import StepContext
from bm_upgrade.procedure.wan import _stop as wan_stop
from bm_upgrade.procedure.wan_watch import WanWatch
from bm_upgrade.remote import HostPool
from tests.e2e.conftest import E2ESandbox, e2e_sandbox
from tests.e2e.fault_matrix import assert_fault_row, inject_when
from tests.e2e.journal_check import changing_commands, read, violations

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dagster_home")]
TOPOLOGIES = Path(__file__).parent / "topologies"


@pytest.fixture(scope="module")
def wan() -> Iterator[E2ESandbox]:
    with e2e_sandbox(str(TOPOLOGIES / "wan2x2.yaml")) as sb:
        yield sb


def with_policy(sb: E2ESandbox, **policy: object) -> Path:
    """A copy of the sandbox's inventory with policy changes (the original stays as written)."""
    data = yaml.safe_load(sb.inventory_path.read_text())
    data["policy"].update(policy)
    path = sb.directory / "inventory-variant.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_full_upgrade_of_two_regions_with_wan(wan: E2ESandbox) -> None:
    inventory_path = with_policy(wan, parallel_stripes=2, failback=False)
    since = time.time()
    outcome = run_upgrade(inventory_path)
    assert outcome.success, outcome.failure
    assert outcome.report and "Every node runs 4.2.1." in outcome.report
    inventory = wan.inventory
    assert violations(wan.journal_path, inventory, "4.2.1", since=since, until=time.time()) == []
    result = wan.verify()
    assert result["lost"] == 0 and result["acked"] > 0
    events = read(wan.journal_path)
    last_version = {}
    for e in events:
        if e["event"] == "server_state":
            last_version[e["server"]] = e["version"]
        elif e["event"] == "orchestrator_state":
            last_version[e["orchestrator"]] = e["version"]
        elif e["event"] == "client_process" and e["action"] == "start":
            last_version[e["client"]] = e["version"]
    nodes = [s.name for _, _, s in inventory.servers()]
    nodes += [c.name for _, c in inventory.clients()]
    nodes += [o.name for _, o in inventory.orchestrators()]
    assert {n: last_version.get(n) for n in nodes} == dict.fromkeys(nodes, "4.2.1")
    # Stripes ran side by side: the two stripes of a region overlapped in time.
    windows: dict[str, list[float]] = {}
    for e in events:
        if e["t"] >= since and e["event"] == "server_process" and e["action"] == "exit":
            stripe = next(
                f"{r.name}/{st.name}" for r, st, s in inventory.servers() if s.name == e["server"]
            )
            windows.setdefault(stripe, []).append(e["t"])
    spans = sorted((min(ts), max(ts)) for ts in windows.values())
    assert any(a[1] > b[0] for a, b in itertools.pairwise(spans)), spans
    # Replicas resynced after the orchestrators came back.
    caches = [e for e in events if e["t"] >= since and e["event"] == "replica_cache"]
    assert caches and caches[-1]["state"] == "ACTIVE"
    # The tool saw it in the master region's replication log (orchestrators have no HTTP
    # status): it read the log on the master orchestrator's host after starting it, and the
    # log holds each replica region's "successfully synchronized" line for every cache.
    master = next(o for r, o in inventory.orchestrators() if r.name == inventory.wan_master_region)
    started = max(
        e["t"]
        for e in events
        if e["event"] == "command" and e["host"] == master.host and "start-wan.sh" in e["command"]
    )
    reads = [
        e
        for e in events
        if e["event"] == "command"
        and e["t"] > started
        and e["host"] == master.host
        and "tail -c +" in e["command"]
    ]
    assert reads, "the master orchestrator's replication log was never read after its start"
    log = (
        wan.directory / "hosts" / master.host / "logs" / "wan" / "wan-orchestrator.log"
    ).read_text()
    replicas = [o for r, o in inventory.orchestrators() if r.name != inventory.wan_master_region]
    lines = log.splitlines()
    restarted = max(i for i, line in enumerate(lines) if "state: RUNNING" in line)
    synced = {
        (line.split("replica '")[1].split("'")[0], line.rsplit("|", 1)[1].rstrip("'"))
        for line in lines[restarted:]
        if "FullScanMasterSynchronizer" in line and "successfully synchronized replica" in line
    }
    assert {c for _, c in synced} == {"orders", "sessions"}
    assert {r for r, _ in synced} & {f"{o.host}:9889" for o in replicas}


def test_a_host_down_mid_run_then_rerun(wan: E2ESandbox) -> None:
    """The client host's sshd stops answering once the server steps began: the run fails at
    the clients naming the host, every stripe still served; cleared, the rerun finishes."""
    client = wan.inventory.regions[0].clients[0]
    since = time.time()

    def first_server_stop(event: dict[str, Any]) -> bool:
        return event["event"] == "command" and "stop-tc-server.sh" in event["command"]

    with inject_when(wan, first_server_stop, "host-down", client.host) as injected:
        outcome = run_upgrade(
            wan.inventory_path, target="4.2.0", overrides={"timeouts": {"client_s": 5.0}}
        )
    assert injected, "no server was stopped, so the client host never went down"
    assert not outcome.success
    assert outcome.failure and client.host in outcome.failure
    assert "restart_clients" in outcome.failure
    assert (
        violations(wan.journal_path, wan.inventory, "4.2.0", since=since, until=time.time()) == []
    )
    again = rerun(outcome.run_id)
    assert again.success, again.failure
    assert_fault_row(
        wan,
        target="4.2.0",
        since=since,
        failure=outcome.failure,
        names=[client.host, client.name],
        way_out=["rerun", "re-execute"],
    )


def test_non_persistent_stripe_without_mirror_is_refused() -> None:
    with e2e_sandbox(str(TOPOLOGIES / "lonely.yaml")) as sb:
        since = time.time()
        outcome = run_upgrade(sb.inventory_path)
        assert not outcome.success
        assert outcome.failure and "preflight" in outcome.failure
        assert "loses all its data" in outcome.failure and "east/stripe1" in outcome.failure
        assert changing_commands(sb.journal_path, since) == []


def test_an_orchestrator_whose_install_dir_is_not_a_kit_is_not_stopped(wan: E2ESandbox) -> None:
    """The orchestrator's kit root is swapped after its stop, so an install_dir that does not
    prove to be a 4.x kit (here: a folder inside the kit root) is refused before the stop
    command runs (docs/safety.md rule 9): the orchestrator keeps running."""
    inventory = wan.inventory
    region = inventory.regions[0]
    real = region.orchestrators[0]
    folder = Path(real.install_dir) / "not-a-kit"
    folder.mkdir(exist_ok=True)
    wrong = real.model_copy(update={"install_dir": str(folder)})
    since = time.time()
    with HostPool(inventory.ssh) as pool:
        ctx = StepContext.create(inventory, pool)
        watch = WanWatch(ctx)
        with pytest.raises(StepFailed) as failed:
            wan_stop(watch, wrong, StepRecorder(real.name, "stop"))
        assert watch.probe(real).up
    message = str(failed.value)
    assert str(folder) in message and "not a BigMemory Max 4.x kit" in message
    assert f"{real.name} was not stopped" in message
    stopped = [
        e
        for e in read(wan.journal_path)
        if float(e["t"]) >= since
        and e["event"] == "orchestrator_state"
        and e["orchestrator"] == real.name
    ]
    assert stopped == []
    folder.rmdir()
