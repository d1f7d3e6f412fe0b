"""Reading an inventory file: bounded YAML, then validation into :class:`Inventory`.

:func:`load_inventory` raises :class:`~bm_upgrade.errors.InventoryError` carrying *every*
problem found, each naming the field path (``regions[1].stripes[0].servers[2].host``), what is
wrong and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from bm_upgrade import bounded_yaml
from bm_upgrade.errors import FieldIssue, InventoryError
from bm_upgrade.inventory.cluster import Inventory
from bm_upgrade.inventory.cross_field import CrossFieldIssues

# Keys that would put a secret inline; each maps to the reference to use instead.
_INLINE_SECRET_KEYS = {
    "password": "key_file (and key_passphrase_env or key_passphrase_file)",
    "passphrase": "key_passphrase_env (an environment variable's name) or key_passphrase_file",
    "key_passphrase": "key_passphrase_env (an environment variable's name) or key_passphrase_file",
    "private_key": "key_file (a path to the private key)",
    "secret": "an environment variable's name or a file path",
    "token": "an environment variable's name or a file path",
}


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("function-") or part in {"constrained-str", "literal"}:
            continue
        else:
            path += f".{part}" if path else str(part)
    return path


def _field_hint(error: ErrorDetails) -> str:
    """One sentence for a pydantic error: what is wrong and what to do."""
    kind = error["type"]
    loc = error["loc"]
    last = str(loc[-1]) if loc else ""
    given = error.get("input")
    if kind == "extra_forbidden":
        if last in _INLINE_SECRET_KEYS:
            return (
                f"secrets are never written in the inventory; remove {last!r} and use "
                f"{_INLINE_SECRET_KEYS[last]}"
            )
        return f"unknown key {last!r}; remove it or check its spelling (see `bm-upgrade schema`)"
    if kind == "missing":
        return "required field is missing; add it"
    if kind == "string_pattern_mismatch" and "version" in last:
        return (
            f"{given!r} is not a BigMemory Max 4.2 version; write it like 4.2.1 "
            "(more dot-parts such as 4.2.1.4 are allowed)"
        )
    if kind == "string_pattern_mismatch" and last in {"name", "cluster"}:
        return (
            f"{given!r} is not a valid name; use letters, digits, '-', '_' and '.' "
            "(a cluster name: letters, digits and '_', starting with a letter)"
        )
    if kind == "string_pattern_mismatch" and last == "sha256":
        return "sha256 must be 64 hexadecimal characters; copy it from the kit's .sha256 file"
    if kind == "literal_error":
        return f"{given!r} is not allowed; {error['msg'][0].lower()}{error['msg'][1:]}"
    if kind == "too_short" and isinstance(given, list):
        return "this list is empty; list at least one entry"
    if kind in {"value_error", "assertion_error"}:
        msg = error["msg"].removeprefix("Value error, ")
        return msg
    msg = error["msg"]
    shown = repr(given)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{msg[0].lower()}{msg[1:]} (got {shown}); fix the value"


def issues_from_validation(exc: ValidationError) -> list[FieldIssue]:
    """Turn pydantic's errors into located, actionable issues."""
    issues: list[FieldIssue] = []
    for error in exc.errors(include_url=False):
        ctx = error.get("ctx") or {}
        inner = ctx.get("error")
        if isinstance(inner, CrossFieldIssues):
            prefix = _loc_to_path(error["loc"])
            for issue in inner.issues:
                path = f"{prefix}.{issue.path}" if prefix and issue.path else (issue.path or prefix)
                issues.append(FieldIssue(path, issue.message))
            continue
        issues.append(FieldIssue(_loc_to_path(error["loc"]), _field_hint(error)))
    return issues


def parse_inventory(data: Any, file: str) -> Inventory:
    """Validate already-parsed YAML data; raises InventoryError naming ``file``."""
    if data is None:
        raise InventoryError(
            file, [FieldIssue("", "the file is empty; see the README's example inventory")]
        )
    if not isinstance(data, dict):
        raise InventoryError(
            file,
            [
                FieldIssue(
                    "",
                    "the top level must be a mapping of keys "
                    "(cluster, target_version, kits, ...), not "
                    f"a {type(data).__name__}",
                )
            ],
        )
    try:
        return Inventory.model_validate(data)
    except ValidationError as exc:
        raise InventoryError(file, issues_from_validation(exc)) from None


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate one inventory file.

    Raises:
        InventoryError: unreadable file, malformed YAML, or any invalid field (all listed).
    """
    file = str(path)
    try:
        with Path(path).open("rb") as stream:
            raw = stream.read(bounded_yaml.MAX_BYTES + 1)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise InventoryError(file, [FieldIssue("", "no such file; check the path")]) from None
    except IsADirectoryError:
        raise InventoryError(
            file, [FieldIssue("", "is a folder; give the path of the inventory's YAML file")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(
            file,
            [
                FieldIssue(
                    "", f"cannot read the file ({exc}); check its permissions and encoding (UTF-8)"
                )
            ],
        ) from None
    if len(raw) > bounded_yaml.MAX_BYTES:
        raise InventoryError(
            file,
            [
                FieldIssue(
                    "",
                    "the file is larger than "
                    f"{bounded_yaml.MAX_BYTES // 1024} KiB, far "
                    "more than any cluster's inventory; check "
                    "that this is the inventory file",
                )
            ],
        )
    try:
        data = bounded_yaml.load(text)
    except bounded_yaml.YamlTooLarge as exc:
        raise InventoryError(
            file,
            [
                FieldIssue(
                    "",
                    f"the YAML is refused: {exc}; "
                    "write the values out, with fewer anchors "
                    "and aliases (&name, *name)",
                )
            ],
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # One line: a reader error's text (a control character, say) spans two.
        problem = " ".join((getattr(exc, "problem", None) or str(exc)).split())
        raise InventoryError(
            file,
            [
                FieldIssue(
                    "",
                    f"malformed YAML{where}: {problem}; fix "
                    "the syntax (indentation, colons, quotes)",
                )
            ],
        ) from None
    return parse_inventory(data, file)
