"""After a step of a run failed, no step of that run starts new disruptive work (docs/safety.md rule
12), in process (``parallel_stripes`` 1) and in the multiprocess executor's step processes
(``parallel_stripes`` 2); with ``continue_on_failure`` the other stripes go on; a SIGINT to a
step's process finishes the server in progress and refuses the next stop.

One ``halt3`` sandbox (east: two stripes and a client, west: one stripe) shared in file order:
each test leaves every server running, on whatever version its rerun finished with.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from bm_upgrade.defs.launch import RunOutcome, instance, rerun, run_upgrade
from bm_upgrade.defs.stopping import failure_reason
from bm_upgrade.inventory_checks import stripe_nodes
from bm_upgrade.sandbox import cluster, faults
from tests.e2e.conftest import E2ESandbox, e2e_sandbox
from tests.e2e.journal_check import violations

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dagster_home")]
TOPOLOGY = Path(__file__).parent / "topologies" / "halt3.yaml"
FAULTY = "upgrade_mirrors_east_stripe1"
FAULTY_FAILOVER = "failover_east_stripe1"
OTHERS = (*stripe_nodes("east", "stripe2"), *stripe_nodes("west", "stripe1"))
QUICK = {"timeouts": {"sync_s": 3.0, "failover_s": 10.0}}


@pytest.fixture(scope="module")
def sb() -> Iterator[E2ESandbox]:
    with e2e_sandbox(str(TOPOLOGY)) as sandbox:
        yield sandbox


def inventory_with(sb: E2ESandbox, name: str, **policy: object) -> Path:
    """A copy of the sandbox's inventory with policy changes."""
    data = yaml.safe_load(sb.inventory_path.read_text())
    data["policy"].update(policy)
    path = sb.directory / f"inventory-{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def server_states(sb: E2ESandbox) -> dict[str, str]:
    """Server -> its state as the sandbox's own REST says (``down`` when it does not answer)."""
    found = {}
    for name, server in sb.info["servers"].items():
        stat = cluster.server_stat(server["host"], server["management_port"])
        found[name] = stat["state"] if stat else "down"
    return found


def mirror_of(sb: E2ESandbox, region: int, stripe: int) -> str:
    """The stripe's server that is PASSIVE-STANDBY now (its first to be stopped)."""
    states = server_states(sb)
    names = [s.name for s in sb.inventory.regions[region].stripes[stripe].servers]
    return next(n for n in names if states[n] == "PASSIVE-STANDBY")


def other_version(sb: E2ESandbox, server: str) -> str:
    """The kit ``server`` does not run now (by the journal): a target with work to do."""
    last = [
        e["version"] for e in sb.journal() if e["event"] == "server_state" and e["server"] == server
    ]
    return "4.2.0" if last and last[-1] == "4.2.1" else "4.2.1"


def step_events(run_id: str, kind: dg.DagsterEventType) -> list[dg.EventLogRecord]:
    return list(instance().get_records_for_run(run_id, of_type=kind).records)


def failures(run_id: str) -> dict[str, tuple[float, str]]:
    """Failed step -> (when its failure was stored, its one sentence)."""
    out = {}
    for record in step_events(run_id, dg.DagsterEventType.STEP_FAILURE):
        event = record.event_log_entry.dagster_event
        assert event is not None and event.step_key is not None
        out[event.step_key] = (record.event_log_entry.timestamp, failure_reason(event))
    return out


def server_stops(sb: E2ESandbox, since: float, servers: set[str]) -> list[tuple[float, str]]:
    """(time, server) of every exit of one of ``servers`` after ``since`` (not counting a
    dirty mirror's exit 11, after which its start script relaunches it)."""
    return [
        (e["t"], e["server"])
        for e in sb.journal(since)
        if e["event"] == "server_process"
        and e["action"] == "exit"
        and e["server"] in servers
        and e.get("exit_code") != 11
    ]


def servers_of(sb: E2ESandbox, *steps: str) -> set[str]:
    return {
        s.name
        for r in sb.inventory.regions
        for st in r.stripes
        for s in st.servers
        if set(stripe_nodes(r.name, st.name)) & set(steps)
    }


def started_steps(run_id: str) -> list[str]:
    """The run's steps in the order they started."""
    return [
        r.event_log_entry.dagster_event.step_key or ""
        for r in step_events(run_id, dg.DagsterEventType.STEP_START)
        if r.event_log_entry.dagster_event
    ]


def assert_halted(
    sb: E2ESandbox, outcome: RunOutcome, since: float, target: str, *, grace_s: float
) -> None:
    """The faulty stripe failed on its mirror's sync; no other stripe's server was stopped
    after that failure was stored (``grace_s``: a stop whose check came just before it);
    every step refused names that failure; clients were not touched; the cluster is safe."""
    assert not outcome.success
    failed = failures(outcome.run_id)
    assert FAULTY in failed, failed
    failed_at, sentence = failed[FAULTY]
    assert "PASSIVE-STANDBY" in sentence
    for step in OTHERS:
        if step in failed:
            assert f"not started: step {FAULTY} of this run failed (" in failed[step][1]
            assert failed[step][1].endswith("fix that, then re-execute from failure")
    late = [
        (t - failed_at, s)
        for t, s in server_stops(sb, since, servers_of(sb, *OTHERS))
        if t > failed_at + grace_s
    ]
    assert late == [], f"servers of other stripes stopped after {FAULTY} failed: {late}"
    # The faulty stripe's failover waits for its mirrors, what comes after the stripes for
    # all of them: none of those started.
    started = set(started_steps(outcome.run_id))
    assert started.isdisjoint({FAULTY_FAILOVER, "verify_servers", "restart_clients_1", "report"})
    assert not [
        e for e in sb.journal(since) if e["event"] == "client_process" and e["action"] == "stop"
    ]
    assert violations(sb.journal_path, sb.inventory, target, since=since, until=time.time()) == []
    assert "down" not in server_states(sb).values()


