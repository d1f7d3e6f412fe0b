"""The election among a stripe's servers (tsa-group-port ``status`` requests)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import tccommon
    from bm_upgrade.sandbox.kit_files.server.lib.tcserver import Server
else:
    import tccommon


def peer_statuses(server: Server) -> dict[str, dict[str, Any]]:
    """The status of every peer of ``server`` that answers on its tsa-group-port."""
    statuses = {}
    for peer in server.peers:
        try:
            statuses[peer["name"]] = tccommon.request(
                peer["host"], peer["group_port"], {"op": "status"}, timeout_s=1.0
            )
        except (OSError, ValueError):
            continue
    return statuses


def wins(server: Server, statuses: dict[str, dict[str, Any]]) -> bool:
    """May ``server``, in START-STATE, become the active now (``statuses``: its peers')?

    A PASSIVE-STANDBY peer is about to take over, so nobody else may. Persistent: the last
    active (highest epoch) recovers; a server that has seen a cluster but was not its active
    waits for it; fresh servers elect the first in tc-config order. Non-persistent: the
    first in tc-config order among the START-STATE servers.
    """
    if any(s["state"] == server.STANDBY for s in statuses.values()):
        return False
    mine = server.status()
    candidates = [mine] + [s for s in statuses.values() if s["state"] == server.START]
    if server.store.persistent:
        seen_cluster = any(int(c["epoch"]) > 0 for c in candidates)
        eligible = [c for c in candidates if c["was_active"] or not seen_cluster]
        if mine not in eligible:
            return False
        winner = max(eligible, key=lambda c: (c["was_active"], int(c["epoch"]), -int(c["index"])))
    else:
        winner = min(candidates, key=lambda c: int(c["index"]))
    return bool(winner["name"] == server.name)
