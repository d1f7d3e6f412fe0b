"""License key files for the sandbox's kits (the format is in ENGINE.md, "License key").

The key lives outside the kits, like a real one; the upgrade tool reads its fields, and only
the kit's programs check the signature.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TypedDict, Unpack

from bm_upgrade.sandbox.kit_files.server.lib import tckey

LICENSE_FILE_NAME = tckey.LICENSE_FILE_NAME
"""The name a key must have in a kit root."""

CAPABILITIES = ("ehcache", "ehcache offheap", "TMC", tckey.WAN_CAPABILITY)
"""What a sandbox key allows: the first three as a public 4.x key names them, WAN (assumed)."""


def render_license(
    *,
    expiry: datetime.date | None,
    product: str = "BigMemory Max",
    version: str | None = "4.2",
    capabilities: tuple[str, ...] = CAPABILITIES,
    max_clients: int = 100,
    licensee: str = "bm_upgrade sandbox",
) -> str:
    """The text of a signed license key; ``expiry`` None: it never expires, ``version`` None:
    the key names no version."""
    fields = {
        "License Type": "Commercial",
        "License Number": "4200001",
        "Licensee": licensee,
        "Date of Issue": "2015-06-01",
        tckey.PRODUCT: product,
        "Edition": "FX",
        tckey.CAPABILITIES: ", ".join(capabilities),
        "Max Client Count": str(max_clients),
    }
    if expiry is not None:
        fields[tckey.EXPIRATION_DATE] = expiry.isoformat()
    if version is not None:
        fields[tckey.VERSION] = version
    return tckey.render_license(fields)


class LicenseTerms(TypedDict, total=False):
    """What a key may say besides its expiry (see :func:`render_license`)."""

    product: str
    version: str | None
    capabilities: tuple[str, ...]
    max_clients: int
    licensee: str


def write_license(
    path: Path, *, expiry: datetime.date | None, **terms: Unpack[LicenseTerms]
) -> None:
    """Write a signed license key file at ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_license(expiry=expiry, **terms), encoding="utf-8")
