"""The Dagster instance bm_upgrade runs against (``DAGSTER_HOME``): its settings file, its
storage created once, and the checks that turn an unusable ``DAGSTER_HOME`` into one message."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from bm_upgrade.defs.storage import check_storage
from bm_upgrade.errors import UserError

INSTANCE_YAML = """\
# Dagster instance settings for bm_upgrade (copied into DAGSTER_HOME by `make setup`, the
# demo and the tests when DAGSTER_HOME has no dagster.yaml of its own).
telemetry:
  enabled: false
python_logs:
  # The procedure's own progress lines (waits, kit fetch) show in each step's log.
  managed_python_loggers: [bm_upgrade]
  python_log_level: INFO
# One run per cluster: runs launched from the UI, a schedule or a sensor wait in the queue
# (dagster-daemon starts them) while another run of the same `cluster` tag is in progress;
# runs of other clusters start at once. (The queued run coordinator is Dagster's default.)
concurrency:
  runs:
    tag_concurrency_limits:
      - key: cluster
        value: {applyLimitPerUniqueValue: true}
        limit: 1
# A run whose worker process died (killed, its host rebooted) is marked failed by
# dagster-daemon, so the cluster's queue moves on: bm_upgrade's launcher tells from the
# worker's pid whether it still runs on this host (Dagster's default launcher cannot).
run_launcher:
  module: bm_upgrade.defs.launcher
  class: LocalRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: 15
  start_timeout_seconds: 300
  cancel_timeout_seconds: 300
"""
"""deploy/dagster.yaml, kept equal to it by a test."""


def ensure_instance_yaml(home: Path) -> Path:
    """Write bm_upgrade's dagster.yaml into ``home`` unless it has one; returns its path."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    if not path.exists():
        path.write_text(INSTANCE_YAML, encoding="utf-8")
    return path


def prepare_instance(home: Path) -> Path:
    """Write bm_upgrade's dagster.yaml into ``home`` unless it has one, then create (or check)
    the instance's run, event log and schedule storage once; returns the dagster.yaml's path.

    Call it before dagster-webserver and dagster-daemon start: each creates and stamps the
    databases of an empty instance (SQLite files, or PostgreSQL's tables) on its own, and two
    doing it at the same moment leave alembic with two heads, after which the code location
    does not load. An instance on PostgreSQL is checked first (:func:`check_storage`).
    """
    path = ensure_instance_yaml(home)
    check_storage(home)
    with _one_creator(home), dg.DagsterInstance.from_config(str(home)) as inst:
        _create_storage(inst)
    return path


PREPARE_LOCK = ".bm-upgrade-instance.lock"
"""A file in DAGSTER_HOME locked while a process creates (or checks) the instance's storage."""


@contextmanager
def _one_creator(home: Path) -> Iterator[None]:
    """One process at a time opens the instance for the first time: two `bm-upgrade run`,
    or a run and a server, starting at once on an empty DAGSTER_HOME would otherwise both
    create and stamp its SQLite databases (alembic then finds two heads)."""
    with open(home / PREPARE_LOCK, "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _create_storage(inst: dg.DagsterInstance) -> None:
    """Each storage creates and stamps its databases when first used: use each once."""
    inst.get_runs(limit=1)
    inst.event_log_storage.get_asset_records()
    inst.all_instigator_state()


def instance() -> dg.DagsterInstance:
    """The Dagster instance of ``DAGSTER_HOME`` (where the UI reads its run history).

    Raises:
        UserError: DAGSTER_HOME is unset, relative, not a folder, or its dagster.yaml is bad.
    """
    # Checked here rather than by catching Dagster's own errors: the one for an unset
    # DAGSTER_HOME is not part of dagster's public API.
    home = os.environ.get("DAGSTER_HOME", "")
    if not home:
        raise UserError(
            "DAGSTER_HOME is not set: set it to the absolute path of your Dagster "
            "instance's folder (the one `dagster-webserver` uses), e.g. "
            "`export DAGSTER_HOME=$PWD/.dagster_home`"
        )
    if not Path(home).expanduser().is_absolute():
        raise UserError(
            f"DAGSTER_HOME={home!r} is a relative path; it must be absolute "
            f"(e.g. `export DAGSTER_HOME=$PWD/{home}`)"
        )
    if not Path(home).expanduser().is_dir():
        raise UserError(
            f"DAGSTER_HOME={home!r} is not an existing folder; create it "
            "(`make setup` writes its dagster.yaml) or point it at your instance"
        )
    check_storage(Path(home).expanduser())
    try:
        with _one_creator(Path(home).expanduser()):
            inst = dg.DagsterInstance.get()
            _create_storage(inst)
        return inst
    except OSError as exc:
        raise UserError(
            f"DAGSTER_HOME {home} cannot be used ({exc}); check the folder's "
            "permissions or point DAGSTER_HOME at another folder"
        ) from exc
    except dg.DagsterInvariantViolationError as exc:
        raise UserError(
            f"DAGSTER_HOME {home} cannot be used: {exc}; fix its dagster.yaml "
            "or point DAGSTER_HOME at another folder"
        ) from exc
