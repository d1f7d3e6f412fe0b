"""`sandbox verify`: every acknowledged write read back from its stripe's current active.

Each client app appends one line per acknowledged write to ``DIR/ledgers/<client>.jsonl``
(stripe, key, value); verify reads them, asks each stripe's ACTIVE (found by its REST stat)
for every key, and counts the keys whose value is gone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bm_upgrade.sandbox import protocol, security
from bm_upgrade.sandbox.cluster.launch import SandboxError


def _ledger(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    entries = []
    for ledger in sorted((directory / "ledgers").glob("*.jsonl")):
        for line in ledger.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    entries.append((ledger.stem, json.loads(line)))
                except ValueError:
                    continue  # a line being written right now
    return entries


def _current_actives(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(region, stripe) -> the sandbox.json entry (plus name) of its ACTIVE server."""
    info = json.loads((directory / "sandbox.json").read_text(encoding="utf-8"))
    actives = {}
    for name, server in info["servers"].items():
        auth = security.auth_for(directory, server["region"])
        stat = protocol.server_stat(server["host"], server["management_port"], auth=auth)
        if stat and stat.get("role") == "ACTIVE":
            actives[(server["region"], server["stripe"])] = {**server, "name": name}
    return actives


def verify(directory: Path) -> dict[str, Any]:
    """Read every ledger; read each acknowledged key back from its stripe's current active.

    A key counts as found when the active returns its last acknowledged value, or a value
    acknowledged for it later (clients keep writing while verify reads).
    """
    directory = directory.resolve()
    if not (directory / "sandbox.json").exists():
        raise SandboxError(
            f"no sandbox in {directory} (no sandbox.json); run `bm-upgrade sandbox up` first"
        )
    info = json.loads((directory / "sandbox.json").read_text(encoding="utf-8"))
    clients = info.get("clients", {})
    first = _ledger(directory)
    last: dict[tuple[str, str, str], int] = {}
    for i, (client, entry) in enumerate(first):
        region = clients.get(client, {}).get("region", "")
        last[(region, str(entry["stripe"]), str(entry["key"]))] = i
    actives = _current_actives(directory)
    observed: dict[tuple[str, str, str], str | None] = {}
    for region, stripe, key in last:
        active = actives.get((region, stripe))
        observed[(region, stripe, key)] = (
            None if active is None else protocol.read_key(active["host"], active["tsa_port"], key)
        )
    later = _ledger(directory)
    per_stripe: dict[str, dict[str, int]] = {}
    lost_total = 0
    for (region, stripe, key), index in last.items():
        acceptable = {str(e["value"]) for _, e in later[index:] if str(e["key"]) == key}
        acceptable.add(str(first[index][1]["value"]))
        counts = per_stripe.setdefault(f"{region}/{stripe}", {"acked": 0, "lost": 0})
        counts["acked"] += 1
        if observed[(region, stripe, key)] not in acceptable:
            counts["lost"] += 1
            lost_total += 1
    return {
        "acked": len(last),
        "lost": lost_total,
        "writes": len(first),
        "per_stripe": dict(sorted(per_stripe.items())),
    }
