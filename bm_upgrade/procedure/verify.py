"""The check after every stripe step: is every server where the upgrade leaves it?"""

from __future__ import annotations

from bm_upgrade.procedure.observe import ClusterView


def server_problems(view: ClusterView, target: str) -> list[str]:
    """What keeps ``view``'s servers from being all on ``target`` with one ACTIVE and
    PASSIVE-STANDBY mirrors per stripe: servers on another version, unhealthy stripes,
    unreachable hosts (empty: none)."""
    wrong = [s.describe() for s in view.servers.values() if s.node_state.version != target]
    unhealthy = [p for h in view.health.values() for p in h.problems]
    return wrong + unhealthy + list(view.unreachable.values())
