"""The predicted duration's arithmetic (plan/estimate.py): units of work from a plan, rates
from past runs, stripes over parallel_stripes, the critical path, the timeouts with no past
run, and the sentences `bm-upgrade plan` and preflight say."""

from __future__ import annotations

import datetime
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bm_upgrade.cli import main
from bm_upgrade.inventory import Inventory, Timeouts, Window, parse_inventory
from bm_upgrade.plan import NodeState, PlanOptions, make_plan, render_plan
from bm_upgrade.plan.estimate import (
    NO_HISTORY,
    PastRun,
    PastStep,
    Prediction,
    Work,
    estimate,
    late_start,
    minutes,
    stripes_span,
    window_fit,
    work_of,
)
from tests.unit.inventories import minimal, server, two_regions_wan

UTC = datetime.UTC
TIMEOUTS = Timeouts(stop_s=10, start_s=20, sync_s=30, failover_s=5, client_s=7, orchestrator_s=11)


def inventory(data: dict[str, Any] | None = None, **policy: Any) -> Inventory:
    data = data or two_regions_wan()
    data["policy"] = {"timeouts": TIMEOUTS.model_dump(), **policy}
    return parse_inventory(data, "inv.yaml")


def work(inv: Inventory, **overrides: Any) -> Work:
    options = PlanOptions.from_inventory(inv, **overrides)
    return work_of(make_plan(inv, options=options), inv)


def past(*steps: tuple[str, float, int], idle_s: float | None = None) -> PastRun:
    return PastRun(tuple(PastStep(k, s, u) for k, s, u in steps), idle_s)


def one_stripe_run(mirror_s: float = 10.0, failover_s: float = 20.0) -> PastRun:
    """A past run of the minimal cluster: its steps' times and units."""
    return past(
        ("preflight", 2.0, 1),
        ("download", 1.0, 1),
        ("stage_kit", 3.0, 1),
        ("upgrade_mirrors_east_stripe1", mirror_s, 1),
        ("failover_east_stripe1", failover_s, 1),
        ("verify_servers", 1.0, 1),
        ("restart_clients_1", 4.0, 1),
        ("report", 1.0, 1),
    )


def test_units_of_work_from_a_plan_of_every_node_to_upgrade() -> None:
    inv = inventory()
    w = work(inv)
    assert w.units["upgrade_mirrors_east_stripe1"] == 1  # its one mirror restarted
    assert w.units["failover_west_stripe2"] == 1  # the old active
    assert work(inv, failback=True).units["failover_west_stripe2"] == 2  # and the failback
    # Four clients in batches of one: a graph step each; the WAN cycle once.
    assert [w.units[f"restart_clients_{i}"] for i in (1, 2, 3, 4)] == [1, 1, 1, 1]
    assert w.units["wan_cycle"] == 1
    assert len(w.stripes) == 4 and w.stripes[0] == (
        "upgrade_mirrors_east_stripe1",
        "failover_east_stripe1",
    )


def test_a_run_batch_size_smaller_than_the_graphs_puts_the_rest_on_the_last_step() -> None:
    inv = inventory(client_batch_size=2)
    assert [work(inv).units[f"restart_clients_{i}"] for i in (1, 2)] == [1, 1]
    assert [work(inv, client_batch_size=1).units[f"restart_clients_{i}"] for i in (1, 2)] == [
        1,
        3,
    ]


def test_nodes_already_on_the_target_are_no_work() -> None:
    inv = inventory(minimal())
    on_target = {n.name: NodeState(True, "4.2.1", None) for n in inv.nodes()}
    on_target["tsa-a1"] = NodeState(True, "4.2.1", "ACTIVE-COORDINATOR")
    on_target["tsa-a2"] = NodeState(True, "4.2.1", "PASSIVE-STANDBY")
    w = work_of(make_plan(inv, on_target), inv)
    assert w.units["upgrade_mirrors_east_stripe1"] == 0
    assert w.units["failover_east_stripe1"] == 0
    assert w.units["restart_clients_1"] == 0
    # A step with nothing to change takes what such steps took before (looking only).
    idle = past(("upgrade_mirrors_east_stripe1", 0.5, 0), ("failover_east_stripe1", 0.7, 0))
    p = estimate(w, [one_stripe_run(), idle])
    assert p.steps["upgrade_mirrors_east_stripe1"] == 0.5
    assert p.steps["failover_east_stripe1"] == 0.7
    assert p.steps["restart_clients_1"] == 0.0  # no past batch that did nothing


