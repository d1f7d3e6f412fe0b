"""The evidence report's sections (:mod:`bm_upgrade.procedure.evidence`) as Markdown (shown by
the Dagster UI; a long command line cut at :data:`COMMAND_CHARS`) and as one self-contained
HTML page (no script, no external style, font or image; every value escaped, every command
line whole), for a change-advisory board's records."""

from __future__ import annotations

import html
from collections.abc import Sequence

from bm_upgrade.procedure.evidence import Evidence, Section, Table

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #1a1a1a; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; } h3 { font-size: 1em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
td.cmd, pre { font-family: monospace; white-space: pre-wrap; word-break: break-all; }
pre { background: #f6f6f6; padding: 0.8em; }
.failed { color: #a00; font-weight: bold; } .succeeded { color: #070; font-weight: bold; }
"""


def _md_cell(value: str) -> str:
    """A table cell: one line, its pipes escaped, so the table keeps its columns."""
    return " ".join(value.replace("\\", "\\\\").replace("|", "\\|").split()) or " "


COMMAND_CHARS = 240
"""Characters of a command line the Markdown shows (the UI's view); the HTML page has each
line whole."""


def _cut(value: str) -> str:
    return value if len(value) <= COMMAND_CHARS else value[:COMMAND_CHARS] + " …"


def _md_table(table: Table) -> list[str]:
    headers = list(table.headers)
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |"]
    lines.append("|" + "---|" * len(headers))
    for row in table.rows:
        cells = [_cut(v) if h == "command" else v for h, v in zip(headers, row, strict=False)]
        lines.append("| " + " | ".join(_md_cell(v) for v in cells) + " |")
    return lines


def _md_fence(text: str) -> str:
    """A fence longer than any run of backticks inside ``text``."""
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def to_markdown(report: Evidence) -> str:
    """The report as Markdown."""
    return markdown(report.title, report.sections())


def markdown(title: str, sections: Sequence[Section]) -> str:
    lines = [f"# {title}"]
    for section in sections:
        lines.append("")
        if section.title:
            lines += [f"{'#' * section.level} {section.title}", ""]
        lines += [line for paragraph in section.text for line in (paragraph, "")]
        lines += [f"- {' '.join(b.split())}" for b in section.bullets]
        if section.bullets:
            lines.append("")
        if section.table is not None:
            lines += [*_md_table(section.table), ""]
        if section.pre is not None:
            fence = _md_fence(section.pre)
            lines += [fence, section.pre, fence, ""]
        while lines and lines[-1] == "":
            lines.pop()
    return "\n".join(lines) + "\n"


def _html_table(table: Table, code_column: int | None) -> list[str]:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)]
    for row in table.rows:
        cells = []
        for index, value in enumerate(row):
            kind = ' class="cmd"' if index == code_column else ""
            cells.append(f"<td{kind}>{html.escape(value)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return out


def to_html(report: Evidence) -> str:
    """The report as one HTML page."""
    return page(report.title, report.sections(), outcome=report.outcome)


def page(title: str, sections: Sequence[Section], *, outcome: str = "") -> str:
    mark = "failed" if outcome in {"failed", "canceled"} else "succeeded"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        # Nothing is loaded from anywhere: the page must read the same in an archive.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">",
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f'<h1 class="{mark}">{html.escape(title)}</h1>',
    ]
    for section in sections:
        if section.title:
            level = min(max(section.level, 2), 6)
            out.append(f"<h{level}>{html.escape(section.title)}</h{level}>")
        out += [f"<p>{html.escape(paragraph)}</p>" for paragraph in section.text]
        if section.bullets:
            out.append("<ul>")
            out += [f"<li>{html.escape(b)}</li>" for b in section.bullets]
            out.append("</ul>")
        if section.table is not None:
            headers = section.table.headers
            code = headers.index("command") if "command" in headers else None
            out += _html_table(section.table, code)
        if section.pre is not None:
            out.append(f"<pre>{html.escape(section.pre)}</pre>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
