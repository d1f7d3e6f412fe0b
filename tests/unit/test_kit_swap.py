"""The kit swap's pure parts: where it works (one work folder per server), which kept previous
kit belongs to a kit root, what is carried into a new kit, and what proves a kit root."""

from __future__ import annotations

from bm_upgrade.procedure.kit_look import kit_root_guard, proven_kit
from bm_upgrade.procedure.kit_swap import carried_paths
from tests.unit.inventories import server_model


def test_each_server_has_its_own_work_folder() -> None:
    """Two servers never share scratch space, even with the same kit root on one host."""
    one, two = server_model(), server_model(name="tsa-a2", data_dir="/var/tc/data2")
    assert one.kit_root == two.kit_root
    assert one.kit_root.work_dir(one.name) == "/opt/tc/.bm-upgrade-work/tsa-a1"
    assert two.kit_root.work_dir(two.name) == "/opt/tc/.bm-upgrade-work/tsa-a2"
    assert one.kit_root.previous_dir == "/opt/tc/.bm-upgrade-previous"


def test_newest_previous_is_the_first_kept_kit_of_that_kit_root() -> None:
    root = server_model(install_dir="/opt/tc/tsa").kit_root
    listing = [
        "/opt/tc/.bm-upgrade-previous/tsa-1-4.2.1",  # another kit root's (tsa-1)
        "/opt/tc/.bm-upgrade-previous/tsa-notes",
        "/opt/tc/.bm-upgrade-previous/tsa-4.2.0",
        "/opt/tc/.bm-upgrade-previous/tsa-unknown",
    ]
    assert root.newest_previous(listing) == "/opt/tc/.bm-upgrade-previous/tsa-4.2.0"
    assert root.newest_previous(listing[3:]) == "/opt/tc/.bm-upgrade-previous/tsa-unknown"
    assert root.newest_previous(listing[:2]) is None
    assert root.newest_previous(["/elsewhere/tsa-4.2.0"]) is None


def test_carried_files_include_a_tc_config_inside_the_kit_root() -> None:
    assert carried_paths(server_model()) == [
        "tc-config.xml",
        "server/tc-config.xml",
        "server/bin/setenv.sh",
    ]
    inside = server_model(tc_config="/opt/tc/bigmemory-max/conf/tc-config.xml")
    assert carried_paths(inside)[-1] == "conf/tc-config.xml"
    beside = server_model(tc_config="/opt/tc/bigmemory-max2/tc-config.xml")
    assert carried_paths(beside) == carried_paths(server_model())


def test_only_a_4x_version_proves_a_kit_root() -> None:
    assert proven_kit("4.2.0") and proven_kit("4.3.4.1.4")
    assert not proven_kit(None) and not proven_kit("3.7.10") and not proven_kit("5.0")


def test_the_guard_runs_the_kit_roots_own_version_script() -> None:
    guard = kit_root_guard(server_model(install_dir="/opt/tc/bigmemory-max/"))
    assert guard.startswith("bm_kit=$(/opt/tc/bigmemory-max/server/bin/version.sh 2>/dev/null)")
    assert "'Terracotta Enterprise 4.'[0-9]*) ;;" in guard
