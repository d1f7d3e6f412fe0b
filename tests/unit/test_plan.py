"""Plan properties over random inventories and random intermediate states (hypothesis).

A small model of the cluster applies each step's expected effect, checking the safety rules
as it goes; the properties then hold for every inventory and every state the model reaches.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bm_upgrade.errors import PlanRefused, UserError
from bm_upgrade.inventory import Inventory, parse_inventory
from bm_upgrade.plan import (
    ACTIVE,
    SEGMENTS,
    STANDBY,
    NodeState,
    Plan,
    PlanOptions,
    Step,
    make_plan,
)
from bm_upgrade.procedure.servers import ACTIONS
from tests.unit.inventories import client, minimal, orchestrator, server

OLD, TARGET = "4.2.0", "4.2.1"
UNINITIALIZED = "PASSIVE-UNINITIALIZED"
State = dict[str, NodeState]


# -- random inventories and states ----------------------------------------------------------
@st.composite
def inventories(draw: st.DrawFn, allow_single: bool = True) -> Inventory:
    data = minimal()
    regions = []
    n_regions = draw(st.integers(1, 2))
    wan = draw(st.booleans())
    for r in range(n_regions):
        stripes = []
        for s in range(draw(st.integers(1, 3))):
            low = 1 if allow_single else 2
            count = draw(st.integers(low, 3))
            servers = [server(f"r{r}s{s}n{i}", f"10.{r}.{s}.{i}") for i in range(count)]
            if count > 1 and draw(st.booleans()):
                servers[draw(st.integers(0, count - 1))]["preferred_active"] = True
            stripes.append({"name": f"stripe{s}", "servers": servers})
        region: dict[str, Any] = {
            "name": f"region{r}",
            "stripes": stripes,
            "clients": [
                client(f"r{r}c{i}", f"10.{r}.9.{i}") for i in range(draw(st.integers(0, 3)))
            ],
        }
        if wan:
            region["orchestrators"] = [
                orchestrator(f"r{r}wan{i}", f"10.{r}.8.{i}", "master" if i == 0 else "standby")
                for i in range(draw(st.integers(1, 3)))
            ]
        if draw(st.booleans()):
            region["persistent"] = draw(st.booleans())
        regions.append(region)
    data["regions"] = regions
    if wan:
        data["wan_master_region"] = "region0"
    return parse_inventory(data, "generated.yaml")


@st.composite
def healthy_states(draw: st.DrawFn, inv: Inventory) -> State:
    """A healthy cluster, some nodes possibly already on the target."""
    state: State = {}
    for region in inv.regions:
        for stripe in region.stripes:
            active = draw(st.sampled_from([s.name for s in stripe.servers]))
            for srv in stripe.servers:
                state[srv.name] = NodeState(
                    True,
                    draw(st.sampled_from([OLD, TARGET])),
                    ACTIVE if srv.name == active else STANDBY,
                )
        names = [c.name for c in region.clients] + [o.name for o in region.orchestrators]
        for name in names:
            state[name] = NodeState(True, draw(st.sampled_from([OLD, TARGET])))
    return state


def options_for(inv: Inventory, **extra: Any) -> PlanOptions:
    return PlanOptions.from_inventory(inv, allow_downtime=True, accept_data_loss=True, **extra)


plan_options = st.fixed_dictionaries(
    {
        "failback": st.booleans(),
        "delete_dirty_backups": st.booleans(),
        "client_batch_size": st.integers(1, 4),
    }
)


# -- the model ------------------------------------------------------------------------------
class Cluster:
    """Applies each step's expected effect to a state, checking the safety rules."""

    def __init__(self, inv: Inventory, state: State) -> None:
        self.inv = inv
        self.state = dict(state)
        self.stripe_of = {srv.name: stripe for _, stripe, srv in inv.servers()}
        self.roles = {o.name: o.role for r in inv.regions for o in r.orchestrators}
        self.started_orchestrator_versions: set[str] = set()

    def down_in_stripe(self, name: str) -> int:
        return sum(not self.state[s.name].running for s in self.stripe_of[name].servers)

    def others(self, name: str) -> list[str]:
        return [s.name for s in self.stripe_of[name].servers if s.name != name]

    def apply(self, step: Step) -> None:
        if step.skipped or step.kind == "check" or step.phase == "kit":
            return
        name, action = step.node, step.action
        seen = self.state[name]
        if step.phase == "servers":
            self._server(step, name, action, seen)
            # Safety rule 3: at most one server of a stripe is down at any moment.
            assert self.down_in_stripe(name) <= 1, f"two servers down after {step}"
        elif action == "stop":
            assert seen.running
            self.state[name] = replace(seen, running=False)
        elif action in {"replace-jars", "install"}:
            assert not seen.running, f"{action} on a running {name}"
            self.state[name] = replace(seen, version=step_target(step))
        elif action == "start":
            assert not seen.running and seen.version == step_target(step)
            self.state[name] = replace(seen, running=True)
            if step.phase == "orchestrators":
                self.started_orchestrator_versions.add(seen.version)
        else:
            raise AssertionError(f"unexpected step {step}")

    def _server(self, step: Step, name: str, action: str, seen: NodeState) -> None:
        if action in {"stop", "failover-stop", "failback-stop"}:
            assert seen.running
            if seen.state == ACTIVE and len(self.stripe_of[name].servers) > 1:
                # Safety rule 2: an ACTIVE stops only while a mirror is PASSIVE-STANDBY.
                assert action != "stop"
                assert any(
                    self.state[o].running and self.state[o].state == STANDBY
                    for o in self.others(name)
                ), f"{name} stopped with no standby"
            self.state[name] = NodeState(False, seen.version, None)
        elif action == "wait-failover":
            assert seen.running and seen.state == STANDBY
            assert not any(
                self.state[o].state == ACTIVE and self.state[o].running for o in self.others(name)
            )
            self.state[name] = replace(seen, state=ACTIVE)
        elif action == "install":
            assert not seen.running
            self.state[name] = replace(seen, version=step_target(step))
        elif action == "start":
            assert not seen.running
            # Safety rule 4 in the model: start only on the installed target kit.
            assert seen.version == step_target(step)
            single = len(self.stripe_of[name].servers) == 1
            self.state[name] = NodeState(
                True, seen.version, "START-STATE" if single else UNINITIALIZED
            )
        elif action == "confirm-standby":
            assert seen.running and seen.state in {UNINITIALIZED, STANDBY}
            assert any(
                self.state[o].running and self.state[o].state == ACTIVE for o in self.others(name)
            ), "a standby needs an active"
            self.state[name] = replace(seen, state=STANDBY)
        elif action == "confirm-active":
            assert seen.running
            self.state[name] = replace(seen, state=ACTIVE)
        else:
            raise AssertionError(f"unexpected server step {step}")


