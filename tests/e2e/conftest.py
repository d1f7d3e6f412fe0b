"""Shared fixtures of the end-to-end tests: a real sandbox cluster per test module.

The sandbox lives in its own ``tempfile.mkdtemp()`` folder (mode 0711), not under pytest's
tmp_path: every pytest session that starts resets ``<tmp>/pytest-of-<user>`` to 0700, which
would lock the sandbox's login user out of a running sandbox when sessions overlap. It is
stopped with ``cluster.down`` (every process by PID) when the module's tests end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bm_upgrade.defs.instance import ensure_instance_yaml
from bm_upgrade.inventory import Inventory, load_inventory
from bm_upgrade.procedure.kit import CACHE_DIR_ENV
from bm_upgrade.remote import HostPool
from bm_upgrade.sandbox import cluster, journal


@dataclass
class E2ESandbox:
    """A running sandbox (``sandbox up``) and what tests read from it."""

    directory: Path
    inventory_path: Path
    info: dict[str, Any]

    @property
    def inventory(self) -> Inventory:
        return load_inventory(self.inventory_path)

    @property
    def journal_path(self) -> Path:
        return self.directory / "journal.jsonl"

    def journal(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Journal events at or after ``since`` (unix seconds)."""
        return [e for e in journal.read(self.journal_path) if float(e["t"]) >= since]

    def verify(self) -> dict[str, Any]:
        return cluster.verify(self.directory)


def start_e2e_sandbox(topology: str = "small") -> E2ESandbox:
    """``sandbox up`` in a fresh folder outside pytest's tmp root (stop it with
    :func:`stop_e2e_sandbox`)."""
    base = Path(tempfile.mkdtemp(prefix="bm-upgrade-e2e-"))
    base.chmod(0o711)
    directory = base / "sb"
    try:
        inventory_path = cluster.up(topology, directory, timeout_s=60)
    except BaseException:
        cluster.down(directory)
        shutil.rmtree(base, ignore_errors=True)
        raise
    info = json.loads((directory / "sandbox.json").read_text(encoding="utf-8"))
    return E2ESandbox(directory, inventory_path, info)


def stop_e2e_sandbox(sandbox: E2ESandbox) -> None:
    cluster.down(sandbox.directory)
    shutil.rmtree(sandbox.directory.parent, ignore_errors=True)


@contextlib.contextmanager
def e2e_sandbox(topology: str = "small") -> Iterator[E2ESandbox]:
    """A sandbox up for the ``with`` block, down (every process by PID) after it."""
    sandbox = start_e2e_sandbox(topology)
    try:
        yield sandbox
    finally:
        stop_e2e_sandbox(sandbox)


@contextlib.contextmanager
def dagster_home_env(prefix: str = "bm-upgrade-dagster-", **extra_env: str) -> Iterator[Path]:
    """A Dagster instance of its own (DAGSTER_HOME) and kit cache (so test sessions running
    side by side never share a half-written kit), plus ``extra_env``; all restored after."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    ensure_instance_yaml(home)
    env = {"DAGSTER_HOME": str(home), CACHE_DIR_ENV: str(home / "kits"), **extra_env}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield home
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def dagster_home() -> Iterator[Path]:
    """A module's own DAGSTER_HOME (see :func:`dagster_home_env`)."""
    with dagster_home_env() as home:
        yield home


@pytest.fixture(scope="module")
def small_sandbox() -> Iterator[E2ESandbox]:
    """The shipped ``small`` topology (one stripe of two servers, one client writing all the
    time, kits 4.2.0 and 4.2.1), up for one test module. Tests of a module share it and run
    in file order, so each may rely on the state the previous one left."""
    with e2e_sandbox("small") as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def pool(small_sandbox: E2ESandbox) -> Iterator[HostPool]:
    """One SSH connection per host of the module's ``small`` sandbox."""
    with HostPool(small_sandbox.inventory.ssh) as hosts:
        yield hosts
