"""The kit swap's pure parts: where it works (one work folder per server), which kept previous
kit belongs to a kit root, and what proves a kit root (issue 11: B1, C2)."""

from __future__ import annotations

from bm_upgrade.procedure.kit_swap import KitSwap, proven_kit
from tests.unit.inventories import server_model


def test_each_server_has_its_own_work_folder() -> None:
    """Two servers never share scratch space, even with the same kit root on one host."""
    one, two = server_model(), server_model(name="tsa-a2", data_dir="/var/tc/data2")
    assert KitSwap.for_server(one).work_dir == "/opt/tc/.bm-upgrade-work/tsa-a1"
    assert KitSwap.for_server(two).work_dir == "/opt/tc/.bm-upgrade-work/tsa-a2"
    assert KitSwap.for_server(one).previous_dir == KitSwap.for_server(two).previous_dir


def test_newest_previous_is_the_first_kept_kit_of_that_kit_root() -> None:
    swap = KitSwap.for_server(server_model(install_dir="/opt/tc/tsa"))
    listing = [
        "/opt/tc/.bm-upgrade-previous/tsa-1-4.2.1",  # another kit root's (tsa-1)
        "/opt/tc/.bm-upgrade-previous/tsa-notes",
        "/opt/tc/.bm-upgrade-previous/tsa-4.2.0",
        "/opt/tc/.bm-upgrade-previous/tsa-unknown",
    ]
    assert swap.newest_previous(listing) == "/opt/tc/.bm-upgrade-previous/tsa-4.2.0"
    assert swap.newest_previous(listing[3:]) == "/opt/tc/.bm-upgrade-previous/tsa-unknown"
    assert swap.newest_previous(listing[:2]) is None
    assert swap.newest_previous(["/elsewhere/tsa-4.2.0"]) is None


def test_only_a_4x_version_proves_a_kit_root() -> None:
    assert proven_kit("4.2.0") and proven_kit("4.3.4.1.4")
    assert not proven_kit(None) and not proven_kit("3.7.10") and not proven_kit("5.0")
