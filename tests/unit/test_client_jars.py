"""The client jar parsers: which Terracotta jars a ``ls -1p`` listing holds, and whether they
make one complete set (what the swap reads back and the skip decision trusts)."""

from __future__ import annotations

from bm_upgrade.probes import jar_set_version, terracotta_jars


def test_terracotta_jars_skip_the_applications_jars_and_folders() -> None:
    listing = (
        "app.jar\nehcache-ee-2.10.1.jar\nterracotta-toolkit-runtime-ee-4.2.1.jar/\n"
        "terracotta-toolkit-runtime-ee-4.2.1.jar\n.bm-upgrade-new-x.jar.part\n"
    )
    assert terracotta_jars(listing) == [
        "ehcache-ee-2.10.1.jar",
        "terracotta-toolkit-runtime-ee-4.2.1.jar",
    ]


def test_a_set_is_complete_with_exactly_one_jar_of_each_kind() -> None:
    assert (
        jar_set_version(["ehcache-ee-2.10.1.jar", "terracotta-toolkit-runtime-ee-4.2.1.jar"])
        == "4.2.1"
    )
    assert jar_set_version([]) is None
    assert jar_set_version(["ehcache-ee-2.10.1.jar"]) is None
    assert jar_set_version(["terracotta-toolkit-runtime-ee-4.2.1.jar"]) is None
    assert (
        jar_set_version(
            [
                "ehcache-ee-2.10.0.jar",
                "ehcache-ee-2.10.1.jar",
                "terracotta-toolkit-runtime-ee-4.2.1.jar",
            ]
        )
        is None
    )
    assert (
        jar_set_version(
            [
                "ehcache-ee-2.10.1.jar",
                "terracotta-toolkit-runtime-ee-4.2.0.jar",
                "terracotta-toolkit-runtime-ee-4.2.1.jar",
            ]
        )
        is None
    )
