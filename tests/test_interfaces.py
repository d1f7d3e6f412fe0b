"""The interface table of bm_upgrade/sandbox/ENGINE.md ("Interfaces the tool uses"), checked
against the tool's source: every kit script and every management REST path the tool names has
a row, every row names tool modules that exist and a source, and every bracket key it cites
is one of docs/terracotta.md's. So a new interface cannot enter the tool without a row."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bm_upgrade"
ENGINE = PACKAGE / "sandbox" / "ENGINE.md"
TERRACOTTA = ROOT / "docs" / "terracotta.md"
HEADING = "## Interfaces the tool uses"
COLUMNS = ("Interface", "What the tool relies on", "Tool code", "Source")

SCRIPT = re.compile(r"(?<![\w.-])([a-z][a-z0-9-]*\.sh)\b")
REST_PATH = re.compile(r"/tc-management-api/[A-Za-z0-9_./{}-]*[A-Za-z0-9_}]")
MODULE = re.compile(r"`([a-z_/]+\.py)`")
CELL_SPLIT = re.compile(r"(?<!\\)\|")
KEY = re.compile(r"\[([a-z0-9.-]+)\]")
KEY_DEFINED = re.compile(r"^- \*\*\[([a-z0-9.-]+)\]\*\*", re.MULTILINE)


@dataclass(frozen=True)
class Row:
    interface: str
    relies_on: str
    code: str
    source: str


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in CELL_SPLIT.split(line.strip().strip("|"))]


def table() -> list[Row]:
    """The rows of the section's table, header and separator left out."""
    text = ENGINE.read_text(encoding="utf-8")
    start = text.index(HEADING) + len(HEADING)
    end = text.find("\n## ", start)
    lines = [line for line in text[start:end].splitlines() if line.startswith("|")]
    assert lines, f"no table under {HEADING!r} in {ENGINE}"
    assert tuple(cells(lines[0])) == COLUMNS
    rows = []
    for line in lines[2:]:
        found = cells(line)
        assert len(found) == len(COLUMNS), f"a row of {len(found)} cells: {line}"
        rows.append(Row(*found))
    return rows


def tool_sources() -> dict[str, str]:
    """The tool's own Python files (everything outside bm_upgrade/sandbox/) by relative path."""
    return {
        path.relative_to(PACKAGE).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(PACKAGE.rglob("*.py"))
        if "sandbox" not in path.relative_to(PACKAGE).parts
    }


def named_in_tool(pattern: re.Pattern[str]) -> dict[str, list[str]]:
    """Each match of ``pattern`` in the tool's code -> the files naming it."""
    found: dict[str, list[str]] = {}
    for rel, text in tool_sources().items():
        for name in sorted(set(pattern.findall(text))):
            found.setdefault(name, []).append(rel)
    return found


def test_the_tool_names_scripts_and_rest_paths() -> None:
    # The scan itself works: the scripts and paths known today are found.
    assert {"start-tc-server.sh", "stop-tc-server.sh", "server-stat.sh", "version.sh"} <= set(
        named_in_tool(SCRIPT)
    )
    assert "/tc-management-api/v2/local/stat" in named_in_tool(REST_PATH)


def test_every_kit_script_the_tool_names_has_a_row() -> None:
    interfaces = [row.interface for row in table()]
    missing = {
        script: files
        for script, files in named_in_tool(SCRIPT).items()
        if not any(script in cell for cell in interfaces)
    }
    assert missing == {}, f"add a row to {HEADING!r} in {ENGINE.name} for: {missing}"


def test_every_rest_path_the_tool_names_has_a_row() -> None:
    interfaces = [row.interface for row in table()]
    missing = {
        path: files
        for path, files in named_in_tool(REST_PATH).items()
        if not any(re.search(rf"`(?:GET|POST) {re.escape(path)}`", cell) for cell in interfaces)
    }
    assert missing == {}, f"add a row to {HEADING!r} in {ENGINE.name} for: {missing}"


def test_every_row_names_what_it_relies_on_its_modules_and_a_source() -> None:
    rows = table()
    assert len(rows) >= 25
    for row in rows:
        assert row.interface and row.relies_on, row
        assert row.source, f"row {row.interface!r} names no source"
        modules = MODULE.findall(row.code)
        assert modules, f"row {row.interface!r} names no module of the tool"
        absent = [m for m in modules if not (PACKAGE / m).is_file()]
        assert absent == [], f"row {row.interface!r} names modules that do not exist: {absent}"


def test_rows_cite_only_the_keys_docs_terracotta_defines() -> None:
    defined = set(KEY_DEFINED.findall(TERRACOTTA.read_text(encoding="utf-8")))
    assert {"sources", "admin", "upgrade-guide", "wan-guide"} <= defined
    unknown = {
        key: row.interface
        for row in table()
        for key in KEY.findall(row.source)
        if key not in defined
    }
    assert unknown == {}
