"""The Terracotta license key: read its fields and check it fits the upgrade.

Two layouts are read (docs/terracotta.md, "License key"): the 4.x one (``Name: value`` lines,
then ``Signature: <base64>``) and the older framed one (``name = value`` lines between
``BEGIN TERRACOTTA LICENSE KEY`` and ``BEGIN SIGNATURE``). Field names are matched without
regard to case. The signature is the vendor's (the product checks it when it starts).

Only what can be read for certain refuses the key (a :class:`~bm_upgrade.errors.LicenseError`
naming the file and the fix): an expiry date before the maintenance window ends, a product
that is neither BigMemory nor Terracotta, a version field naming another major.minor. A field
that is absent or unreadable, or a WAN capability not found, is a warning naming the file and
the field: the names of some 4.x fields are not confirmed. A key without an expiry date never
expires.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from pathlib import Path

from bm_upgrade.errors import LicenseError
from bm_upgrade.inventory import major_minor
from bm_upgrade.inventory.kitroot import LICENSE_FILE_NAME

__all__ = [
    "LICENSE_FILE_NAME",
    "License",
    "LicenseFit",
    "check_license",
    "license_fit",
    "load_license",
    "parse_license",
]

PRODUCT = "BigMemory Max"
# The names a field goes by in the sources (docs/terracotta.md, "License key").
PRODUCT_FIELD = ("Product",)
CAPABILITIES_FIELD = ("Capabilities",)
EXPIRY_FIELD = ("Expiration Date",)
VERSION_FIELD = ("Version",)  # (assumed) no public key shows one
EXPECTED_FIELDS = (
    PRODUCT_FIELD,
    ("Edition",),
    ("License Type",),
    ("License Number",),
    ("Licensee",),
    CAPABILITIES_FIELD,
    ("Max Client Count", "Max clients", "terracotta.maxClientCount"),
)
# Products of Terracotta's own license constants that name neither BigMemory nor Terracotta.
TERRACOTTA_PRODUCTS = frozenset(
    {"enterprise suite", "ehcache", "quartz", "sessions", "custom", "es", "ex", "fx", "ex/sessions"}
)
WAN_CAPABILITY = "wan"  # (assumed) no public source names the WAN capability
_MARKER = re.compile(r"^-{3,}\s*(BEGIN|END)\b.*-{3,}$")
_SIGNATURE_MARKER = re.compile(r"^-{3,}\s*BEGIN SIGNATURE\s*-{3,}$")


@dataclass(frozen=True)
class License:
    """A license key's fields (names as written) and whether it carries a signature."""

    path: str
    fields: dict[str, str]
    signed: bool = False

    def get(self, names: tuple[str, ...]) -> tuple[str, str] | None:
        """(name as written, value) of the first of ``names`` present, any case; else None."""
        by_lower = {name.lower(): name for name in self.fields}
        for name in names:
            written = by_lower.get(name.lower())
            if written is not None:
                return written, self.fields[written]
        return None

    def value(self, names: tuple[str, ...]) -> str:
        found = self.get(names)
        return found[1] if found else ""

    @property
    def product(self) -> str:
        return self.value(PRODUCT_FIELD)

    @property
    def version(self) -> str:
        return self.value(VERSION_FIELD)

    @property
    def capabilities(self) -> list[str]:
        return [c.strip() for c in self.value(CAPABILITIES_FIELD).split(",") if c.strip()]

    @property
    def expires(self) -> datetime.date | None:
        """The expiry date; None when the key has none (it never expires).

        Raises:
            ValueError: the field is there but is not a yyyy-MM-dd date.
        """
        raw = self.value(EXPIRY_FIELD)
        if not raw or raw.lower() in {"none", "never"}:
            return None
        return datetime.date.fromisoformat(raw)


def parse_license(text: str, path: str) -> License:
    """Read the fields of a license key; they end at the signature (a base64 signature may
    end in ``=``).

    Raises:
        LicenseError: no field at all (not a license key).
    """
    fields: dict[str, str] = {}
    signed = False
    for raw in text.splitlines():
        line = raw.strip()
        if _SIGNATURE_MARKER.match(line):
            signed = True
            break
        if not line or line.startswith("#") or _MARKER.match(line):
            continue
        cut = min((i for i in (line.find(":"), line.find("=")) if i > 0), default=-1)
        if cut < 0:
            continue
        name, value = line[:cut].strip(), line[cut + 1 :].strip()
        if name.lower() == "signature":
            signed = bool(value)
            break
        fields[name] = value
    if not fields:
        raise LicenseError(
            f"{path}: not a Terracotta license key (no 'Name: value' lines); "
            "point license_file at terracotta-license.key"
        )
    return License(path, fields, signed)


