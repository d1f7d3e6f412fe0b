"""The license key file: its format, its signature, and the check a kit program makes at start.

Stdlib only and self-contained: shipped in ``server/lib/`` (the server and the orchestrator
check their kit root's key) and imported by the sandbox's ``license.py``, which writes keys.
The format is the 4.x one (``# Descriptor version: 3``, ``Name: value`` lines in name order,
a blank line, ``Signature: <base64>``); the signature is the sandbox's own HMAC. ENGINE.md
("License key") gives the sources and what is assumed.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
from pathlib import Path

LICENSE_FILE_NAME = "terracotta-license.key"
LICENSE_PRODUCT = "BigMemory Max"
PRODUCT = "Product"
CAPABILITIES = "Capabilities"
EXPIRATION_DATE = "Expiration Date"  # (assumed) 3.x spells it "Expiration date"
VERSION = "Version"  # (assumed) no public key shows a version field
SIGNATURE = "Signature"
WAN_CAPABILITY = "WAN"  # (assumed) no public source names the WAN capability
# The kit's programs know this key; the real product checks a public-key signature.
_LICENSE_HMAC_KEY = b"bm_upgrade-sandbox-license-v1"
_HEADER = (
    "# Terracotta license key (bm_upgrade sandbox): only the licensee may use it.",
    "# Descriptor version: 3",
    "# " + "-" * 76,
)


def _signature(body_lines: list[str]) -> str:
    body = "\n".join(body_lines).encode("utf-8")
    return base64.b64encode(hmac.new(_LICENSE_HMAC_KEY, body, hashlib.sha256).digest()).decode()


def render_license(fields: dict[str, str]) -> str:
    """The text of a signed license key holding ``fields`` (written in name order)."""
    body = [f"{name}: {fields[name]}" for name in sorted(fields)]
    return "\n".join([*_HEADER, *body, "", f"{SIGNATURE}: {_signature(body)}", ""])


def parse_license(text: str) -> tuple[dict[str, str], list[str], str]:
    """Split a key into its fields (names lower-cased), the signed lines and the signature.

    The fields end at the ``Signature:`` line: a base64 signature may end in ``=``.
    """
    fields: dict[str, str] = {}
    body: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if name.lower() == SIGNATURE.lower():
            return fields, body, value
        fields[name.lower()] = value
        body.append(f"{name}: {value}")
    return fields, body, ""


def capabilities(fields: dict[str, str]) -> list[str]:
    """The key's capabilities (``Capabilities: a, b, c``)."""
    return [c.strip() for c in fields.get(CAPABILITIES.lower(), "").split(",") if c.strip()]


def check_license(path: Path, version: str, today: datetime.date | None = None) -> str | None:
    """Why the license at ``path`` does not allow ``version`` to run, or None when it does."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return (
            f"License key not found: {path} is missing; place terracotta-license.key "
            "in the kit root"
        )
    except (OSError, UnicodeDecodeError) as exc:
        return f"License key {path} cannot be read: {exc}"
    return _license_problem(path, text, version, today or datetime.date.today())


def _license_problem(path: Path, text: str, version: str, today: datetime.date) -> str | None:
    fields, body, signature = parse_license(text)
    if not body or not hmac.compare_digest(signature, _signature(body)):
        return (
            f"License key {path}: it has an invalid signature (the file was altered or is "
            "not a Terracotta license key)"
        )
    product = fields.get(PRODUCT.lower(), "")
    licensed = fields.get(VERSION.lower(), "")
    expiry = fields.get(EXPIRATION_DATE.lower(), "")
    problem = None
    if product != LICENSE_PRODUCT:
        problem = f"it is for product '{product}', not '{LICENSE_PRODUCT}'"
    elif licensed and licensed.split(".")[:2] != version.split(".")[:2]:
        problem = f"it is for version {licensed}; it does not cover {version}"
    elif expiry:  # no expiration date: the key never expires
        try:
            expires = datetime.date.fromisoformat(expiry)
        except ValueError:
            problem = f"its '{EXPIRATION_DATE}' is unreadable ({expiry!r})"
        else:
            if today > expires:
                problem = f"Your Terracotta license has expired on {expires.isoformat()}"
    return f"License key {path}: {problem}" if problem else None