def step_target(step: Step) -> str:
    return TARGET


def run(inv: Inventory, state: State, steps: list[Step]) -> Cluster:
    model = Cluster(inv, state)
    for step in steps:
        model.apply(step)
    return model


def draw_case(data: st.DataObject) -> tuple[Inventory, State, PlanOptions]:
    """A drawn inventory, a healthy state of it, and run options."""
    inv = data.draw(inventories())
    return inv, data.draw(healthy_states(inv)), options_for(inv, **data.draw(plan_options))


# -- properties -----------------------------------------------------------------------------
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data())
def test_plan_reaches_the_target_safely(data: st.DataObject) -> None:
    inv, state, opts = draw_case(data)
    plan = make_plan(inv, state, opts)
    model = run(inv, state, plan.todo())
    # Every node ends on the target and running; every stripe one ACTIVE + standbys.
    for name, seen in model.state.items():
        assert seen.running and seen.version == TARGET, name
    for _, stripe, _ in inv.servers():
        states = [model.state[s.name].state for s in stripe.servers]
        assert states.count(ACTIVE) == 1
        if len(stripe.servers) > 1:
            assert states.count(STANDBY) == len(stripe.servers) - 1
        preferred = stripe.preferred_active()
        if opts.failback and preferred is not None and len(stripe.servers) > 1:
            assert model.state[preferred.name].state == ACTIVE
    # Safety rule 6 in the model: all orchestrators started on one version.
    assert model.started_orchestrator_versions <= {TARGET}


