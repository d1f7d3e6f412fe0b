"""License key reading and the checks an upgrade needs: refusals only on what is read for
certain (expiry, product, a version field), warnings naming the file and the field otherwise."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from bm_upgrade.errors import LicenseError, UserError
from bm_upgrade.license import (
    EXPECTED_FIELDS,
    check_license,
    license_fit,
    load_license,
    parse_license,
)

FIXTURE = Path(__file__).parent.parent / "fixtures" / "license-4.2.key"
WINDOW_END = datetime.date(2027, 6, 1)

# The older framed layout (Terracotta 3.x TerracottaLicenseFormat), with our own values.
FRAMED = """#Descriptor version = 2
--------------------- BEGIN TERRACOTTA LICENSE KEY ---------------------
License type = Commercial
License number = 77
Licensee = Example Corp
Product = Terracotta
Edition = FX
Max clients = 8
Capabilities = roots, sessions, WAN
Expiration date = 2030-01-31

---------------------------- BEGIN SIGNATURE ---------------------------
MCwCFE6j6iQzkMq8fkpIqUjpbuMF7QqAAhQiw1eP5+YT1iGuz8vkcU6s/Onx=
---------------------- END TERRACOTTA LICENSE KEY ----------------------
"""


def key_text(**changes: str | None) -> str:
    """The fixture's text with fields changed (``max_client_count="5"``) or removed (None)."""
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    for key, value in changes.items():
        name = key.replace("_", " ").lower()
        lines = [
            (f"{line.split(':', 1)[0]}: {value}" if value is not None else "")
            if line.lower().startswith(f"{name}:")
            else line
            for line in lines
        ]
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, **changes: str | None) -> Path:
    path = tmp_path / "terracotta-license.key"
    path.write_text(key_text(**changes), encoding="utf-8")
    return path


def test_reads_the_4x_layout_and_stops_at_the_signature() -> None:
    lic = load_license(FIXTURE)
    assert lic.product == "BigMemory Max"
    assert lic.version == "4.2"
    assert lic.capabilities == ["ehcache", "ehcache offheap", "TMC", "WAN"]
    assert lic.expires == datetime.date(2027, 12, 31)
    assert lic.value(("Max Client Count",)) == "100"
    assert lic.signed
    assert "Signature" not in lic.fields and len(lic.fields) == 10


def test_reads_the_framed_layout_with_a_signature_ending_in_equals() -> None:
    lic = parse_license(FRAMED, "old.key")
    assert lic.fields == {
        "License type": "Commercial",
        "License number": "77",
        "Licensee": "Example Corp",
        "Product": "Terracotta",
        "Edition": "FX",
        "Max clients": "8",
        "Capabilities": "roots, sessions, WAN",
        "Expiration date": "2030-01-31",
    }
    assert lic.signed
    # Names are matched without regard to case: 3.x 'Expiration date' is the expiry.
    assert lic.expires == datetime.date(2030, 1, 31)
    fit = license_fit(lic, "4.2.1", True, WINDOW_END)
    assert fit.refusals == []
    assert fit.warnings == [
        "license_file old.key: 'Product' is 'Terracotta', not 'BigMemory Max'; "
        "the servers may refuse it",
        "license_file old.key: no 'Version' field; whether it covers 4.2 was not checked",
    ]


def test_a_valid_key_passes_without_warnings() -> None:
    fit = check_license(FIXTURE, "4.2.1", needs_wan=True, valid_through=WINDOW_END)
    assert fit.license.path == str(FIXTURE)
    assert fit.warnings == []
    assert fit.summary == f"license {FIXTURE} fits 4.2.1 through 2027-06-01: expires 2027-12-31"


def test_missing_file_is_a_user_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(LicenseError, match="does not exist") as info:
        check_license(tmp_path / "nope.key", "4.2.1", False, WINDOW_END)
    assert isinstance(info.value, UserError)
    assert "nope.key" in str(info.value)


def test_expired_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, expiration_date="2027-05-31")
    with pytest.raises(
        LicenseError,
        match="expires on 2027-05-31, before the maintenance window ends on 2027-06-01",
    ) as info:
        check_license(path, "4.2.1", False, WINDOW_END)
    assert str(info.value).startswith(f"license_file {path} cannot be used: ")


def test_expiring_on_the_last_day_is_fine(tmp_path: Path) -> None:
    fit = check_license(write(tmp_path, expiration_date="2027-06-01"), "4.2.1", False, WINDOW_END)
    assert fit.license.expires == WINDOW_END and fit.refusals == []
    later = license_fit(fit.license, "4.2.1", False, WINDOW_END.replace(day=2))
    assert len(later.refusals) == 1


