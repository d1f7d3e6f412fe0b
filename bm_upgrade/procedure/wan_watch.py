"""How the WAN cycle looks at orchestrators: each one's status (an injectable probe of its
status port), its host's process list while it does not answer, its kit root's version.

The cycle (:mod:`bm_upgrade.procedure.wan`) reaches hosts only through its context's
:class:`~bm_upgrade.procedure.waits.Hosts`; with a scripted probe, tests/unit/test_wan_branches.py
drives it without a process or a socket.
"""

from __future__ import annotations

import threading
from typing import Protocol

from bm_upgrade.errors import RemoteError
from bm_upgrade.inventory import Orchestrator
from bm_upgrade.plan import NodeState
from bm_upgrade.probes import (
    OrchestratorStatus,
    Runner,
    kit_version,
    probe_orchestrator,
    read_wan_bind,
)
from bm_upgrade.procedure.servers import StepContext


class OrchestratorProbe(Protocol):
    """How an orchestrator's status is read, given its wan.xml ``<bind>`` address
    (:func:`~bm_upgrade.probes.probe_orchestrator`, or a unit test's scripted answers)."""

    def __call__(
        self,
        conn: Runner,
        orch: Orchestrator,
        timeout: float = ...,
        bind: tuple[str, int] | None = ...,
    ) -> OrchestratorStatus: ...


class WanWatch:
    """How the cycle looks at orchestrators: each one's wan.xml ``<bind>`` is read over SSH
    once per cycle (the cycle does not change wan.xml), then every look is one ``probe`` of
    its status port (an HTTP request); its host's process list only while it does not
    answer, at most every :data:`~bm_upgrade.procedure.waits.ALIVE_EVERY_S`. The inventory,
    hosts, options and log are the context's. Safe to share between the threads of one plan
    stage."""

    def __init__(self, ctx: StepContext, probe: OrchestratorProbe = probe_orchestrator) -> None:
        self.ctx = ctx
        self.read_status = probe
        self._binds: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def probe(self, orch: Orchestrator) -> OrchestratorStatus:
        conn = self.ctx.pool.get(orch.host)
        with self._lock:
            bind = self._binds.get(orch.name)
        if bind is None:
            try:
                bind = read_wan_bind(conn, orch)
            except (RemoteError, ValueError) as exc:
                return OrchestratorStatus(orch.name, orch.host, reachable=False, error=str(exc))
            with self._lock:
                self._binds[orch.name] = bind
        return self.read_status(conn, orch, bind=bind)

    def alive(self, orch: Orchestrator) -> bool:
        """A process started by ``start-wan.sh -f <wan_xml>`` of this orchestrator runs."""
        listing = (
            self.ctx.pool.get(orch.host).run(["ps", "-ww", "-eo", "args="], timeout=30.0).stdout
        )
        return any(
            orch.wan_xml in line.split() and "stop-wan" not in line for line in listing.splitlines()
        )


Seen = tuple[Orchestrator, OrchestratorStatus, NodeState]
"""One orchestrator as the cycle found it: its status and the state the plan needs."""


def observe(wan: WanWatch) -> dict[str, Seen]:
    """Every orchestrator: its status and the state the plan needs (installed kit when down)."""
    seen: dict[str, Seen] = {}
    for _, orch in wan.ctx.inventory.orchestrators():
        status = wan.probe(orch)
        if status.reachable:
            state = NodeState(True, status.version)
        else:
            state = NodeState(wan.alive(orch), kit_version(wan.ctx.pool.get(orch.host), orch))
        seen[orch.name] = (orch, status, state)
    return seen
