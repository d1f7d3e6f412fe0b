"""Smoke test: the code location loads the way `workspace.yaml` loads it."""

from __future__ import annotations

import importlib

import dagster as dg


def test_code_location_loads() -> None:
    module = importlib.import_module("bm_upgrade.definitions")
    assert isinstance(module.defs, dg.Definitions)
    module.defs.get_repository_def()  # resolves every job, schedule and sensor it holds
