"""What the server steps work with (:class:`StepContext`): how to look at servers, the run's
options, where the target kit is staged, and the check before every disruptive step.

The context reaches hosts through the :class:`~bm_upgrade.procedure.waits.Hosts` protocol
and REST ports through an injectable probe, so a unit test drives the steps over a scripted
fake cluster; a run uses :class:`ServerOps`, the same context over the real
:class:`~bm_upgrade.remote.HostPool`.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Self

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory, Stripe
from bm_upgrade.inventory.kitroot import LICENSE_FILE_NAME
from bm_upgrade.plan import PlanOptions
from bm_upgrade.probes import probe_server_rest
from bm_upgrade.procedure import halt
from bm_upgrade.procedure.kit import StagedKit, kit_file_name, staging_targets
from bm_upgrade.procedure.status_changes import StatusSink, StatusTracker
from bm_upgrade.procedure.waits import POLL_S, Hosts, ServerProbe, Watch
from bm_upgrade.remote import HostPool
from bm_upgrade.window import Outage, WindowGuard

log = logging.getLogger(__name__)


def stripe_key(stripe: Stripe) -> str:
    """A stripe's key in :attr:`StepContext.last_active`: its servers' names."""
    return ",".join(s.name for s in stripe.servers)


@dataclass
class StepContext(Watch):
    """What the server steps work with: how to look at servers (:class:`Watch`) over any
    :class:`~bm_upgrade.procedure.waits.Hosts`, the target and policy, and where the target
    kit is staged. A unit test builds one over a scripted fake host; a run builds a
    :class:`ServerOps`.

    Attributes:
        inventory: the cluster.
        pool: a command runner per host (one SSH connection per host in a run).
        options: target version and policy choices (failback, keep kit, dirty backups).
        staged: per host, the staged target kit and license (from ``stage_kit``); a host
            without an entry uses the default staging folder of ``procedure.kit``.
        log: where progress and records go.
        poll_s: pause between looks while waiting.
        window: when set, every disruptive step first checks it ends before the maintenance
            window closes (runs of a schedule, or started by hand asking for it).
        halted: when set, asked before every disruptive step; a sentence naming an earlier
            failure of the same run that stops new disruptive work, or None to go on
            (procedure/halt.py).
        probe_rest: how a server's REST port is asked (``probe_via: rest``).
        run_tag: see the attribute.
        on_status: when set, handed each change of a server's state, version or role that
            the step's looks see (procedure/status_changes.py): the run's own record of
            every departure from PASSIVE-STANDBY and return, every stop and takeover.
    """

    inventory: Inventory
    pool: Hosts
    options: PlanOptions
    staged: Mapping[str, StagedKit] = field(default_factory=dict)
    log: logging.Logger = log
    poll_s: float = POLL_S
    window: WindowGuard | None = None
    halted: Callable[[], str | None] | None = None
    probe_rest: ServerProbe = probe_server_rest
    run_tag: str = ""
    """Names what this run writes on hosts once per run (its data backups:
    procedure/backup.py); the same across re-executions of one run."""
    last_active: dict[str, str] = field(default_factory=dict)
    """Per stripe (:func:`stripe_key`), the server this step last saw ACTIVE: the one to
    start first when every server of a persistent stripe is down (it holds the newest data)."""
    on_status: StatusSink | None = None
    _tracker: StatusTracker | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def tracker(self) -> StatusTracker | None:
        """The step's status tracker, over :attr:`on_status` (None without one)."""
        if self.on_status is None:
            return None
        if self._tracker is None:
            self._tracker = StatusTracker(self.on_status)
        return self._tracker

    def saw_active(self, stripe: Stripe, name: str) -> None:
        """Remember ``name`` as the stripe's ACTIVE, seen now."""
        self.last_active[stripe_key(stripe)] = name

    @classmethod
    def create(
        cls,
        inventory: Inventory,
        pool: Hosts,
        *,
        target: str | None = None,
        staged: Mapping[str, StagedKit] | None = None,
        logger: logging.Logger | None = None,
        **overrides: object,
    ) -> Self:
        """A context with options from the inventory's policy (``overrides`` win)."""
        options = PlanOptions.from_inventory(inventory, target_version=target, **overrides)
        return cls(inventory, pool, options, dict(staged or {}), logger or log)

    @property
    def target(self) -> str:
        return self.options.target_version

    def staged_paths(self, host: str) -> tuple[str, str]:
        """The staged target kit and license key on ``host``."""
        staged = self.staged.get(host)
        if staged is not None:
            return staged.kit_path, staged.license_path
        kit = self.inventory.kit_for(self.target)
        folder = staging_targets(self.inventory).get(host)
        if kit is None or folder is None:
            raise StepFailed(
                host,
                f"no kit of version {self.target} is listed in the "
                f"inventory of {self.inventory.cluster} for {host}; add it under "
                "kits and stage it, then rerun",
            )
        return (
            posixpath.join(folder, kit_file_name(kit)),
            posixpath.join(folder, LICENSE_FILE_NAME),
        )

    @property
    def target_sha256(self) -> str | None:
        """The inventory's sha256 of the target kit: a staged tarball is checked against it
        on its host right before it is unpacked."""
        kit = self.inventory.kit_for(self.target)
        return kit.sha256 if kit is not None else None

    def unpacked_bytes(self, host: str) -> int | None:
        """The target kit's unpacked size as staging measured it (None: read on the host)."""
        staged = self.staged.get(host)
        return staged.unpacked_bytes if staged is not None else None

    def before_disruptive(self, node: str, step: str, kind: Outage) -> None:
        """Before a disruptive step (stopping a server, a client, the orchestrators).

        Raises:
            StepFailed: a stop was requested (procedure/halt.py), an earlier step of the run
                failed (``halted``), or the step would outlast the maintenance window. Nothing
                was changed by this step.
        """
        requested = halt.stop_reason()
        if requested is not None:
            raise StepFailed(
                node,
                f"{step} not started: {requested}; nothing was changed by "
                "this step; rerun (or re-execute from failure) to go on",
            )
        earlier = self.halted() if self.halted is not None else None
        if earlier is not None:
            raise StepFailed(node, f"{step} not started: {earlier}")
        if self.window is not None:
            self.window.check(node, step, kind)


@dataclass
class ServerOps(StepContext):
    """A :class:`StepContext` over the real :class:`~bm_upgrade.remote.HostPool`: the client
    and WAN steps also fan out over its hosts and check the whole cluster through it."""

    pool: HostPool
