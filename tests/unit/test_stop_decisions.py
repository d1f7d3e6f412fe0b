"""A server's stop is judged from the stop script's exit code and a fresh look at the server
(its probe and its host's process list), never from what the script printed
(docs/terracotta.md, Server scripts): each case below prints wording the tool has never seen.
Driven over the scripted fake cluster of tests/unit/test_server_branches.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from bm_upgrade.errors import StepFailed
from bm_upgrade.procedure.install import stop_server
from bm_upgrade.procedure.records import StepRecorder
from bm_upgrade.remote.quoting import Command, shell
from tests.unit.test_server_branches import (
    ACTIVE,
    STANDBY,
    Done,
    FakeCluster,
    FakeHost,
    FakeServer,
    stripe,
)

A, B = "tsa-a1", "tsa-a2"
Behaviour = Callable[[FakeCluster, FakeServer], Done]
"""What the stop script does to the server and what it returns."""


@dataclass
class ScriptedStopHost(FakeHost):
    """A host whose stop script does :attr:`behaviour` (every other command as FakeHost)."""

    behaviour: Behaviour | None = None

    def run(self, command: Command, timeout: float | None = None, check: bool = True) -> Done:
        line = command if isinstance(command, str) else shell(command)
        if "stop-tc-server.sh" in line and self.behaviour is not None:
            self.cluster.ran.append((self.host, "stop"))
            return self.behaviour(self.cluster, self.cluster.servers[A])
        return super().run(command, timeout, check)


def scripted(behaviour: Behaviour) -> tuple[FakeCluster, Callable[[], None]]:
    """Stop tsa-a1 (ACTIVE, its mirror PASSIVE-STANDBY) with a stop script doing
    ``behaviour``; returns the cluster and the stop to call."""
    ctx, cluster = stripe({A: "4.2.0", B: "4.2.0"}, {A: [ACTIVE], B: [STANDBY]})
    cluster.get = lambda host: ScriptedStopHost(cluster, host, behaviour)  # type: ignore[method-assign]
    server = cluster.servers[A].server
    rec = StepRecorder(A, "stop")

    def stop() -> None:
        stop_server(ctx, server, rec)
        record = rec.record()
        cluster.ran.append(("record", " | ".join((record.found, *record.did))))

    return cluster, stop


def stops_and_says(text: str, code: int) -> Behaviour:
    def behaviour(cluster: FakeCluster, fake: FakeServer) -> Done:
        cluster.stop(fake)
        return Done(code, text)

    return behaviour


def says_only(text: str, code: int) -> Behaviour:
    def behaviour(cluster: FakeCluster, fake: FakeServer) -> Done:
        return Done(code, text)

    return behaviour


@pytest.mark.parametrize(
    ("said", "code"),
    [
        ("Arrêt effectué (code 200)", 0),
        ("Stop refused. Response code 409: not stopping", 0),
        ("Error stopping server: refused", 1),
    ],
)
def test_a_server_gone_after_its_stop_is_stopped_whatever_the_script_said(
    said: str, code: int
) -> None:
    cluster, stop = scripted(stops_and_says(said, code))
    stop()
    assert cluster.servers[A].runs is None
    assert cluster.did("stop") == [("10.0.0.1", "stop")]
    record = cluster.ran[-1][1]
    if code == 0:
        assert record.startswith(f" | ran the stop script (exit 0: {said}) | {A} exited after ")
    else:
        assert record == f"{A} is not running (the stop script exited 1: {said})"
    # The mirror took over: the fake hands the role on when the ACTIVE stops.
    assert cluster.servers[B].answers == [ACTIVE]


def test_exit_1_with_the_server_still_active_is_the_refusal() -> None:
    cluster, stop = scripted(says_only("Alles in Ordnung", 1))
    with pytest.raises(StepFailed) as caught:
        stop()
    assert caught.value.node == A
    assert str(caught.value) == (
        f"{A} on 10.0.0.1 was not stopped: its stop script exited 1 and it is still "
        f"{ACTIVE}, so the product refused to stop an ACTIVE whose stripe has no "
        "PASSIVE-STANDBY mirror (it said: Alles in Ordnung); make its stripe healthy "
        "(`bm-upgrade status`), then rerun"
    )
    assert (cluster.servers[A].runs, cluster.servers[A].answers) == ("4.2.0", [ACTIVE])
    assert cluster.did("stop") == [("10.0.0.1", "stop")]


def test_exit_1_with_a_passive_still_running_is_a_failed_stop() -> None:
    ctx_cluster, stop = scripted(says_only("", 1))
    ctx_cluster.servers[A].answers = [STANDBY]
    with pytest.raises(StepFailed) as caught:
        stop()
    assert str(caught.value) == (
        f"the stop script of {A} on 10.0.0.1 exited 1 and {A} still runs ({STANDBY}; it "
        "said: exit code 1); check its management port 9540, then rerun"
    )
    assert ctx_cluster.servers[A].runs == "4.2.0"


def test_exit_0_with_the_server_still_running_waits_then_fails_safely() -> None:
    cluster, stop = scripted(says_only("Stop success. Response code 200", 0))
    with pytest.raises(StepFailed) as caught:
        stop()
    assert caught.value.node == A
    assert str(caught.value).startswith(
        f"{A} on 10.0.0.1 did not stop within 0.2 s of its stop script (which exited 0 and "
        f"said: Stop success. Response code 200) (still {ACTIVE} after 0.2 s); check its "
        "console log "
    )
    # Nothing else was done: the server still serves its stripe.
    assert (cluster.servers[A].runs, cluster.servers[A].answers) == ("4.2.0", [ACTIVE])
    assert [w for _, w in cluster.ran if w not in ("ps",)] == ["stop"]