@SETTINGS
@given(data=st.data())
def test_mirrors_before_their_active(data: st.DataObject) -> None:
    inv, state, opts = draw_case(data)
    plan = make_plan(inv, state, opts)
    todo = plan.todo()
    for _, stripe, srv in inv.servers():
        if state[srv.name].state != ACTIVE or len(stripe.servers) == 1:
            continue
        stops = [i for i, s in enumerate(todo) if s.node == srv.name and "stop" in s.action]
        if not stops:
            continue
        first_active_stop = stops[0]
        for other in stripe.servers:
            if other.name == srv.name:
                continue
            mirror_steps = [
                i
                for i, s in enumerate(todo)
                if s.node == other.name and s.action in {"stop", "install", "confirm-standby"}
            ]
            upgrade_steps = [
                i for i in mirror_steps if i < first_active_stop or todo[i].action == "install"
            ]
            assert all(i < first_active_stop for i in upgrade_steps), (srv.name, other.name)


@SETTINGS
@given(data=st.data())
def test_phase_order(data: st.DataObject) -> None:
    inv, state, opts = draw_case(data)
    plan = make_plan(inv, state, opts)
    steps = list(plan.steps)

    def indexes(phase: str, action: str | None = None) -> list[int]:
        return [
            i
            for i, s in enumerate(steps)
            if s.phase == phase and (action is None or s.action == action)
        ]

    server_steps = indexes("servers")
    kit_stage = indexes("kit", "stage")
    for later in ("clients", "orchestrators"):
        # Every server step of every region before any client or orchestrator step.
        assert all(i < j for i in server_steps for j in indexes(later))
        # ... with the verify step between them (safety rules 5 and 6).
        assert all(i < j for i in indexes("verify") for j in indexes(later))
    assert all(i < j for i in indexes("clients") for j in indexes("orchestrators"))
    # Nothing is stopped before preflight and staging (safety rule 1).
    stops = [i for i, s in enumerate(steps) if "stop" in s.action]
    assert all(i < j for i in indexes("preflight") + kit_stage for j in stops)
    # Standby orchestrators stop before master ones.
    roles = {o.name: o.role for r in inv.regions for o in r.orchestrators}
    orch_stops = [
        (i, roles[s.node])
        for i, s in enumerate(steps)
        if s.phase == "orchestrators" and s.action == "stop"
    ]
    standby_stops = [i for i, role in orch_stops if role == "standby"]
    master_stops = [i for i, role in orch_stops if role == "master"]
    assert all(i < j for i in standby_stops for j in master_stops)
    # Every orchestrator is installed before any starts (rule 6: one version).
    installs = [
        i for i, s in enumerate(steps) if s.phase == "orchestrators" and s.action == "install"
    ]
    starts = [i for i, s in enumerate(steps) if s.phase == "orchestrators" and s.action == "start"]
    assert all(i < j for i in installs for j in starts)


@SETTINGS
@given(data=st.data())
def test_replan_from_any_intermediate_state_yields_the_remaining_steps(data: st.DataObject) -> None:
    inv, state, opts = draw_case(data)
    todo = make_plan(inv, state, opts).todo()
    done = data.draw(st.integers(0, len(todo)))
    model = run(inv, state, todo[:done])
    replanned = make_plan(inv, model.state, opts)

    def node_steps(steps: list[Step]) -> list[tuple[str, str, str]]:
        # Kit steps are re-run on purpose: fetch and stage skip at run time when the file is
        # already there with the right sha256; the observed state does not include files.
        return [s.key for s in steps if s.phase != "kit"]

    assert node_steps(replanned.todo()) == node_steps(todo[done:])


@SETTINGS
@given(data=st.data())
def test_a_finished_cluster_plans_nothing(data: st.DataObject) -> None:
    inv, state, opts = draw_case(data)
    done = run(inv, state, make_plan(inv, state, opts).todo()).state
    again = make_plan(inv, done, opts)
    assert again.todo() == []
    assert all(s.reason for s in again.steps if s.skipped)


@SETTINGS
@given(data=st.data())
def test_every_server_step_carries_its_segment_in_order(data: st.DataObject) -> None:
    """From any state the plan passes through, a stripe's steps run: those of no segment
    (a server to bring back or to confirm), then mirrors, failover, failback; each segment
    opens with a stop, so an op that meets an earlier segment's step has stopped nothing; a
    healthy stripe has no step without a segment."""
    inv, state, opts = draw_case(data)
    todo = make_plan(inv, state, opts).todo()
    model = run(inv, state, todo[: data.draw(st.integers(0, len(todo)))])
    steps = make_plan(inv, model.state, opts).steps
    for region, stripe in inv.stripes():
        mine = [s for s in steps if (s.region, s.stripe) == (region.name, stripe.name)]
        assert all(s.phase == "servers" for s in mine)
        order = [-1 if s.segment is None else SEGMENTS.index(s.segment) for s in mine]
        assert order == sorted(order), [(s.segment, s.action, s.node) for s in mine]
        for segment in SEGMENTS:
            first = next((s for s in mine if s.segment == segment and not s.skipped), None)
            assert first is None or first.action in {"stop", "failover-stop", "failback-stop"}
        healthy = all(
            model.state[s.name].running and model.state[s.name].state in {ACTIVE, STANDBY}
            for s in stripe.servers
        )
        if healthy:
            assert all(s.segment is not None for s in mine)


