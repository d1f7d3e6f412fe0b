"""Run configuration of the upgrade job: one Config class, defaults from the inventory.

Only the ``preflight`` op takes it; preflight turns it into :class:`RunSettings`, which every
later op receives as an input. So the launchpad shows one block of settings, and a
re-execution from failure reuses the parent run's settings with its outputs.

The run config reads like the inventory's ``policy:``: every policy field a run may override,
by the same name, with ``timeouts`` as a block of its own. :class:`UpgradeConfig` declares
them once; the defaults from the inventory and the run's options are made from that
declaration, field by field, whatever the fields are.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import dagster as dg
from pydantic import ConfigDict, Field, ValidationError, field_validator

from bm_upgrade.errors import UserError
from bm_upgrade.inventory import Inventory, Policy, Timeouts
from bm_upgrade.plan import PlanOptions
from bm_upgrade.window import WindowGuard


class TimeoutsConfig(dg.Config, Timeouts):
    """How long each wait may take, in seconds: the inventory's ``policy.timeouts``, its
    fields declared once (:class:`bm_upgrade.inventory.Timeouts`)."""

    model_config = ConfigDict(extra="forbid")


class UpgradeConfig(dg.Config):
    """What one upgrade run does. Defaults come from the inventory's target and policy.

    ``parallel_stripes`` is not here: it shapes the job's graph and executor when the code
    location loads (defs/jobs.py), so a run cannot change it.
    """

    model_config = ConfigDict(extra="forbid")

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
        description="After a step of the run failed, let other stripes still stop servers; "
        "off: every later disruptive step ends safely, naming the failure.",
    )
    backup_before_upgrade: bool | None = Field(
        default=None,
        description="Back up each stripe's data (backup-data.sh) before its first server "
        "stops; unset: on for a persistent cluster.",
    )
    canary: str | None = Field(
        default=None,
        description="The stripe (region/stripe) upgraded first, then the run waits at "
        "approve_canary for an operator's decision. The job's graph is shaped by the "
        "inventory's policy.canary: a run may keep it or set none (no wait), not name another.",
    )
    timeouts: TimeoutsConfig = Field(
        default_factory=TimeoutsConfig, description="How long each wait may take, in seconds."
    )
    window_end: str | None = Field(
        default=None,
        description="ISO time the maintenance window closes (set by the schedule); none: run "
        "by hand.",
    )
    respect_window: bool = Field(
        default=False,
        description="A run started by hand without window_end: run only inside the "
        "inventory's window, and check every disruptive step fits before it closes.",
    )
    ignore_prediction: bool = Field(
        default=False,
        description="Start even when past runs predict the run cannot finish before the "
        "window closes (preflight refuses it otherwise); each disruptive step still checks "
        "that it fits, so the run may end at the window's close and a later run finish.",
    )

    @field_validator("window_end")
    @classmethod
    def _iso_time(cls, value: str | None) -> str | None:
        # Read when preflight makes the run's settings: refused here, before the run exists.
        if value:
            try:
                datetime.datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    "not an ISO time; write it like 2030-01-05T06:00:00+01:00"
                ) from None
        return value

    @classmethod
    def defaults_for(cls, inventory: Inventory) -> dict[str, Any]:
        """The inventory's target and policy, as the job's default run config for preflight."""
        return {
            "target_version": inventory.target_version,
            "dry_run": False,
            **inventory.policy.model_dump(include=set(RUN_POLICY_FIELDS)),
        }


RUN_POLICY_FIELDS = tuple(
    name for name in UpgradeConfig.model_fields if name in Policy.model_fields
)
"""The policy fields a run may override: those :class:`UpgradeConfig` declares."""


def checked_config(config: Mapping[str, Any], *, fix: str) -> UpgradeConfig:
    """``config`` (a run's preflight config) as Dagster would take it, checked before the
    run exists.

    Args:
        fix: what the operator does about a wrong key (ends the message).

    Raises:
        UserError: naming each key that is not run config or whose value does not fit.
    """
    try:
        return UpgradeConfig(**config)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            if error["type"] == "extra_forbidden":
                problems.append(f"{key} is not a run config key")
            else:
                message = error["msg"].removeprefix("Value error, ")
                problems.append(f"{key}={error.get('input')!r}: {message}")
        keys = ", ".join(UpgradeConfig.model_fields)
        timeouts = ", ".join(TimeoutsConfig.model_fields)
        raise UserError(
            f"run config: {'; '.join(problems)} (its keys: {keys}; under timeouts: "
            f"{timeouts}); {fix}"
        ) from None


def _run_canary(canary: str | None, inventory: Inventory) -> str | None:
    """The run's canary: the inventory's (which shaped the job's graph) or none.

    Raises:
        UserError: ``canary`` names another stripe, which the graph cannot put first.
    """
    shaped = inventory.policy.canary
    if canary is None or canary == shaped:
        return canary
    has = f"puts {shaped} first" if shaped else "has no canary"
    raise UserError(
        f"run config canary={canary!r}: the job's graph {has} (policy.canary in the "
        "inventory, read when the code location loaded); set policy.canary: "
        f"{canary} in the inventory and reload the code location, or run with canary "
        f"{'set to ' + shaped + ' or ' if shaped else ''}unset"
    )


@dataclass(frozen=True)
class RunSettings:
    """The run's settings as plain data (passed between ops; picklable)."""

    options: PlanOptions
    """The target and every policy choice, the run's overrides applied: what every step reads
    (never the inventory's policy or target)."""
    dry_run: bool
    window_end: datetime.datetime | None
    before: dict[str, str | None] = field(default_factory=dict)
    """Node -> version as preflight saw it (the report's "before" column)."""
    expected_outages: dict[str, tuple[float, str]] = field(default_factory=dict)
    """Kind of outage -> (seconds, basis), for the window check of disruptive steps."""
    next_opening: datetime.datetime | None = None
    """When the maintenance window after this run's opens (for the window check's message)."""

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
        """The run's settings: the inventory's policy with the run config's values (checked
        as the inventory's own policy is), and the run config's target."""
        chosen = config.model_dump(include=set(RUN_POLICY_FIELDS))
        policy = Policy.model_validate({**inventory.policy.model_dump(), **chosen})
        options = PlanOptions.from_inventory(
            inventory,
            target_version=config.target_version,
            **{name: getattr(policy, name) for name in chosen},
        )
        # None is a choice here (no canary for this run), not "the inventory's".
        options = replace(options, canary=_run_canary(config.canary, inventory))
        window_end = (
            datetime.datetime.fromisoformat(config.window_end) if config.window_end else None
        )
        if window_end is not None and window_end.tzinfo is None:
            window_end = window_end.replace(tzinfo=datetime.UTC)
        return cls(options, config.dry_run, window_end)