def load_license(path: str | Path) -> License:
    """Read and parse the license key file.

    Raises:
        LicenseError: the file is missing, unreadable, or not a license key.
    """
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LicenseError(
            f"license_file {file} does not exist; put the "
            f"{LICENSE_FILE_NAME} you received from the vendor there"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LicenseError(
            f"license_file {file} cannot be read ({exc}); check its permissions"
        ) from None
    return parse_license(text, str(file))


@dataclass
class LicenseFit:
    """What the key says about the upgrade: refusals (it cannot be used), warnings, and the
    one-line summary preflight reports."""

    license: License
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: str = ""


def license_fit(
    lic: License, target_version: str, needs_wan: bool, valid_through: datetime.date
) -> LicenseFit:
    """Check ``lic`` against the upgrade (``valid_through``: the window's last day)."""
    fit = LicenseFit(lic)
    where = f"license_file {lic.path}"
    for names in EXPECTED_FIELDS:
        if lic.get(names) is None:
            also = f" (nor {', '.join(repr(n) for n in names[1:])})" if names[1:] else ""
            fit.warnings.append(f"{where}: no {names[0]!r} field{also}; check it with the vendor")
    if not lic.signed:
        fit.warnings.append(f"{where}: no signature; the servers will refuse an unsigned key")
    _check_product(lic, where, fit)
    _check_version(lic, target_version, where, fit)
    try:
        expires = lic.expires
    except ValueError:
        expires = None
        fit.warnings.append(
            f"{where}: {EXPIRY_FIELD[0]!r} is {lic.value(EXPIRY_FIELD)!r}, not a yyyy-MM-dd "
            "date; the expiry was not checked"
        )
    if expires is not None and expires < valid_through:
        fit.refusals.append(
            f"it expires on {expires.isoformat()}, before the maintenance window "
            f"ends on {valid_through.isoformat()}"
        )
    if needs_wan and WAN_CAPABILITY not in {c.lower() for c in lic.capabilities}:
        fit.warnings.append(
            f"{where}: {CAPABILITIES_FIELD[0]!r} names no WAN capability "
            f"({', '.join(lic.capabilities) or 'none'}) while the cluster has orchestrators; "
            "if they refuse to start, ask the vendor for a key with WAN"
        )
    ends = f"expires {expires.isoformat()}" if expires else "no readable expiry date"
    if not lic.value(EXPIRY_FIELD):
        ends = "never expires (no expiry date)"
    fit.summary = f"license {lic.path} fits {target_version} through {valid_through}: {ends}"
    return fit


def _check_product(lic: License, where: str, fit: LicenseFit) -> None:
    product = lic.product
    if not product or product == PRODUCT:
        return
    lowered = product.lower()
    if "bigmemory" in lowered or "terracotta" in lowered or lowered in TERRACOTTA_PRODUCTS:
        fit.warnings.append(
            f"{where}: {PRODUCT_FIELD[0]!r} is {product!r}, not {PRODUCT!r}; "
            "the servers may refuse it"
        )
    else:
        fit.refusals.append(f"it is for product {product!r}, neither BigMemory nor Terracotta")


def _check_version(lic: License, target_version: str, where: str, fit: LicenseFit) -> None:
    wanted = major_minor(target_version)
    version = lic.version
    if not version:
        fit.warnings.append(
            f"{where}: no {VERSION_FIELD[0]!r} field; whether it covers {wanted} was not checked"
        )
    elif not re.match(r"^\d+\.\d+", version):
        fit.warnings.append(
            f"{where}: {VERSION_FIELD[0]!r} is {version!r}, not a version; whether it covers "
            f"{wanted} was not checked"
        )
    elif major_minor(version) != wanted:
        fit.refusals.append(
            f"it covers version {version}, not {wanted} (the target {target_version})"
        )


def check_license(
    path: str | Path, target_version: str, needs_wan: bool, valid_through: datetime.date
) -> LicenseFit:
    """Load the key and check it fits; returns its fit (warnings included).

    Args:
        valid_through: the last day the key must still be valid (the window's end).

    Raises:
        LicenseError: one message naming the file, every refusal, and the fix.
    """
    fit = license_fit(load_license(path), target_version, needs_wan, valid_through)
    if fit.refusals:
        raise LicenseError(
            f"license_file {fit.license.path} cannot be used: "
            + "; ".join(fit.refusals)
            + ". Ask the vendor for a BigMemory Max key that fixes this and "
            "point license_file at it"
        )
    return fit
