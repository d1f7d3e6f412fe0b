"""The check after every stripe step: is every server where the upgrade leaves it?"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bm_upgrade.procedure.observe import ClusterView


def server_problems(view: ClusterView, target: str) -> list[str]:
    """What keeps ``view``'s servers from being all on ``target`` with one ACTIVE and
    PASSIVE-STANDBY mirrors per stripe (docs/safety.md rules 5 and 6): servers on another
    version, the stripes' problems of the view's health check, unreachable hosts (empty:
    none). The ``verify_servers`` step and the check before the first client or orchestrator
    is touched raise on it."""
    wrong = [s.describe() for s in view.servers.values() if s.node_state.version != target]
    return wrong + view.health.stripe_problems() + list(view.unreachable.values())
