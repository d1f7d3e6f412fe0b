"""The one health check of a look (procedure/health.py), and its three readers agreeing on it:
`bm-upgrade status` renders it, the sensor alerts on it, the server check raises on it."""

from __future__ import annotations

from typing import Any

import pytest

from bm_upgrade.inventory import Inventory
from bm_upgrade.probes import OrchestratorStatus, ReplicaSync, ServerStatus
from bm_upgrade.procedure.observe import ClusterView
from bm_upgrade.procedure.seen import Seen
from bm_upgrade.procedure.watch import WatchMemory, watch_step
from bm_upgrade.status import render_text, status_report, warnings
from tests.unit.inventories import minimal, server, two_regions_wan

ACTIVE, STANDBY, SYNCING = "ACTIVE-COORDINATOR", "PASSIVE-STANDBY", "PASSIVE-UNINITIALIZED"
INVENTORY = Inventory.model_validate(minimal())
WHY = "cannot reach 10.0.0.2 over SSH (gave up after 3 attempt(s))"


def look(
    inventory: Inventory, states: dict[str, tuple[str, str] | None], **extra: Any
) -> ClusterView:
    """A look where each named server answered ``(state, version)``; None: its host was
    unreachable (the server is then not in the view)."""
    view = ClusterView(inventory, **extra)
    for _, _, srv in inventory.servers():
        answer = states[srv.name]
        if answer is None:
            view.unreachable[srv.host] = WHY
            continue
        state, version = answer
        role = "ACTIVE" if state == ACTIVE else "PASSIVE"
        status = ServerStatus(srv.name, srv.host, "OK", role, state, version, True)
        view.servers[srv.name] = Seen.answering(srv, status)
    return view


def alerts(view: ClusterView, *, upgrading: bool = False) -> list[str]:
    """The sensor's alerts on ``view``, for a stripe that had no standby since long ago."""
    since = WatchMemory(no_standby_since=dict.fromkeys(view.health.stripes, 0.0))
    return watch_step(since, view, 1000.0, upgrading=upgrading, no_standby_alert_s=60.0).raised


def test_a_healthy_stripe_reads_healthy_everywhere() -> None:
    view = look(INVENTORY, {"tsa-a1": (ACTIVE, "4.2.1"), "tsa-a2": (STANDBY, "4.2.1")})
    verdict = view.health["east/stripe1"]
    assert (verdict.active, verdict.standbys, verdict.problems) == ("tsa-a1", ["tsa-a2"], [])
    assert view.health.versions == {"4.2.1": ["tsa-a1", "tsa-a2"]}
    assert not view.health.mixed and view.health.without_standby == {}
    assert warnings(view) == []
    assert view.server_problems("4.2.1") == []
    assert alerts(view) == []
    assert view.server_problems("4.2.2") == [
        "tsa-a1 ACTIVE-COORDINATOR on 4.2.1",
        "tsa-a2 PASSIVE-STANDBY on 4.2.1",
    ]


def test_a_mixed_version_stripe() -> None:
    view = look(INVENTORY, {"tsa-a1": (ACTIVE, "4.2.1"), "tsa-a2": (STANDBY, "4.2.0")})
    assert view.health["east/stripe1"].healthy
    assert view.health.versions == {"4.2.1": ["tsa-a1"], "4.2.0": ["tsa-a2"]}
    assert warnings(view) == ["mixed versions: 4.2.0 (tsa-a2); 4.2.1 (tsa-a1)"]
    assert view.server_problems("4.2.1") == ["tsa-a2 PASSIVE-STANDBY on 4.2.0"]
    assert alerts(view) == [
        "test runs mixed versions (4.2.0, 4.2.1) and no upgrade run is going: finish the "
        "upgrade (re-execute the failed run) or roll back"
    ]
    assert alerts(view, upgrading=True) == []


@pytest.mark.parametrize(
    ("states", "problems"),
    [
        (
            {"tsa-a1": (ACTIVE, "4.2.1"), "tsa-a2": (ACTIVE, "4.2.1")},
            [
                "stripe stripe1 has 2 ACTIVE servers (tsa-a1, tsa-a2): split brain",
                "stripe stripe1 has no PASSIVE-STANDBY mirror",
            ],
        ),
        (
            {"tsa-a1": (STANDBY, "4.2.1"), "tsa-a2": (STANDBY, "4.2.1")},
            ["stripe stripe1 has no ACTIVE server"],
        ),
        (
            {"tsa-a1": (ACTIVE, "4.2.1"), "tsa-a2": (SYNCING, "4.2.1")},
            [
                "server tsa-a2 is PASSIVE-UNINITIALIZED, not PASSIVE-STANDBY",
                "stripe stripe1 has no PASSIVE-STANDBY mirror",
            ],
        ),
        (
            {"tsa-a1": (ACTIVE, "4.2.1"), "tsa-a2": None},
            [
                "server tsa-a2 on 10.0.0.2 is unreachable",
                "stripe stripe1 has no PASSIVE-STANDBY mirror",
            ],
        ),
    ],
    ids=["two actives", "no active", "mirror still syncing", "unreachable server"],
)
def test_an_unhealthy_stripe(
    states: dict[str, tuple[str, str] | None], problems: list[str]
) -> None:
    view = look(INVENTORY, states)
    assert view.health["east/stripe1"].problems == problems
    shown = warnings(view)
    assert shown[: len(problems)] == [f"east/{p}" for p in problems]
    assert view.server_problems("4.2.1") == problems + list(view.unreachable.values())
    assert not status_report(view)["healthy"]


