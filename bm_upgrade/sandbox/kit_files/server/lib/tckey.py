"""The license key file: its format, its signature, and the check a kit program makes at start.

Stdlib only and self-contained: shipped in ``server/lib/`` (the server and the orchestrator
check their kit root's key) and imported by the sandbox's ``license.py``, which writes keys.
The format is in ENGINE.md ("License").
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from pathlib import Path

LICENSE_FILE_NAME = "terracotta-license.key"
LICENSE_PRODUCT = "BigMemory Max"
# The kit's programs know this key; a real product would use a public-key signature.
_LICENSE_HMAC_KEY = b"bm_upgrade-sandbox-license-v1"
_LICENSE_ORDER = (
    "License type",
    "License number",
    "Licensee",
    "Product",
    "Edition",
    "Version",
    "Capabilities",
    "Max Client Count",
    "Expiration date",
)


def _license_signature(body_lines: list[str]) -> str:
    body = "\n".join(body_lines).encode("utf-8")
    return hmac.new(_LICENSE_HMAC_KEY, body, hashlib.sha256).hexdigest()


def render_license(fields: dict[str, str]) -> str:
    """The text of a signed license key holding ``fields`` (keys of ``_LICENSE_ORDER``)."""
    body = [f"{key} = {fields[key]}" for key in _LICENSE_ORDER]
    return "\n".join(
        ["# Terracotta license key", *body, f"Signature = {_license_signature(body)}", ""]
    )


def parse_license(text: str) -> tuple[dict[str, str], list[str]]:
    """Split a license key into its fields and the signed body lines (in file order)."""
    fields: dict[str, str] = {}
    body: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        fields[key] = value
        if key != "Signature":
            body.append(f"{key} = {value}")
    return fields, body


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
    fields, body = parse_license(text)
    if not hmac.compare_digest(fields.get("Signature", ""), _license_signature(body)):
        return (
            f"License key {path} has an invalid signature (the file was altered or is "
            "not a Terracotta license key)"
        )
    product = fields.get("Product", "")
    licensed = fields.get("Version", "")
    problem = None
    if product != LICENSE_PRODUCT:
        problem = f"is for product '{product}', not '{LICENSE_PRODUCT}'"
    elif licensed.split(".")[:2] != version.split(".")[:2]:
        problem = f"is for version {licensed}; it does not cover {version}"
    else:
        try:
            expiry = datetime.date.fromisoformat(fields.get("Expiration date", ""))
        except ValueError:
            problem = "has no valid 'Expiration date'"
        else:
            if today > expiry:
                problem = f"expired on {expiry.isoformat()}"
    return f"License key {path} {problem}" if problem else None
