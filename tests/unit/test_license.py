"""License key parsing and the checks an upgrade needs (product, version, expiry, WAN)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from bm_upgrade.errors import LicenseError, UserError
from bm_upgrade.license import check_license, license_problems, load_license, parse_license

FIXTURE = Path(__file__).parent.parent / "fixtures" / "license-4.2.key"
WINDOW_END = datetime.date(2027, 6, 1)


def write(tmp_path: Path, **changes: str) -> Path:
    text = FIXTURE.read_text(encoding="utf-8")
    for key, value in changes.items():
        field = key.replace("_", " ").capitalize()
        lines = [
            f"{field} = {value}" if line.startswith(f"{field} =") else line
            for line in text.splitlines()
        ]
        text = "\n".join(lines) + "\n"
    path = tmp_path / "terracotta-license.key"
    path.write_text(text, encoding="utf-8")
    return path


def test_parse_fields() -> None:
    lic = load_license(FIXTURE)
    assert lic.product == "BigMemory Max"
    assert lic.version == "4.2"
    assert lic.capabilities == ["ehcache", "ehcache offheap", "TMC", "WAN"]
    assert lic.expires == datetime.date(2027, 12, 31)
    assert lic.fields["Max Client Count"] == "100"


def test_valid_license_passes() -> None:
    lic = check_license(FIXTURE, "4.2.1", needs_wan=True, valid_through=WINDOW_END)
    assert lic.path == str(FIXTURE)


def test_missing_file_is_a_user_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(LicenseError, match="does not exist") as info:
        check_license(tmp_path / "nope.key", "4.2.1", False, WINDOW_END)
    assert isinstance(info.value, UserError)
    assert "nope.key" in str(info.value)


def test_expired(tmp_path: Path) -> None:
    path = write(tmp_path, expiration_date="2027-05-31")
    with pytest.raises(
        LicenseError,
        match="expires on 2027-05-31, before the maintenance window ends on 2027-06-01",
    ):
        check_license(path, "4.2.1", False, WINDOW_END)


def test_expiring_on_the_last_day_is_fine(tmp_path: Path) -> None:
    lic = check_license(write(tmp_path, expiration_date="2027-06-01"), "4.2.1", False, WINDOW_END)
    assert lic.expires == WINDOW_END
    assert license_problems(lic, "4.2.1", False, WINDOW_END) == []
    assert len(license_problems(lic, "4.2.1", False, WINDOW_END.replace(day=2))) == 1


def test_other_product(tmp_path: Path) -> None:
    path = write(tmp_path, product="Terracotta DB")
    with pytest.raises(LicenseError, match="'Terracotta DB', not 'BigMemory Max'") as info:
        check_license(path, "4.2.1", False, WINDOW_END)
    assert str(path) in str(info.value)


def test_other_version(tmp_path: Path) -> None:
    with pytest.raises(LicenseError, match=r"covers version 4\.1, not 4\.2"):
        check_license(write(tmp_path, version="4.1"), "4.2.1", False, WINDOW_END)


def test_lacks_wan_only_matters_with_orchestrators(tmp_path: Path) -> None:
    path = write(tmp_path, capabilities="ehcache, ehcache offheap, TMC")
    lic = check_license(path, "4.2.1", needs_wan=False, valid_through=WINDOW_END)
    assert lic.capabilities == ["ehcache", "ehcache offheap", "TMC"]
    with pytest.raises(LicenseError, match="lacks the WAN capability"):
        check_license(path, "4.2.1", needs_wan=True, valid_through=WINDOW_END)


def test_every_problem_is_listed(tmp_path: Path) -> None:
    lic = load_license(
        write(
            tmp_path,
            product="X",
            version="4.3",
            expiration_date="2020-01-01",
            capabilities="ehcache",
        )
    )
    problems = license_problems(lic, "4.2.1", True, WINDOW_END)
    assert problems == [
        "it is for product 'X', not 'BigMemory Max'",
        "it covers version 4.3, not 4.2 (the target 4.2.1)",
        "it expires on 2020-01-01, before the maintenance window ends on 2027-06-01",
        "it lacks the WAN capability the cluster's orchestrators need (capabilities: ehcache)",
    ]


def test_not_a_license(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("just some text\n", encoding="utf-8")
    with pytest.raises(LicenseError, match="not a Terracotta license key"):
        load_license(path)


def test_bad_date_and_perpetual() -> None:
    with pytest.raises(LicenseError, match="not a date"):
        _ = parse_license("Expiration date = soon\n", "k").expires
    assert parse_license("Expiration date = none\n", "k").expires is None
