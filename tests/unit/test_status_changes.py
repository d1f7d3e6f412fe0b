"""The changes a step's looks see (procedure/status_changes.py): through the server steps over
the scripted fake stripe of test_server_branches, a stop, a takeover and a mirror's return are
each handed on once, in order, and a look that changes nothing is not; the tracker's own rules
(first sight, a silent probe, a server shutting down) on their own."""

from __future__ import annotations

import itertools
from dataclasses import replace

from bm_upgrade.procedure.servers import failover, upgrade_mirrors
from bm_upgrade.procedure.status_changes import StatusChange, StatusTracker
from tests.unit.test_server_branches import (
    ACTIVE,
    STANDBY,
    SYNCING,
    A,
    B,
    no_stop_requested,
    on_stripe,
    stripe,
)

__all__ = ["no_stop_requested"]  # the autouse fixture, used here too


def lines(changes: list[StatusChange]) -> list[str]:
    return [c.line() for c in changes]


def test_a_failover_records_the_stop_the_takeover_and_the_return() -> None:
    ctx, cluster = stripe({A: "4.2.1", B: "4.2.1"}, {A: [STANDBY], B: [ACTIVE]})
    ctx.options = replace(ctx.options, failback=True)
    cluster.sync_looks = 2
    changes: list[StatusChange] = []
    ctx.on_status = changes.append
    on_stripe(upgrade_mirrors, ctx)
    assert changes == []  # looks that change nothing hand nothing on
    on_stripe(failover, ctx)
    assert lines(changes) == [
        f"{B}: ACTIVE-COORDINATOR 4.2.1 -> stopped 4.2.1",
        f"{A}: PASSIVE-STANDBY 4.2.1 -> ACTIVE-COORDINATOR 4.2.1",
        f"{B}: stopped 4.2.1 -> PASSIVE-UNINITIALIZED 4.2.1",
        f"{B}: PASSIVE-UNINITIALIZED 4.2.1 -> PASSIVE-STANDBY 4.2.1",
    ]
    assert {c.stripe for c in changes} == {"east/stripe1"}
    assert [(c.before.role, c.after.role) for c in changes[:2]] == [
        ("active", None),
        ("passive", "active"),
    ]
    assert all(a.at <= b.at for a, b in itertools.pairwise(changes))


def test_a_mirror_brought_back_is_seen_leaving_stopped() -> None:
    ctx, cluster = stripe({A: "4.2.0", B: "4.2.1"}, {A: [ACTIVE], B: [STANDBY]})
    cluster.servers[B].runs = None
    cluster.sync_looks = 1
    changes: list[StatusChange] = []
    ctx.on_status = changes.append
    on_stripe(upgrade_mirrors, ctx)
    assert lines(changes) == [
        f"{B}: stopped 4.2.1 -> {SYNCING} 4.2.1",
        f"{B}: {SYNCING} 4.2.1 -> {STANDBY} 4.2.1",
    ]


def test_the_tracker_starts_from_its_first_sight_and_keeps_a_silent_servers_version() -> None:
    changes: list[StatusChange] = []
    tracker = StatusTracker(changes.append)
    tracker.saw("s1", "east/stripe1", ACTIVE, "4.2.0")
    tracker.saw("s1", "east/stripe1", ACTIVE, "4.2.0")
    tracker.saw_silent("s1", "east/stripe1", alive=True)  # shutting down: not "starting"
    tracker.saw_silent("s2", "east/stripe1", alive=True)  # first sight, not answering: nothing
    assert changes == []
    tracker.saw_silent("s1", "east/stripe1", alive=False)
    tracker.saw_silent("s1", "east/stripe1", alive=False, installed="4.2.1")
    tracker.saw_silent("s1", "east/stripe1", alive=True)
    tracker.saw("s1", "east/stripe1", STANDBY, "4.2.1")
    assert lines(changes) == [
        "s1: ACTIVE-COORDINATOR 4.2.0 -> stopped 4.2.0",
        "s1: stopped 4.2.0 -> stopped 4.2.1",
        "s1: stopped 4.2.1 -> starting 4.2.1",
        "s1: starting 4.2.1 -> PASSIVE-STANDBY 4.2.1",
    ]
