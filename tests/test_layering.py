"""The layering rules of docs/architecture.md, checked on the source: who may import dagster,
paramiko and the sandbox."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bm_upgrade"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            # Relative imports stay inside their own package; resolve them for the checks.
            base = path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level]
            names.add(".".join([*base, node.module or ""]).rstrip("."))
    return names


def sources() -> list[tuple[str, set[str]]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        out.append((rel, imported_modules(path)))
    assert out, "no sources found"
    return out


def top(module: str) -> str:
    return module.split(".", maxsplit=1)[0]


def test_only_defs_and_definitions_import_dagster() -> None:
    offenders = [
        rel
        for rel, mods in sources()
        if any(top(m).startswith("dagster") for m in mods)
        and not (rel.startswith("defs/") or rel == "definitions.py")
    ]
    assert offenders == []


def test_only_remote_imports_paramiko() -> None:
    offenders = [
        rel
        for rel, mods in sources()
        if any(top(m) == "paramiko" for m in mods) and not rel.startswith("remote/")
    ]
    assert offenders == []


def test_sandbox_imports_nothing_else_from_bm_upgrade() -> None:
    offenders = [
        (rel, m)
        for rel, mods in sources()
        if rel.startswith("sandbox/")
        for m in mods
        if top(m) == "bm_upgrade" and not m.startswith("bm_upgrade.sandbox") and m != "bm_upgrade"
    ]
    assert offenders == []


def test_only_cli_imports_the_sandbox() -> None:
    offenders = [
        rel
        for rel, mods in sources()
        if any(m.startswith("bm_upgrade.sandbox") for m in mods)
        and not (rel.startswith("sandbox/") or rel == "cli.py")
    ]
    assert offenders == []


def test_the_checker_sees_imports() -> None:
    mods = dict(sources())
    assert "bm_upgrade.errors" in mods["cli.py"]
    assert "yaml" in mods["inventory/loading.py"]