def test_no_history_is_the_timeouts_and_says_so() -> None:
    inv = inventory()
    p = estimate(work(inv), [])
    assert p.basis == NO_HISTORY and not p.from_history
    server = TIMEOUTS.stop_s + TIMEOUTS.start_s + TIMEOUTS.sync_s
    assert p.steps["upgrade_mirrors_east_stripe1"] == server
    assert p.steps["failover_east_stripe1"] == TIMEOUTS.failover_s + server
    assert p.steps["restart_clients_1"] == 2 * TIMEOUTS.client_s
    assert p.steps["wan_cycle"] == 2 * TIMEOUTS.orchestrator_s
    assert p.steps["preflight"] == 0.0  # no timeout of its own
    assert p.phases["servers"] == 4 * (2 * server + TIMEOUTS.failover_s)
    assert p.total_s == pytest.approx(sum(p.phases.values()))


def test_stripes_side_by_side_up_to_parallel_stripes() -> None:
    history = [
        past(("upgrade_mirrors_x", 10.0, 1), ("failover_x", 20.0, 1), ("verify_servers", 1.0, 1))
    ]
    servers = {}
    for parallel in (1, 2, 3, 4, 8):
        inv = inventory(parallel_stripes=parallel)
        servers[parallel] = estimate(work(inv), history).phases["servers"]
    # Four stripes of 30 s, then verify (1 s): in 4, 2, 2 (3 slots: one runs two), 1 rounds.
    assert servers == {1: 121.0, 2: 61.0, 3: 61.0, 4: 31.0, 8: 31.0}


def test_uneven_stripes_take_the_first_free_slot_in_graph_order() -> None:
    assert stripes_span([50, 10, 10, 10], 2) == (50, 1)
    assert stripes_span([10, 10, 10, 50], 2) == (60, 2)
    assert stripes_span([], 3) == (0.0, 0)


def test_a_stripe_with_more_mirrors_takes_longer_by_each() -> None:
    data = minimal()
    data["regions"][0]["stripes"][0]["servers"].append(server("tsa-a3", "10.0.0.3"))
    inv = inventory(data)
    p = estimate(work(inv), [one_stripe_run(mirror_s=10.0)])
    assert p.steps["upgrade_mirrors_east_stripe1"] == 20.0
    # A past step that restarted two servers counts 5 s per server.
    p = estimate(work(inv), [past(("upgrade_mirrors_east_stripe1", 10.0, 2))])
    assert p.steps["upgrade_mirrors_east_stripe1"] == 10.0


def test_an_outlier_run_does_not_move_the_prediction() -> None:
    inv = inventory(minimal())
    usual = [one_stripe_run(mirror_s=10.0) for _ in range(4)]
    slow = one_stripe_run(mirror_s=1000.0)
    p = estimate(work(inv), [slow, *usual])
    assert p.steps["upgrade_mirrors_east_stripe1"] == 10.0
    assert p.basis == "the last 5 successful runs"
    assert estimate(work(inv), [one_stripe_run()]).basis == "the last successful run"


def test_a_kind_no_past_run_did_comes_from_the_timeouts() -> None:
    inv = inventory()
    p = estimate(work(inv), [one_stripe_run()])
    assert p.from_history
    assert p.steps["wan_cycle"] == 2 * TIMEOUTS.orchestrator_s
    assert "wan_cycle: the timeouts" in p.basis


def test_dagsters_time_between_steps_counts_once_per_step_on_the_critical_path() -> None:
    inv = inventory(minimal())
    run = one_stripe_run()
    gap = 0.5
    with_gaps = PastRun(run.steps, idle_s=gap * len(run.steps))
    p = estimate(work(inv), [with_gaps])
    plain = estimate(work(inv), [run])
    assert p.phases["preparation"] == plain.phases["preparation"] + 3 * gap
    assert p.phases["servers"] == plain.phases["servers"] + 3 * gap  # mirrors, failover, verify
    assert p.total_s == pytest.approx(plain.total_s + len(run.steps) * gap)
    assert p.steps == plain.steps  # a step's own time leaves the gaps out


def prediction(total_s: float, basis: str = "the last 2 successful runs") -> Prediction:
    return Prediction({}, {"servers": total_s}, total_s, basis)