def test_a_stripe_without_standby_is_described_and_alerted() -> None:
    view = look(INVENTORY, {"tsa-a1": (ACTIVE, "4.2.1"), "tsa-a2": None})
    assert view.health.without_standby == {
        "east/stripe1": "tsa-a1 ACTIVE-COORDINATOR on 4.2.1, tsa-a2 unreachable"
    }
    (alert,) = alerts(view)
    assert alert.startswith(
        "stripe east/stripe1 of test has had no PASSIVE-STANDBY mirror for 1000 s "
        "(tsa-a1 ACTIVE-COORDINATOR on 4.2.1, tsa-a2 unreachable)"
    )
    assert warnings(view)[-1] == f"host 10.0.0.2 is unreachable: {WHY}"
    (stripe,) = status_report(view)["regions"][0]["stripes"]
    assert [(s["name"], s["reachable"], s["error"]) for s in stripe["servers"]] == [
        ("tsa-a1", True, None),
        ("tsa-a2", False, WHY),
    ]


def test_a_single_server_stripe_warns_of_downtime_but_never_lacks_a_standby() -> None:
    data = minimal()
    data["regions"][0]["stripes"][0]["servers"] = [server("tsa-a1", "10.0.0.1")]
    inventory = Inventory.model_validate(data)
    view = look(inventory, {"tsa-a1": (ACTIVE, "4.2.1")})
    assert view.health.unmirrored == ["east/stripe1"]
    assert view.health.without_standby == {}
    assert warnings(view) == ["east/stripe stripe1 has no mirror: upgrading it means downtime"]
    assert alerts(view) == []


def test_orchestrators_count_in_versions_and_their_problems_by_region() -> None:
    inventory = Inventory.model_validate(two_regions_wan())
    states: dict[str, tuple[str, str] | None] = {
        s.name: (ACTIVE if s is st.servers[0] else STANDBY, "4.2.1")
        for _, st, s in inventory.servers()
    }
    orchestrators = {
        "east-wan-m": OrchestratorStatus(
            "east-wan-m",
            "10.0.8.1",
            running=True,
            listening=True,
            version="4.2.0",
            bind="10.0.8.1:9889",
            syncs=(
                ReplicaSync("master", "orders", "10.0.8.1:9889", "10.1.8.1:9889", True),
                ReplicaSync(
                    "master",
                    "sessions",
                    "10.0.8.1:9889",
                    "10.1.8.1:9889",
                    False,
                    "2015-07-15 10:00:01,5",
                ),
            ),
        ),
        "east-wan-s": OrchestratorStatus("east-wan-s", "10.0.8.2", running=False),
        "west-wan-m": OrchestratorStatus(
            "west-wan-m", "10.1.8.1", running=True, listening=False, bind="10.1.8.1:9889"
        ),
    }
    view = look(inventory, states, orchestrators=orchestrators)
    view.unreachable["10.1.8.2"] = "no route"  # west-wan-s: left to the unreachable host
    unsynced = (
        "orchestrator east-wan-m: replica 10.1.8.1:9889 of cache sessions not synchronized "
        "(sync initiated at 2015-07-15 10:00:01,5)"
    )
    assert view.health.orchestrators == {
        "east": [unsynced, "orchestrator east-wan-s is not running"],
        "west": ["orchestrator west-wan-m does not listen on 10.1.8.1:9889"],
    }
    assert view.health.versions["4.2.0"] == ["east-wan-m"]
    assert warnings(view) == [
        f"east/{unsynced}",
        "east/orchestrator east-wan-s is not running",
        "west/orchestrator west-wan-m does not listen on 10.1.8.1:9889",
        "mixed versions: 4.2.0 (east-wan-m); 4.2.1 ("
        + ", ".join(s.name for _, _, s in inventory.servers())
        + ")",
        "host 10.1.8.2 is unreachable: no route",
    ]
    # A server is checked by the server check; orchestrators are not its business.
    assert view.server_problems("4.2.1") == ["no route"]
    rendered = render_text(status_report(view))
    assert (
        "east-wan-m       10.0.8.1               master   up             4.2.0 log: "
        "10.1.8.1:9889/orders synchronized, 10.1.8.1:9889/sessions syncing"
    ) in rendered
    assert (
        "west-wan-m       10.1.8.1               master   starting       - log: no sync seen"
        in (rendered)
    )
    assert rendered.endswith("status: DEGRADED (5 warning(s))")
