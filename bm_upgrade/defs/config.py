"""Run configuration of the upgrade job: one Config class, defaults from the inventory.

Only the ``preflight`` op takes it; preflight turns it into :class:`RunSettings`, which every
later op receives as an input. So the launchpad shows one block of settings, and a
re-execution from failure reuses the parent run's settings with its outputs.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, replace
from typing import Any

import dagster as dg
from pydantic import Field

from bm_upgrade.inventory import Inventory, Timeouts
from bm_upgrade.plan import PlanOptions
from bm_upgrade.window import WindowGuard


class UpgradeConfig(dg.Config):
    """What one upgrade run does. Defaults come from the inventory's target and policy."""

    target_version: str = Field(description="Version to install (4.2.N); older = rollback.")
    dry_run: bool = Field(default=False, description="Probe and report every step; change nothing.")
    failback: bool = Field(
        default=False, description="Return the ACTIVE role to each stripe's preferred server."
    )
    delete_dirty_backups: bool = False
    keep_previous_kit: bool = True
    client_batch_size: int = Field(default=1, ge=1)
    allow_downtime: bool = False
    accept_data_loss: bool = False
    continue_on_failure: bool = Field(
        default=False,
        description="After a step of the run "
        "failed, let other stripes still stop servers; off: "
        "every later disruptive step ends safely, naming the "
        "failure.",
    )
    stop_timeout_s: float = 120.0
    start_timeout_s: float = 300.0
    sync_timeout_s: float = 1800.0
    failover_timeout_s: float = 120.0
    client_timeout_s: float = 300.0
    orchestrator_timeout_s: float = 600.0
    window_end: str | None = Field(
        default=None,
        description="ISO time the maintenance "
        "window closes (set by the schedule); none: run by hand.",
    )
    respect_window: bool = Field(
        default=False,
        description="A run started by hand without "
        "window_end: run only inside the inventory's window, and "
        "check every disruptive step fits before it closes.",
    )

    @classmethod
    def defaults_for(cls, inventory: Inventory) -> dict[str, Any]:
        """The inventory's values, as the job's default run config for preflight."""
        policy, t = inventory.policy, inventory.policy.timeouts
        return {
            "target_version": inventory.target_version,
            "dry_run": False,
            "failback": policy.failback,
            "delete_dirty_backups": policy.delete_dirty_backups,
            "keep_previous_kit": policy.keep_previous_kit,
            "client_batch_size": policy.client_batch_size,
            "allow_downtime": policy.allow_downtime,
            "accept_data_loss": policy.accept_data_loss,
            "continue_on_failure": policy.continue_on_failure,
            "stop_timeout_s": t.stop_s,
            "start_timeout_s": t.start_s,
            "sync_timeout_s": t.sync_s,
            "failover_timeout_s": t.failover_s,
            "client_timeout_s": t.client_s,
            "orchestrator_timeout_s": t.orchestrator_s,
        }


@dataclass(frozen=True)
class RunSettings:
    """The run's settings as plain data (passed between ops; picklable)."""

    options: PlanOptions
    timeouts: Timeouts
    dry_run: bool
    window_end: datetime.datetime | None
    before: dict[str, str | None] = field(default_factory=dict)
    """Node -> version as preflight saw it (the report's "before" column)."""
    expected_outages: dict[str, tuple[float, str]] = field(default_factory=dict)
    """Kind of outage -> (seconds, basis), for the window check of disruptive steps."""
    next_opening: datetime.datetime | None = None
    """When the maintenance window after this run's opens (for the window check's message)."""
    continue_on_failure: bool = False
    """Other stripes go on after a step failed (else no new disruptive work: docs/safety.md
    rule 12)."""

    def with_before(self, versions: dict[str, str | None]) -> RunSettings:
        return replace(self, before=dict(versions))

    def with_window(
        self,
        window_end: datetime.datetime | None,
        expected: dict[str, tuple[float, str]],
        next_opening: datetime.datetime | None,
    ) -> RunSettings:
        return replace(
            self, window_end=window_end, expected_outages=dict(expected), next_opening=next_opening
        )

    def window_guard(self) -> WindowGuard | None:
        """The check disruptive steps make (None: no window end, run by hand)."""
        if self.window_end is None:
            return None
        return WindowGuard(self.window_end, self.expected_outages, self.next_opening)

    @classmethod
    def from_config(cls, config: UpgradeConfig, inventory: Inventory) -> RunSettings:
        timeouts = Timeouts(
            stop_s=config.stop_timeout_s,
            start_s=config.start_timeout_s,
            sync_s=config.sync_timeout_s,
            failover_s=config.failover_timeout_s,
            client_s=config.client_timeout_s,
            orchestrator_s=config.orchestrator_timeout_s,
        )
        options = PlanOptions.from_inventory(
            inventory,
            target_version=config.target_version,
            failback=config.failback,
            delete_dirty_backups=config.delete_dirty_backups,
            keep_previous_kit=config.keep_previous_kit,
            client_batch_size=config.client_batch_size,
            allow_downtime=config.allow_downtime,
            accept_data_loss=config.accept_data_loss,
            continue_on_failure=config.continue_on_failure,
            timeouts=timeouts,
        )
        window_end = (
            datetime.datetime.fromisoformat(config.window_end) if config.window_end else None
        )
        if window_end is not None and window_end.tzinfo is None:
            window_end = window_end.replace(tzinfo=datetime.UTC)
        return cls(
            options,
            timeouts,
            config.dry_run,
            window_end,
            continue_on_failure=config.continue_on_failure,
        )

    def inventory_for_run(self, inventory: Inventory) -> Inventory:
        """The inventory with this run's target, timeouts and policy choices applied, so no
        step can read the inventory file's target where the run's (``--to``) is meant."""
        policy = inventory.policy.model_copy(
            update={
                "timeouts": self.timeouts,
                "failback": self.options.failback,
                "delete_dirty_backups": self.options.delete_dirty_backups,
                "keep_previous_kit": self.options.keep_previous_kit,
                "client_batch_size": self.options.client_batch_size,
                "continue_on_failure": self.continue_on_failure,
            }
        )
        return inventory.model_copy(
            update={"policy": policy, "target_version": self.options.target_version}
        )