def test_whether_it_fits_the_next_window() -> None:
    window = Window(cron="0 2 * * 0", timezone="UTC", length_minutes=60)
    monday = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    fits = window_fit(prediction(3600), window, monday)
    assert fits == "fits the next maintenance window (2026-12-06T02:00:00+00:00, 60 min)"
    assert window_fit(prediction(3601), window, monday).startswith("does NOT fit")
    assert "no maintenance window" in window_fit(prediction(1), Window(enabled=False), monday)


def test_a_late_start_is_told_from_history_only() -> None:
    now = datetime.datetime(2026, 12, 6, 5, 50, tzinfo=UTC)
    end = datetime.datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
    assert late_start(prediction(600), end, now) is None
    said = late_start(prediction(900), end, now)
    assert said is not None
    assert said.startswith("the run is expected to take 15 min (the last 2 successful runs)")
    assert "only 10 min are left" in said and "2026-12-06T06:00:00+00:00" in said
    # The timeouts say how long each wait may take at most, not how long it takes.
    assert late_start(prediction(10**6, NO_HISTORY), end, now) is None


def test_durations_as_a_person_reads_them() -> None:
    assert [minutes(s) for s in (0, 45.4, 89, 90, 3599, 7200, 7500)] == [
        "0 s",
        "45 s",
        "89 s",
        "2 min",
        "60 min",
        "2 h 00 min",
        "2 h 05 min",
    ]


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inventory.yaml"


def test_plan_shows_the_expected_duration_and_the_window(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["plan", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    # Three stripes, two side by side, failback on: 2 x (mirror + failover and failback).
    assert (
        "\nExpected duration: 4 h 30 min (servers 3 h 50 min, clients 20 min, wan 20 min)\n" in out
    )
    assert "  from the inventory's timeouts (DAGSTER_HOME is not set: no past run read)\n" in out
    assert "  does NOT fit the next maintenance window (" in out
    assert main(["plan", str(EXAMPLE), "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)["prediction"]
    assert predicted["total_s"] == 16200.0
    assert set(predicted["phases"]) == {"preparation", "servers", "clients", "wan", "report"}
    assert predicted["steps"]["failover_frankfurt_stripe1"] == 4680.0
    assert predicted["window"].startswith("does NOT fit the next maintenance window")


def test_the_canary_runs_alone_before_the_others_side_by_side() -> None:
    history = [
        past(("upgrade_mirrors_x", 10.0, 1), ("failover_x", 20.0, 1), ("verify_servers", 1.0, 1))
    ]
    inv = inventory(parallel_stripes=4, canary="west/stripe2")
    w = work(inv)
    assert w.canary == ("upgrade_mirrors_west_stripe2", "failover_west_stripe2")
    assert ("upgrade_mirrors_west_stripe2", "failover_west_stripe2") not in w.stripes
    p = estimate(w, history)
    # The canary's 30 s alone, then the three others side by side, then verify.
    assert p.phases["servers"] == 30.0 + 30.0 + 1.0
    assert p.basis.endswith("; the wait for the canary's approval not counted")
    # A run that sets no canary (run config): all four side by side.
    options = replace(PlanOptions.from_inventory(inv), canary=None)
    assert (
        estimate(work_of(make_plan(inv, options=options), inv), history).phases["servers"] == 31.0
    )


def test_the_plan_shows_the_canary_first_then_its_approval_gate() -> None:
    inv = inventory(parallel_stripes=4, canary="west/stripe2")
    plan = make_plan(inv)
    servers = [s for s in plan.steps if s.phase in ("servers", "approval")]
    gate = next(i for i, s in enumerate(servers) if s.action == "approve-canary")
    assert gate > 0 and servers[gate].kind == "check" and servers[gate].phase == "approval"
    # A stripe's own plan (what its ops do) holds no gate: it is not a server step.
    assert "approve-canary" not in {s.action for s in plan.steps if s.phase == "servers"}
    assert {(s.region, s.stripe) for s in servers[:gate]} == {("west", "stripe2")}
    assert ("west", "stripe2") not in {(s.region, s.stripe) for s in servers[gate + 1 :]}
    text = render_plan(plan)
    assert "approve-canary" in text and "bm-upgrade approve RUN_ID" in text
    # Without a canary, no gate.
    options = replace(PlanOptions.from_inventory(inv), canary=None)
    assert "approve-canary" not in {s.action for s in make_plan(inv, options=options).steps}
