"""The Terracotta license key: parse its ``key = value`` lines and check it fits the upgrade.

The signature is the vendor's (the product checks it when it starts); here we check what makes
an upgrade fail half-way: the key is missing, is for another product, does not cover the
target's major.minor, expires before the maintenance window ends, or lacks WAN while the
cluster has orchestrators. Every failure is a :class:`~bm_upgrade.errors.LicenseError` naming
the file and the fix.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from bm_upgrade.errors import LicenseError
from bm_upgrade.inventory import major_minor
from bm_upgrade.inventory.kitroot import LICENSE_FILE_NAME

__all__ = [
    "LICENSE_FILE_NAME",
    "License",
    "check_license",
    "license_problems",
    "load_license",
    "parse_license",
]

PRODUCT = "BigMemory Max"


@dataclass(frozen=True)
class License:
    """The fields of a license key the upgrade relies on (all of them in ``fields``)."""

    path: str
    fields: dict[str, str]

    @property
    def product(self) -> str:
        return self.fields.get("Product", "")

    @property
    def version(self) -> str:
        return self.fields.get("Version", "")

    @property
    def capabilities(self) -> list[str]:
        return [c.strip() for c in self.fields.get("Capabilities", "").split(",") if c.strip()]

    @property
    def expires(self) -> datetime.date | None:
        """The expiration date; None when the key has none (a perpetual license)."""
        raw = self.fields.get("Expiration date", "").strip()
        if not raw or raw.lower() in {"none", "never"}:
            return None
        try:
            return datetime.date.fromisoformat(raw)
        except ValueError:
            raise LicenseError(
                f"{self.path}: Expiration date {raw!r} is not a date "
                "(YYYY-MM-DD); ask the vendor for a valid key"
            ) from None


def parse_license(text: str, path: str) -> License:
    """Parse the ``key = value`` lines of a license key (``#`` lines are comments).

    Raises:
        LicenseError: no ``key = value`` line at all (not a license key).
    """
    fields: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        fields[key.strip()] = value.strip()
    if not fields:
        raise LicenseError(
            f"{path}: not a Terracotta license key (no 'key = value' lines); "
            "point license_file at terracotta-license.key"
        )
    return License(path, fields)


def load_license(path: str | Path) -> License:
    """Read and parse the license key file.

    Raises:
        LicenseError: the file is missing or unreadable.
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


def license_problems(
    lic: License, target_version: str, needs_wan: bool, valid_through: datetime.date
) -> list[str]:
    """Why ``lic`` does not fit the upgrade (empty: it fits)."""
    problems: list[str] = []
    if lic.product != PRODUCT:
        problems.append(f"it is for product {lic.product or '(none)'!r}, not {PRODUCT!r}")
    wanted = major_minor(target_version)
    if not lic.version or major_minor(lic.version) != wanted:
        problems.append(
            f"it covers version {lic.version or '(none)'}, not {wanted} "
            f"(the target {target_version})"
        )
    expires = lic.expires
    if expires is not None and expires < valid_through:
        problems.append(
            f"it expires on {expires.isoformat()}, before the maintenance window "
            f"ends on {valid_through.isoformat()}"
        )
    if needs_wan and "wan" not in {c.lower() for c in lic.capabilities}:
        problems.append(
            "it lacks the WAN capability the cluster's orchestrators need "
            f"(capabilities: {', '.join(lic.capabilities) or 'none'})"
        )
    return problems


def check_license(
    path: str | Path, target_version: str, needs_wan: bool, valid_through: datetime.date
) -> License:
    """Load the key and check it fits; returns it.

    Args:
        valid_through: the last day the key must still be valid (the window's end).

    Raises:
        LicenseError: one message naming the file, every problem, and the fix.
    """
    lic = load_license(path)
    problems = license_problems(lic, target_version, needs_wan, valid_through)
    if problems:
        raise LicenseError(
            f"license_file {lic.path} cannot be used: "
            + "; ".join(problems)
            + ". Ask the vendor for a BigMemory Max key that fixes this and "
            "point license_file at it"
        )
    return lic
