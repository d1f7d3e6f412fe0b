"""The sandbox journal: ``DIR/journal.jsonl``, one JSON event a line, many writers.

The format is written once, in the kit's shared module, because the kit's programs (which
cannot import bm_upgrade) write the same journal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bm_upgrade.sandbox.kit_files.server.lib import tccommon


def append(journal_path: str | os.PathLike[str], event: str, **fields: Any) -> None:
    """Append ``{"t": now, "event": event, **fields}`` as one line (one O_APPEND write)."""
    tccommon.journal_append(journal_path, event, **fields)


def read(journal_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every event of a journal, in file order; a missing journal is empty."""
    try:
        text = Path(journal_path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]
