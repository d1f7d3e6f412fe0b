"""How the WAN cycle looks at orchestrators: as the product lets an operator, through each
one's process, a listen check on its wan.xml ``<bind>``, its kit root's version and its
replication log (docs/terracotta.md, "WAN replication"; a real orchestrator has no status
endpoint).

The cycle (:mod:`bm_upgrade.procedure.wan`) reaches hosts only through its context's
:class:`~bm_upgrade.procedure.waits.Hosts`; with a scripted probe, tests/unit/test_wan_branches.py
drives it without a process or a socket.
"""

from __future__ import annotations

import threading
from typing import Protocol

from bm_upgrade.errors import RemoteError, StepFailed
from bm_upgrade.inventory import Orchestrator
from bm_upgrade.plan import NodeState
from bm_upgrade.probes import (
    LogMark,
    OrchestratorStatus,
    Runner,
    WanConfig,
    probe_orchestrator,
    read_wan_config,
)
from bm_upgrade.procedure.servers import StepContext


class OrchestratorProbe(Protocol):
    """How an orchestrator is read, given its wan.xml
    (:func:`~bm_upgrade.probes.probe_orchestrator`, or a unit test's scripted answers)."""

    def __call__(
        self,
        conn: Runner,
        orch: Orchestrator,
        timeout: float = ...,
        *,
        config: WanConfig | None = ...,
        since: LogMark | None = ...,
        version: bool = ...,
    ) -> OrchestratorStatus: ...


class WanWatch:
    """How the cycle looks at orchestrators: each one's wan.xml is read over SSH once per
    cycle (the cycle does not change wan.xml), then every look is one ``probe`` command on
    its host. Where its replication log stood before its start is remembered (:meth:`mark`),
    so that "every replica resynced" is read from the lines written after the restart. The
    inventory, hosts, options and log are the context's. Safe to share between the threads of
    one plan stage."""

    def __init__(self, ctx: StepContext, probe: OrchestratorProbe = probe_orchestrator) -> None:
        self.ctx = ctx
        self.read_status = probe
        self._configs: dict[str, WanConfig] = {}
        self._marks: dict[str, LogMark | None] = {}
        self._lock = threading.Lock()

    def config(self, orch: Orchestrator) -> WanConfig:
        """The orchestrator's wan.xml as read once this cycle.

        Raises:
            RemoteError: it could not be read.
            ValueError: it has no usable ``<bind>``.
        """
        with self._lock:
            config = self._configs.get(orch.name)
        if config is None:
            config = read_wan_config(self.ctx.pool.get(orch.host), orch)
            with self._lock:
                self._configs[orch.name] = config
        return config

    def probe(self, orch: Orchestrator, version: bool = False) -> OrchestratorStatus:
        """One look: process, listen check, replication log since its mark (and the kit
        root's version when asked: ``version.sh`` starts a JVM on a real host)."""
        try:
            config = self.config(orch)
        except (RemoteError, ValueError) as exc:
            return OrchestratorStatus(orch.name, orch.host, error=str(exc))
        with self._lock:
            since = self._marks.get(orch.name)
        return self.read_status(
            self.ctx.pool.get(orch.host), orch, config=config, since=since, version=version
        )

    def mark(self, orch: Orchestrator) -> None:
        """Remember where the orchestrator's replication log stands now (before its start)."""
        seen = self.probe(orch)
        with self._lock:
            self._marks[orch.name] = seen.log


Seen = tuple[Orchestrator, OrchestratorStatus, NodeState]
"""One orchestrator as the cycle found it: its status and the state the plan needs."""


def observe(wan: WanWatch) -> dict[str, Seen]:
    """Every orchestrator: its status and the state the plan needs (running, kit version).

    Raises:
        StepFailed: an orchestrator could not be read (nothing was touched).
    """
    seen: dict[str, Seen] = {}
    for _, orch in wan.ctx.inventory.orchestrators():
        status = wan.probe(orch, version=True)
        if status.running is None:
            raise StepFailed(
                orch.name,
                f"orchestrator {orch.name} on {orch.host} could not be read "
                f"({status.error}); no orchestrator was touched; fix that, then rerun",
            )
        seen[orch.name] = (orch, status, NodeState(status.running, status.version))
    return seen
