"""Preflight refuses a target without a kit before it contacts any host: a run launched from
the UI or a schedule has no command line that checked it first."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest

from bm_upgrade.errors import UserError
from bm_upgrade.inventory import Inventory
from bm_upgrade.plan import PlanOptions
from bm_upgrade.procedure.preflight import preflight
from tests.unit.inventories import minimal


class NoHosts:
    """A host pool that must not be used."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(f"preflight contacted a host ({name})")


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("4.2.999", "target_version 4.2.999: no kit of version 4.2.999 is listed under kits"),
        ("4.3.0", "target_version 4.3.0: no kit of version 4.3.0"),
    ],
)
def test_a_target_without_a_kit_is_refused_before_any_host(target: str, said: str) -> None:
    inventory = Inventory.model_validate(minimal())
    options = PlanOptions.from_inventory(inventory, target_version=target)
    pool: Any = NoHosts()
    with pytest.raises(UserError) as refused:
        preflight(inventory, pool, options)
    assert str(refused.value).startswith(said)
    assert "the inventory of test" in str(refused.value)