def test_no_expiry_date_never_expires_and_is_no_warning(tmp_path: Path) -> None:
    fit = check_license(write(tmp_path, expiration_date=None), "4.2.1", True, WINDOW_END)
    assert fit.license.expires is None
    assert fit.warnings == []
    assert fit.summary.endswith(": never expires (no expiry date)")


def test_an_unreadable_date_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, expiration_date="31/12/2027")
    fit = check_license(path, "4.2.1", False, WINDOW_END)
    assert fit.warnings == [
        f"license_file {path}: 'Expiration Date' is '31/12/2027', not a yyyy-MM-dd date; "
        "the expiry was not checked"
    ]


def test_a_product_naming_neither_bigmemory_nor_terracotta_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, product="Coherence Grid")
    with pytest.raises(LicenseError, match="'Coherence Grid', neither BigMemory nor Terracotta"):
        check_license(path, "4.2.1", False, WINDOW_END)


@pytest.mark.parametrize("product", ["BigMemory Go", "Enterprise Suite", "Terracotta"])
def test_another_terracotta_product_is_a_warning(tmp_path: Path, product: str) -> None:
    path = write(tmp_path, product=product)
    fit = check_license(path, "4.2.1", False, WINDOW_END)
    assert fit.warnings == [
        f"license_file {path}: 'Product' is {product!r}, not 'BigMemory Max'; "
        "the servers may refuse it"
    ]


def test_a_version_field_for_another_minor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LicenseError, match=r"covers version 4\.1, not 4\.2"):
        check_license(write(tmp_path, version="4.1"), "4.2.1", False, WINDOW_END)


@pytest.mark.parametrize("names", EXPECTED_FIELDS, ids=lambda names: names[0])
def test_each_missing_field_is_a_warning_naming_file_and_field(
    tmp_path: Path, names: tuple[str, ...]
) -> None:
    path = write(tmp_path, **{names[0].replace(" ", "_"): None})
    fit = check_license(path, "4.2.1", False, WINDOW_END)
    assert fit.refusals == []
    assert fit.warnings[0].startswith(f"license_file {path}: no {names[0]!r} field")
    assert fit.warnings[0].endswith("; check it with the vendor")


def test_no_version_field_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, version=None)
    fit = check_license(path, "4.2.1", False, WINDOW_END)
    assert fit.warnings == [
        f"license_file {path}: no 'Version' field; whether it covers 4.2 was not checked"
    ]


def test_no_wan_capability_is_a_warning_only_with_orchestrators(tmp_path: Path) -> None:
    path = write(tmp_path, capabilities="ehcache, ehcache offheap, TMC")
    assert check_license(path, "4.2.1", needs_wan=False, valid_through=WINDOW_END).warnings == []
    fit = check_license(path, "4.2.1", needs_wan=True, valid_through=WINDOW_END)
    assert fit.warnings == [
        f"license_file {path}: 'Capabilities' names no WAN capability (ehcache, ehcache "
        "offheap, TMC) while the cluster has orchestrators; if they refuse to start, ask the "
        "vendor for a key with WAN"
    ]


def test_an_unsigned_key_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, signature=None)
    fit = check_license(path, "4.2.1", False, WINDOW_END)
    assert not fit.license.signed
    assert fit.warnings == [
        f"license_file {path}: no signature; the servers will refuse an unsigned key"
    ]


def test_every_refusal_is_listed(tmp_path: Path) -> None:
    lic = load_license(
        write(tmp_path, product="X", version="4.3", expiration_date="2020-01-01", capabilities="e")
    )
    fit = license_fit(lic, "4.2.1", True, WINDOW_END)
    assert fit.refusals == [
        "it is for product 'X', neither BigMemory nor Terracotta",
        "it covers version 4.3, not 4.2 (the target 4.2.1)",
        "it expires on 2020-01-01, before the maintenance window ends on 2027-06-01",
    ]
    assert [w.split(": ", 1)[1][:28] for w in fit.warnings] == ["'Capabilities' names no WAN "]


def test_not_a_license(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("just some text\n", encoding="utf-8")
    with pytest.raises(LicenseError, match="not a Terracotta license key"):
        load_license(path)


def test_perpetual_words_and_a_bad_date() -> None:
    assert parse_license("Expiration Date: none\n", "k").expires is None
    with pytest.raises(ValueError):
        _ = parse_license("Expiration Date: soon\n", "k").expires
