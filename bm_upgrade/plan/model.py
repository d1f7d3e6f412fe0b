"""The plan's vocabulary: what was observed of a node, the options, a step's action and
segment, a step, a plan, and the builder every planner adds its steps to."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bm_upgrade.inventory import Inventory, Timeouts

Phase = Literal[
    "preflight", "kit", "servers", "approval", "verify", "clients", "orchestrators", "report"
]
PHASES: tuple[Phase, ...] = (
    "preflight",
    "kit",
    "servers",
    "verify",
    "clients",
    "orchestrators",
    "report",
)

ACTIVE = "ACTIVE-COORDINATOR"
STANDBY = "PASSIVE-STANDBY"

Action = Literal[
    # cluster and kit
    "preflight",
    "fetch",
    "stage",
    "verify-servers",
    "approve-canary",
    "confirm-wan",
    "report",
    # one node
    "stop",
    "install",
    "replace-jars",
    "start",
    # a server
    "confirm-standby",
    "confirm-active",
    "failover-stop",
    "failback-stop",
    "wait-failover",
    # a node already done (always skipped)
    "upgrade",
    "failback",
]
"""What a step does. The server procedure dispatches on it (``procedure/servers.py``), and the
window guard knows which ones start an outage (:data:`bm_upgrade.window.DISRUPTIVE`)."""

Segment = Literal["mirrors", "failover", "failback"]
"""Which stripe op does a server step: ``upgrade_mirrors`` the mirrors, ``failover`` the
active and the failback. A server step of no segment brings back a server that is down or
confirms one still starting: whichever op looks first does it (docs/safety.md rule 3)."""
SEGMENTS: tuple[Segment, ...] = ("mirrors", "failover", "failback")
"""The segments in the order a stripe goes through them."""


@dataclass(frozen=True)
class NodeState:
    """What was observed of one node (server, client or orchestrator): the plan's input,
    the same shape for every kind of node, whether probed or assumed.

    Attributes:
        running: the process is up.
        version: the version installed (``version.sh`` / the client jars), None if unknown.
        state: a server's state (``ACTIVE-COORDINATOR``, ``PASSIVE-STANDBY``, ...) when running.
    """

    running: bool = True
    version: str | None = None
    state: str | None = None

    @property
    def role(self) -> str | None:
        if not self.running or self.state is None:
            return None
        return "ACTIVE" if self.state == ACTIVE else "PASSIVE"


@dataclass(frozen=True)
class PlanOptions:
    """The run's options, built once per run: the target and every choice of the
    inventory's ``policy`` (:class:`~bm_upgrade.inventory.Policy`), with the run's overrides
    applied. Every step reads these, never the inventory's policy or target."""

    target_version: str
    failback: bool = False
    delete_dirty_backups: bool = False
    keep_previous_kit: bool = True
    client_batch_size: int = 1
    parallel_stripes: int = 1
    allow_downtime: bool = False
    accept_data_loss: bool = False
    continue_on_failure: bool = False
    backup_before_upgrade: bool | None = None
    canary: str | None = None
    """The stripe (``region/stripe``) upgraded first, before the run's approval gate."""
    timeouts: Timeouts = field(default_factory=Timeouts)

    @classmethod
    def from_inventory(cls, inventory: Inventory, **overrides: Any) -> PlanOptions:
        """The inventory's target and policy, then ``overrides`` (``None`` ones ignored):
        any policy field by its name, ``target_version`` and ``timeouts``."""
        values: dict[str, Any] = {
            name: getattr(inventory.policy, name) for name in type(inventory.policy).model_fields
        }
        values["target_version"] = inventory.target_version
        unknown = set(overrides) - set(values)
        if unknown:
            raise TypeError(f"not a run option: {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True)
class Step:
    """One step of the plan.

    Attributes:
        phase: one of PHASES.
        node: the server/client/orchestrator/host it acts on (the cluster for cluster steps).
        action: what it does (``stop``, ``install``, ``start``, ``confirm-standby``, ...).
        segment: for a server step, the stripe op that does it (see :data:`Segment`).
        waits_for: what must be true before the step counts as done.
        stage: steps of one stage may overlap; stages run in order.
        lane: the parallel group: steps of one lane run in order, lanes of a stage in parallel.
        kind: ``change`` (alters the cluster) or ``check`` (only looks).
        region, stripe: where the node lives, when it is a server/client/orchestrator.
        skipped: the observed state already satisfies the step.
        reason: why it is skipped.
        detail: what the step does, where its action name does not say it all.
    """

    phase: Phase
    node: str
    action: Action
    waits_for: str
    stage: int
    lane: str
    kind: Literal["change", "check"] = "change"
    region: str | None = None
    stripe: str | None = None
    segment: Segment | None = None
    skipped: bool = False
    reason: str = ""
    detail: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity of a step across re-plans."""
        return (self.phase, self.node, self.action)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["parallel_group"] = f"{self.stage}:{self.lane}"
        return data


@dataclass(frozen=True)
class Plan:
    """The ordered steps for one cluster and target."""

    cluster: str
    target_version: str
    options: PlanOptions
    steps: tuple[Step, ...] = field(default_factory=tuple)

    def todo(self) -> list[Step]:
        """The change steps that are not skipped, in order."""
        return [s for s in self.steps if s.kind == "change" and not s.skipped]


class Builder:
    """Accumulates steps, numbering stages as phases and batches open."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.stage = -1

    def next_stage(self) -> None:
        self.stage += 1

    def add(
        self, phase: Phase, node: str, action: Action, waits_for: str, lane: str, **extra: Any
    ) -> None:
        self.steps.append(
            Step(
                phase=phase,
                node=node,
                action=action,
                waits_for=waits_for,
                stage=self.stage,
                lane=lane,
                **extra,
            )
        )

    def add_node_step(
        self,
        phase: Phase,
        region: str,
        node: str,
        action: Action,
        waits_for: str,
        *,
        skip: str = "",
    ) -> None:
        """A step on one client or orchestrator, in the node's own lane; skipped, with
        ``skip`` as the reason, when that is set."""
        self.add(
            phase,
            node,
            action,
            waits_for,
            lane=f"{phase}/{node}",
            region=region,
            skipped=bool(skip),
            reason=skip,
        )
