"""Reading an asset check's latest evaluation back from an instance, as the UI's checks tab
shows it."""

from __future__ import annotations

import dagster as dg


def latest_check(
    instance: dg.DagsterInstance, key: dg.AssetKey, name: str
) -> dg.AssetCheckEvaluation | None:
    """The latest evaluation of check ``name`` of asset ``key`` (None: never evaluated)."""
    record = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(key, name))
    return record.evaluation if record is not None else None
