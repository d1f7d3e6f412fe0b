"""Bad run config at scale (hypothesis): generated preflight configs, valid and broken, go
through Dagster's own config validation of the cluster's job, then bm_upgrade's check
(`checked_config`, what `bm-upgrade run` does before a run exists) and the run's settings
(what preflight makes of them). Each is taken by all three, or refused by Dagster or by the
check with a message naming the key; bm_upgrade never lets through what Dagster refuses, and
nothing raises anything else."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bm_upgrade.defs.config import RunSettings, UpgradeConfig, checked_config
from bm_upgrade.defs.jobs import build_upgrade_job
from bm_upgrade.errors import UserError
from bm_upgrade.inventory import Inventory, load_inventory
from tests.unit.inventories import minimal

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TIMEOUT_KEYS = ("stop_s", "start_s", "sync_s", "failover_s", "client_s", "orchestrator_s")
ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(codec="utf-8"), max_size=20),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(TIMEOUT_KEYS), st.integers(), max_size=2),
)
ISO_TIMES = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["2030-01-01T02:00:00+01:00", "tomorrow", "", "2030-13-01T00:00", "02:00"]),
)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "target_version": st.sampled_from(["4.2.0", "4.2.1", "4.2.9", "4.3.0", "banana"]),
    "dry_run": st.booleans(),
    "failback": st.booleans(),
    "delete_dirty_backups": st.booleans(),
    "keep_previous_kit": st.booleans(),
    "client_batch_size": st.integers(-3, 100),
    "allow_downtime": st.booleans(),
    "accept_data_loss": st.booleans(),
    "continue_on_failure": st.booleans(),
    "backup_before_upgrade": st.none() | st.booleans(),
    "timeouts": st.dictionaries(
        st.sampled_from([*TIMEOUT_KEYS, "sync", "stop"]),
        st.floats(-10, 1e7) | st.integers(-10, 10**7),
        max_size=4,
    ),
    "window_end": st.none() | ISO_TIMES,
    "respect_window": st.booleans(),
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Inventory, dg.JobDefinition]]:
    with tempfile.TemporaryDirectory(prefix="bm-upgrade-run-config-") as name:
        path = Path(name) / "inventory.yaml"
        path.write_text(yaml.safe_dump(minimal()), encoding="utf-8")
        inventory = load_inventory(path)
        yield inventory, build_upgrade_job(inventory, str(path))


@st.composite
def configs(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    """A preflight config: some keys with values of their kind (in range or not), some with
    a value of any kind, maybe unknown keys; and the keys given."""
    config: dict[str, Any] = {"target_version": "4.2.1"}
    for key, values in VALUES.items():
        given = draw(st.integers(0, 5))  # 0-2: left out, 3-4: a value of its kind, 5: any
        if given >= 3:
            config[key] = draw(values if given < 5 else ANY)
    if draw(st.integers(0, 4)) == 0:
        config[draw(st.sampled_from(["parallel_stripes", "sync_timeout_s", "Dry_Run", "x"]))] = (
            draw(ANY)
        )
    if draw(st.integers(0, 6)) == 0:
        del config["target_version"]
    return config, set(config)


def _named(message: str, keys: set[str], config: dict[str, Any]) -> bool:
    timeouts = config.get("timeouts")
    inner = set(timeouts) if isinstance(timeouts, dict) else set()
    return any(key in message for key in keys | inner | set(UpgradeConfig.model_fields))


def _strictly_of_its_kind(key: str, value: Any) -> bool:
    """``value`` is of the very kind ``key`` declares, or of no kind pydantic would convert
    to it (a list, a mapping, None for a required key)."""
    if key == "timeouts":
        return not isinstance(value, dict) or all(
            _strictly_of_its_kind("sync_s", inner) for inner in value.values()
        )
    field = UpgradeConfig.model_fields.get(key)
    if field is None or isinstance(value, list | dict):
        return True
    kind = {
        "target_version": str,
        "window_end": str,
        "client_batch_size": int,
        "sync_s": float,
    }.get(key, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind) or (value is None and key in NULLABLE)


NULLABLE = {"window_end", "backup_before_upgrade"}


def _given(**config: Any) -> tuple[dict[str, Any], set[str]]:
    return config, set(config)


@SETTINGS
@given(generated=configs())
@example(generated=_given(target_version="4.2.1", window_end="tomorrow"))
@example(generated=_given(target_version="4.2.1", timeouts={"sync_s": 0}))
@example(generated=_given(target_version="4.2.1", timeouts={"sync": 3.0}))
@example(generated=_given(target_version="4.2.1", client_batch_size=True))
@example(generated=_given(target_version="4.2.1", parallel_stripes=2))
@example(generated=_given(dry_run=True))
def test_a_run_config_is_taken_or_refused_naming_its_key(
    cluster: tuple[Inventory, dg.JobDefinition], generated: tuple[dict[str, Any], set[str]]
) -> None:
    inventory, job = cluster
    config, keys = generated
    try:
        processed = dg.validate_run_config(job, {"ops": {"preflight": {"config": config}}})
    except dg.DagsterInvalidConfigError as exc:
        assert _named(str(exc), keys, config), str(exc)
        # What Dagster refuses, `bm-upgrade run` refuses too, before any run exists; but
        # pydantic's lax reading (1.0 for an int, 1 for a bool, "3" for a float) takes what
        # Dagster's does not: `run` passes only flags and --to, so none of those reach it.
        if all(_strictly_of_its_kind(key, value) for key, value in config.items()):
            with pytest.raises(UserError) as info:
                checked_config(config, fix="fix the run's overrides")
            assert str(info.value).startswith("run config: ")
        return
    taken_by_dagster = processed["ops"]["preflight"]["config"]
    try:
        taken = checked_config(taken_by_dagster, fix="fix the run's overrides")
    except UserError as exc:
        message = str(exc)
        assert message.startswith("run config: ") and "\n" not in message, message
        assert _named(message.split(" (its keys:", maxsplit=1)[0], keys, config), message
        return
    settings_ = RunSettings.from_config(taken, inventory)
    assert settings_.options.target_version == config["target_version"]
    assert settings_.dry_run == config.get("dry_run", False)
    if config.get("window_end"):
        assert settings_.window_end is not None and settings_.window_end.tzinfo is not None