@SETTINGS
@given(data=st.data())
def test_the_server_procedure_knows_every_server_action_the_plan_asks_for(
    data: st.DataObject,
) -> None:
    """Every server step to do has its action in the procedure's dispatch; the actions it
    has none for (``upgrade``, ``failback``) only ever mark a server already done."""
    inv, state, opts = draw_case(data)
    todo = make_plan(inv, state, opts).todo()
    model = run(inv, state, todo[: data.draw(st.integers(0, len(todo)))])
    for step in make_plan(inv, model.state, opts).steps:
        if step.phase != "servers":
            continue
        if step.skipped:
            assert step.action in {"upgrade", "failback"}
        else:
            assert step.action in ACTIONS


LONE_SERVER = ["stop", "install", "start", "confirm-active"]
"""The steps of a stripe's lone server: stopped, so the stripe is down until it is back."""


def lone_actions(plan: Plan) -> list[str]:
    """The actions the plan still takes on the lone server tsa-x."""
    return [s.action for s in plan.todo() if s.node == "tsa-x"]


def test_stripe_without_mirror_is_refused_without_consent() -> None:
    data = minimal()
    data["regions"][0]["stripes"].append(
        {"name": "lonely", "servers": [server("tsa-x", "10.0.0.9")]}
    )
    inv = parse_inventory(data, "x")
    with pytest.raises(PlanRefused) as caught:
        make_plan(inv)
    assert len(caught.value.reasons) == 1
    reason = caught.value.reasons[0]
    assert "east/lonely" in reason and "--allow-downtime" in reason
    plan = make_plan(inv, options=PlanOptions.from_inventory(inv, allow_downtime=True))
    assert lone_actions(plan) == LONE_SERVER


def test_non_persistent_stripe_without_mirror_needs_both_consents() -> None:
    data = minimal(persistent=False)
    data["regions"][0]["stripes"][0]["servers"] = [server("tsa-x", "10.0.0.9")]
    inv = parse_inventory(data, "x")
    with pytest.raises(PlanRefused) as caught:
        make_plan(inv, options=PlanOptions.from_inventory(inv, allow_downtime=True))
    assert len(caught.value.reasons) == 1
    assert "loses all its data" in caught.value.reasons[0]
    assert "--accept-data-loss" in caught.value.reasons[0]
    with pytest.raises(PlanRefused) as caught:
        make_plan(inv, options=PlanOptions.from_inventory(inv, accept_data_loss=True))
    assert "--allow-downtime" in caught.value.reasons[0]
    plan = make_plan(
        inv, options=PlanOptions.from_inventory(inv, allow_downtime=True, accept_data_loss=True)
    )
    assert lone_actions(plan) == LONE_SERVER


def test_persistent_flag_per_region_overrides_cluster() -> None:
    data = minimal(persistent=False)
    data["regions"][0]["persistent"] = True
    data["regions"][0]["stripes"][0]["servers"] = [server("tsa-x", "10.0.0.9")]
    inv = parse_inventory(data, "x")
    plan = make_plan(inv, options=PlanOptions.from_inventory(inv, allow_downtime=True))
    assert lone_actions(plan) == LONE_SERVER
    # The cluster-wide flag alone (non-persistent) would also want --accept-data-loss.
    data["regions"][0]["persistent"] = False
    inv = parse_inventory(data, "x")
    with pytest.raises(PlanRefused, match="--accept-data-loss"):
        make_plan(inv, options=PlanOptions.from_inventory(inv, allow_downtime=True))