def test_in_process_a_failed_stripe_stops_the_others(sb: E2ESandbox) -> None:
    since = time.time()
    with faults.injected(sb.directory, "no-sync", mirror_of(sb, 0, 0)):
        outcome = run_upgrade(sb.inventory_path, overrides=QUICK)
    assert_halted(sb, outcome, since, "4.2.1", grace_s=0.0)
    # In process the steps run one after the other: every later stripe was refused.
    refused = [s for s in OTHERS if s in failures(outcome.run_id)]
    assert refused, "no stripe ran after the failed one"
    # The parent's failures do not stop its re-execution.
    again = rerun(outcome.run_id)
    assert again.success, again.failure
    assert sb.verify()["lost"] == 0


def test_multiprocess_a_failed_stripe_stops_the_others(sb: E2ESandbox) -> None:
    path = inventory_with(sb, "parallel", parallel_stripes=2)
    since = time.time()
    with faults.injected(sb.directory, "no-sync", mirror_of(sb, 0, 0)):
        outcome = run_upgrade(path, target="4.2.0", overrides=QUICK)
    # A step process checks right before each stop; a stop already checked when the failure
    # was stored reaches the journal an SSH round trip later.
    assert_halted(sb, outcome, since, "4.2.0", grace_s=0.5)
    # Two stripes side by side, the third waits for a slot: it starts after the failure.
    assert [s for s in OTHERS if s in failures(outcome.run_id)], "no stripe was refused"
    again = rerun(outcome.run_id)
    assert again.success, again.failure


def test_continue_on_failure_lets_the_other_stripes_go_on(sb: E2ESandbox) -> None:
    since = time.time()
    with faults.injected(sb.directory, "no-sync", mirror_of(sb, 0, 0)):
        outcome = run_upgrade(sb.inventory_path, overrides={**QUICK, "continue_on_failure": True})
    assert not outcome.success
    assert list(failures(outcome.run_id)) == [FAULTY]
    # One stripe at a time in process: a stripe's failover starts right after its mirrors,
    # before another stripe's mirrors (the failover nodes' priority, defs/jobs.py).
    stripe_steps = [s for s in started_steps(outcome.run_id) if s in OTHERS]
    assert len(stripe_steps) == len(OTHERS)
    assert set(zip(stripe_steps[::2], stripe_steps[1::2], strict=True)) == {OTHERS[:2], OTHERS[2:]}
    others = servers_of(sb, *OTHERS)
    upgraded = {
        e["server"]
        for e in sb.journal(since)
        if e["event"] == "server_state" and e["server"] in others and e["version"] == "4.2.1"
    }
    assert upgraded == others
    assert violations(sb.journal_path, sb.inventory, "4.2.1", since=since, until=time.time()) == []
    again = rerun(outcome.run_id)
    assert again.success, again.failure


def _metadata(event: dg.DagsterEvent) -> Any:
    """A STEP_WORKER_STARTED event's metadata (the step process's pid)."""
    data: Any = event.event_specific_data
    return data.metadata


def test_sigint_to_a_step_process_finishes_the_server_in_progress(sb: E2ESandbox) -> None:
    """SIGINT to a stripe's mirrors step process once its mirror is down: the mirror comes
    back on the target, the active is not stopped (the stripe's failover step never starts),
    the step fails saying it was interrupted."""
    path = inventory_with(sb, "parallel", parallel_stripes=2)
    mirror = mirror_of(sb, 0, 0)
    target = other_version(sb, mirror)
    since = time.time()
    run_ids: list[str] = []
    box: dict[str, RunOutcome] = {}
    worker = threading.Thread(
        target=lambda: box.update(
            out=run_upgrade(path, target=target, overrides=QUICK, on_run_id=run_ids.append)
        ),
        daemon=True,
    )
    worker.start()
    signalled = 0.0
    deadline = time.monotonic() + 120
    while worker.is_alive() and not signalled and time.monotonic() < deadline:
        down = [
            e
            for e in sb.journal(since)
            if e["event"] == "server_process" and e["action"] == "exit" and e["server"] == mirror
        ]
        pids = [
            _metadata(r.event_log_entry.dagster_event)["pid"].text
            for r in (
                step_events(run_ids[0], dg.DagsterEventType.STEP_WORKER_STARTED) if run_ids else []
            )
            if r.event_log_entry.dagster_event
            and r.event_log_entry.dagster_event.step_key == FAULTY
        ]
        if down and pids:
            os.kill(int(pids[0]), signal.SIGINT)
            signalled = time.time()
        else:
            worker.join(0.05)
    worker.join(180)
    assert signalled, "the mirror was never stopped"
    outcome = box["out"]
    assert not outcome.success
    states = server_states(sb)
    assert "down" not in states.values(), states
    sentence = failures(outcome.run_id)[FAULTY][1]
    assert (
        "failover of stripe stripe1 not started: interrupted (step "
        f"{FAULTY}'s process received SIGINT"
    ) in sentence, sentence
    assert "the mirror in progress was finished first" in sentence
    assert FAULTY_FAILOVER not in set(started_steps(outcome.run_id))
    back = [
        e
        for e in sb.journal(signalled)
        if e["event"] == "server_state"
        and e["server"] == mirror
        and e["state"] == "PASSIVE-STANDBY"
    ]
    assert back and back[-1]["version"] == target
    assert violations(sb.journal_path, sb.inventory, target, since=since, until=time.time()) == []
    again = rerun(outcome.run_id)
    assert again.success, again.failure
