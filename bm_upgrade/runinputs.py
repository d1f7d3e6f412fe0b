"""The checks of a run's inputs that need no network: made before a run is created, so a
mistake in them ends in one message and exit code 2 before any host is contacted.

Preflight makes them again (with the rest of the license checks) when the run starts from the
UI or a schedule, where there is no command line to stop first.
"""

from __future__ import annotations

from bm_upgrade.errors import LicenseError, UserError
from bm_upgrade.inventory import Inventory, major_minor
from bm_upgrade.license import load_license
from bm_upgrade.remote import check_known_hosts


def check_target(
    inventory: Inventory, inventory_path: str, target: str, *, given_as: str = "--to"
) -> None:
    """``target`` has a kit in the inventory and is a maintenance version of its cluster.

    Args:
        given_as: where the operator gave the target (``--to``, or the run config's
            ``target_version`` for runs from the UI or a schedule).

    Raises:
        UserError: naming the file, the kits it lists, and the way out.
    """
    listed = ", ".join(kit.version for kit in inventory.kits)
    if inventory.kit_for(target) is None:
        raise UserError(
            f"{given_as} {target}: no kit of version {target} is listed under kits in "
            f"{inventory_path} (it lists {listed}); add its url and sha256 there, "
            "or choose one of those"
        )
    wanted = major_minor(inventory.target_version)
    if major_minor(target) != wanted:
        raise UserError(
            f"{given_as} {target}: not a maintenance version of {wanted}, which "
            f"{inventory_path} describes (only the third number may change); "
            f"follow the {major_minor(target)} migration guide instead"
        )


def check_license_file(inventory: Inventory, inventory_path: str) -> None:
    """The inventory's ``license_file`` exists, can be read, and is a license key.

    Raises:
        LicenseError: naming the inventory, the field and the file.
    """
    try:
        load_license(inventory.license_file)
    except LicenseError as exc:
        raise LicenseError(f"{inventory_path}: {exc}") from None


def check_run_inputs(inventory: Inventory, inventory_path: str, target: str) -> None:
    """Every check above, cheapest first, then the known_hosts file (a corrupt line would
    otherwise stop the run at its first connection)."""
    check_target(inventory, inventory_path, target)
    check_license_file(inventory, inventory_path)
    check_known_hosts(inventory.ssh)
