"""tc-config.xml for the sandbox's regions (the format of docs/terracotta.md).

The writer and the reader live in the kit's ``tcconfigxml.py``: the server program reads what
this writes, and both must agree on every element.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bm_upgrade.sandbox.kit_files.server.lib import tcconfigxml


def write_tc_config(
    path: Path,
    *,
    stripes: list[dict[str, Any]],
    persistent: bool,
    reconnect_window_s: float,
    election_s: float,
    security: dict[str, str] | None = None,
) -> None:
    """Write one region's tc-config.xml.

    Args:
        path: where to write (parents created).
        stripes: ``[{"name": group name, "servers": [{"name", "host", "data", "logs",
            "tsa_port", "jmx_port", "group_port", "management_port"}]}]``.
        persistent: ``<restartable enabled="true"/>``.
        reconnect_window_s: ``<client-reconnect-window>``.
        election_s: ``election-time`` of every mirror group.
        security: a secured region's ``<security>`` values (:mod:`bm_upgrade.sandbox.security`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        tcconfigxml.render_tc_config(
            stripes,
            persistent=persistent,
            reconnect_window_s=reconnect_window_s,
            election_s=election_s,
            security=security,
        ),
        encoding="utf-8",
    )
