"""The predicted duration in each upgrade job's description, which the UI shows on the job's
page and its launchpad before anyone launches a run.

Computed when the code location is initialized (the code server, `dagster dev`): from the
past runs in ``DAGSTER_HOME``'s instance when it is set and usable, else from the timeouts,
within a time budget so that many clusters do not slow the load. A run worker or a step
process rebuilding the code location does not read the instance again: the texts travel in
the code location's reconstruction metadata (Dagster's way of handing what initialization
computed to the processes that rebuild the location), so each job is rebuilt with the
description the UI showed.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import dagster as dg

from bm_upgrade.defs.instance import instance
from bm_upgrade.defs.prediction import predict
from bm_upgrade.errors import BmUpgradeError
from bm_upgrade.inventory import Inventory
from bm_upgrade.plan import PlanOptions, make_plan
from bm_upgrade.plan.estimate import (
    Prediction,
    from_timeouts,
    minutes,
    shape_options,
    window_fit,
    work_of,
)

RECONSTRUCTION_KEY = "bm_upgrade/predicted_durations"
"""Reconstruction metadata of the code location: cluster -> its job's prediction text."""
LOAD_BUDGET_S = 1.0
"""Seconds the code location's load may spend reading past runs, all clusters together; the
clusters after it get the timeouts' estimate (saying so)."""

log = logging.getLogger(__name__)


_UNKNOWN: Mapping[str, str] = {}
"""What :func:`_rebuilt` answers when Dagster does not say which load this is."""


def _load_context() -> Any:
    """Dagster's definitions load context: whether the code location is being initialized
    or rebuilt, and the reconstruction metadata. Not in Dagster's public API in this version
    (``Definitions.with_reconstruction_metadata`` is, but its values do not reach a
    rebuilding process here); if it moves, the callers fall back to the cheap way."""
    from dagster._core.definitions.definitions_load_context import DefinitionsLoadContext

    return DefinitionsLoadContext.get()


def _rebuilt() -> Mapping[str, str] | None:
    """The texts the code location's initialization computed, when this process rebuilds it
    (a run worker, a step process); None when this is the initialization itself;
    :data:`_UNKNOWN` when Dagster does not say (the descriptions are then made from the
    timeouts, without reading the instance, and the load stays cheap)."""
    try:
        context = _load_context()
        if context.load_type.value == "INITIALIZATION":
            return None
        saved = context.reconstruction_metadata.get(RECONSTRUCTION_KEY)
        texts = json.loads(saved) if isinstance(saved, str) else {}
        return texts if isinstance(texts, dict) else {}
    except Exception:  # a private API: whatever it does, the cheap way
        return _UNKNOWN


class LoadPredictions:
    """The prediction texts of one load of the code location, one per cluster."""

    def __init__(self, budget_s: float = LOAD_BUDGET_S) -> None:
        self.rebuilt = _rebuilt()
        self.instance: dg.DagsterInstance | None = None
        self.tried = False
        self.texts: dict[str, str] = {}
        self.budget_s = budget_s
        self.spent_s = 0.0
        self.now = datetime.datetime.now(datetime.UTC)

    def _open(self) -> dg.DagsterInstance | None:
        """DAGSTER_HOME's instance, opened on first use (None: none usable)."""
        if self.instance is None and not self.tried:
            self.tried = True
            try:
                self.instance = instance()
            except BmUpgradeError:
                pass  # no usable DAGSTER_HOME: the timeouts' estimate
            except Exception as exc:  # the load must go on whatever the instance does
                log.warning("past runs not read for the job descriptions: %r", exc)
        return self.instance

    def close(self) -> None:
        """The load is over: let go of the instance, and hand the texts to the processes that
        will rebuild the code location (its reconstruction metadata)."""
        if self.instance is not None:
            self.instance.dispose()
            self.instance = None
        if self.rebuilt is None and self.texts:
            try:
                _load_context().add_to_pending_reconstruction_metadata(
                    RECONSTRUCTION_KEY, json.dumps(self.texts, sort_keys=True)
                )
            except Exception as exc:  # a private API: rebuilt jobs then say nothing of it
                log.warning("job descriptions not handed to run workers: %r", exc)

    def describe(self, inventory: Inventory) -> str:
        """The prediction's paragraph for the cluster's job description ('' when rebuilding
        without one)."""
        if self.rebuilt is not None and self.rebuilt is not _UNKNOWN:
            return self.rebuilt.get(inventory.cluster, "")
        options = PlanOptions.from_inventory(inventory)
        inst = self._open() if self.rebuilt is None else None
        started = time.monotonic()  # the budget is for reading past runs, not for opening
        if inst is not None and self.spent_s < self.budget_s:
            try:
                prediction = predict(inst, inventory, options)
            except Exception as exc:  # a storage error must not take the job out
                log.warning("past runs of %s not read: %r", inventory.cluster, exc)
                prediction = self._timeouts(inventory, options, "the instance could not be read")
        elif inst is not None:
            why = (
                "past runs not read: the code location's load had spent its "
                f"{self.budget_s:.0f} s for them on other clusters"
            )
            prediction = self._timeouts(inventory, options, why)
        else:
            prediction = self._timeouts(inventory, options, "no Dagster instance at load")
        self.spent_s += time.monotonic() - started
        phases = ", ".join(f"{k} {minutes(v)}" for k, v in prediction.phases.items() if v)
        text = (
            f"**Expected duration: {minutes(prediction.total_s)}** ({phases}), from "
            f"{prediction.basis}; {window_fit(prediction, inventory.window, self.now)}. "
            "Computed when the code location loaded (reload it to refresh); "
            "`bm-upgrade plan` and each run's preflight step compute it afresh."
        )
        self.texts[inventory.cluster] = text
        return text

    @staticmethod
    def _timeouts(inventory: Inventory, options: PlanOptions, why: str) -> Prediction:
        plan = make_plan(inventory, options=shape_options(options))
        return from_timeouts(work_of(plan, inventory), why)
