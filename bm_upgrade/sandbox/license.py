"""License key files for the sandbox's kits (the format is in ENGINE.md).

The key lives outside the kits, like a real one; the upgrade tool parses its
``key = value`` lines, and only the kit's programs check the signature.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TypedDict, Unpack

from bm_upgrade.sandbox.kit_files.server.lib import tckey

LICENSE_FILE_NAME = tckey.LICENSE_FILE_NAME
"""The name a key must have in a kit root."""


def render_license(
    *,
    expiry: datetime.date,
    product: str = "BigMemory Max",
    version: str = "4.2",
    capabilities: tuple[str, ...] = ("ehcache", "ehcache offheap", "TMC", "WAN"),
    max_clients: int = 100,
    licensee: str = "bm_upgrade sandbox",
) -> str:
    """The text of a signed license key."""
    return tckey.render_license(
        {
            "License type": "Commercial",
            "License number": "4200001",
            "Licensee": licensee,
            "Product": product,
            "Edition": "FX",
            "Version": version,
            "Capabilities": ", ".join(capabilities),
            "Max Client Count": str(max_clients),
            "Expiration date": expiry.isoformat(),
        }
    )


class LicenseTerms(TypedDict, total=False):
    """What a key may say besides its expiry (see :func:`render_license`)."""

    product: str
    version: str
    capabilities: tuple[str, ...]
    max_clients: int
    licensee: str


def write_license(path: Path, *, expiry: datetime.date, **terms: Unpack[LicenseTerms]) -> None:
    """Write a signed license key file at ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_license(expiry=expiry, **terms), encoding="utf-8")