def test_not_a_maintenance_upgrade_is_refused() -> None:
    inv = parse_inventory(minimal(), "x")
    observed = {
        "tsa-a1": NodeState(True, "4.1.3", ACTIVE),
        "tsa-a2": NodeState(True, "4.2.0", STANDBY),
        "app1": NodeState(True, "4.3.0"),
    }
    with pytest.raises(PlanRefused) as caught:
        make_plan(inv, observed)
    reasons = caught.value.reasons
    assert len(reasons) == 3
    assert "tsa-a1" in reasons[0] and "not a maintenance upgrade" in reasons[0]
    assert "client app1" in reasons[1]
    assert reasons[2].startswith("the nodes run 3 versions (4.1.3: tsa-a1; 4.2.0: tsa-a2;")


def test_target_without_kit_is_a_user_error() -> None:
    inv = parse_inventory(minimal(), "x")
    with pytest.raises(UserError, match=r"no kit of version 4\.2\.9"):
        make_plan(inv, options=PlanOptions.from_inventory(inv, target_version="4.2.9"))


def test_rollback_to_an_older_kit_is_a_rolling_downgrade() -> None:
    inv = parse_inventory(minimal(), "x")
    observed = {
        "tsa-a1": NodeState(True, "4.2.1", ACTIVE),
        "tsa-a2": NodeState(True, "4.2.1", STANDBY),
        "app1": NodeState(True, "4.2.1"),
    }
    plan = make_plan(inv, observed, PlanOptions.from_inventory(inv, target_version="4.2.0"))
    assert [(s.node, s.action) for s in plan.todo() if s.phase == "servers"] == [
        ("tsa-a2", "stop"),
        ("tsa-a2", "install"),
        ("tsa-a2", "start"),
        ("tsa-a2", "confirm-standby"),
        ("tsa-a1", "failover-stop"),
        ("tsa-a2", "wait-failover"),
        ("tsa-a1", "install"),
        ("tsa-a1", "start"),
        ("tsa-a1", "confirm-standby"),
    ]


def test_skipped_steps_say_why() -> None:
    inv = parse_inventory(minimal(), "x")
    observed = {
        "tsa-a1": NodeState(True, OLD, ACTIVE),
        "tsa-a2": NodeState(True, TARGET, STANDBY),
        "app1": NodeState(True, OLD),
    }
    plan = make_plan(inv, observed)
    skipped = [(s.node, s.reason) for s in plan.steps if s.skipped]
    assert skipped == [
        ("10.0.0.2", "every node on 10.0.0.2 already runs 4.2.1"),
        ("tsa-a2", "already runs 4.2.1 and is PASSIVE-STANDBY"),
    ]
    servers = [(s.node, s.action) for s in plan.todo() if s.phase == "servers"]
    assert servers[0] == ("tsa-a1", "failover-stop")


def test_parallel_groups_are_explicit() -> None:
    inv = parse_inventory(minimal(), "x")
    steps = make_plan(inv).steps
    server_steps = [s for s in steps if s.phase == "servers"]
    assert {s.lane for s in server_steps} == {"servers/east/stripe1"}
    assert len({s.stage for s in server_steps}) == 1
    as_json = server_steps[0].as_dict()
    assert as_json["parallel_group"] == f"{server_steps[0].stage}:servers/east/stripe1"
    assert {"phase", "node", "action", "skipped", "parallel_group"} <= set(as_json)


def test_plan_is_a_pure_function() -> None:
    inv = parse_inventory(minimal(), "x")
    first = make_plan(inv)
    assert first == make_plan(inv)
    assert [s.as_dict() for s in first.steps] == [s.as_dict() for s in make_plan(inv).steps]


def test_run_options_carry_every_policy_field_and_take_overrides() -> None:
    """PlanOptions is the run's one options object: every policy field, by the same name,
    so a new policy field cannot be forgotten by a run; overrides win, None ones do not."""
    from dataclasses import fields

    from bm_upgrade.inventory import Policy, Timeouts

    assert {f.name for f in fields(PlanOptions)} == {*Policy.model_fields, "target_version"}
    inventory = parse_inventory(minimal(), "x")
    options = PlanOptions.from_inventory(
        inventory,
        target_version="4.2.0",
        failback=True,
        client_batch_size=None,
        timeouts=Timeouts(sync_s=5),
    )
    assert options.target_version == "4.2.0"
    assert options.failback is True
    assert options.client_batch_size == inventory.policy.client_batch_size
    assert options.timeouts.sync_s == 5
    with pytest.raises(TypeError, match="not a run option: colour"):
        PlanOptions.from_inventory(inventory, colour="blue")
