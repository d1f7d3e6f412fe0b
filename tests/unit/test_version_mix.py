"""The preparation rule: one version across servers and clients before an upgrade starts; a
mix of one version and the run's target is an upgrade to resume; any other mix is refused,
naming the nodes of each version."""

from __future__ import annotations

import pytest

from bm_upgrade.errors import PlanRefused
from bm_upgrade.inventory import Inventory
from bm_upgrade.plan import NodeState, PlanOptions, make_plan
from bm_upgrade.plan.refusals import version_mix
from tests.unit import inventories


def inventory() -> Inventory:
    return Inventory.model_validate(inventories.minimal())


def states(a1: str, a2: str, app1: str) -> dict[str, NodeState]:
    return {
        "tsa-a1": NodeState(True, a1, "ACTIVE-COORDINATOR"),
        "tsa-a2": NodeState(True, a2, "PASSIVE-STANDBY"),
        "app1": NodeState(True, app1),
    }


@pytest.mark.parametrize(
    "versions",
    [
        ("4.2.0", "4.2.0", "4.2.0"),  # one version: a fresh upgrade
        ("4.2.0", "4.2.1", "4.2.0"),  # source and target: resumed
        ("4.2.1", "4.2.1", "4.2.0"),  # servers done, the client not yet
    ],
)
def test_one_version_or_source_and_target_is_allowed(versions: tuple[str, str, str]) -> None:
    assert version_mix(inventory(), states(*versions), "4.2.1") is None
    plan = make_plan(inventory(), states(*versions), PlanOptions("4.2.1"))
    assert plan.target_version == "4.2.1"


def test_two_versions_neither_the_target_are_refused_naming_the_nodes() -> None:
    why = version_mix(inventory(), states("4.2.0", "4.2.2", "4.2.0"), "4.2.1")
    assert why == (
        "the nodes run 2 versions (4.2.0: tsa-a1, app1; 4.2.2: tsa-a2) and the target is "
        "4.2.1: every server and client must run one version before an upgrade starts (only "
        "a mix of one version and 4.2.1 is an upgrade to resume); bring the odd nodes to one "
        "version first"
    )


def test_three_versions_are_refused_even_with_the_target() -> None:
    with pytest.raises(PlanRefused) as refused:
        make_plan(inventory(), states("4.2.0", "4.2.1", "4.2.2"), PlanOptions("4.2.1"))
    assert refused.value.reasons == [
        "the nodes run 3 versions (4.2.0: tsa-a1; 4.2.1: tsa-a2; 4.2.2: app1) and the target "
        "is 4.2.1: every server and client must run one version before an upgrade starts "
        "(only a mix of one version and 4.2.1 is an upgrade to resume); bring the odd nodes "
        "to one version first"
    ]


def test_unknown_versions_are_left_out() -> None:
    observed = states("4.2.0", "4.2.0", "4.2.0")
    observed["tsa-a2"] = NodeState(False, None)
    assert version_mix(inventory(), observed, "4.2.2") is None


def test_the_persistence_read_decides_the_data_loss_refusal() -> None:
    data = inventories.minimal(persistent=True)
    data["regions"][0]["stripes"][0]["servers"] = data["regions"][0]["stripes"][0]["servers"][:1]
    inv = Inventory.model_validate(data)
    options = PlanOptions("4.2.1", allow_downtime=True)
    make_plan(inv, {}, options)  # the inventory says persistent: no data loss
    with pytest.raises(PlanRefused) as refused:
        make_plan(inv, {}, options, persistent={"east/stripe1": False})
    assert refused.value.reasons == [
        "stripe east/stripe1 has no mirror and is not persistent: upgrading it loses all its "
        "data; add a mirror, or accept the loss with --accept-data-loss "
        "(policy.accept_data_loss)"
    ]
