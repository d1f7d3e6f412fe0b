"""The UI's processes for its tests: dagster-webserver and dagster-daemon on loopback, started
as deploy/ui.sh starts them, with a DAGSTER_HOME, a kit cache and a sandbox of their own.

Every process starts in its own session and is stopped by its PID's process group
(tests/dagster/processes.py); the sandbox is stopped by ``cluster.down``, every folder removed.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bm_upgrade.definitions import INVENTORY_DIR_ENV
from bm_upgrade.defs.instance import prepare_instance
from bm_upgrade.defs.notify import UI_URL_ENV
from bm_upgrade.defs.sensors import INTERVAL_ENV
from bm_upgrade.procedure.kit import CACHE_DIR_ENV
from tests.dagster import processes
from tests.dagster.processes import free_port
from tests.e2e.conftest import E2ESandbox, start_e2e_sandbox, stop_e2e_sandbox
from tests.e2e.graphql import GraphQL, answers

LOCATIONS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name
    locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

BEFORE_STOPS = {"preflight", "download", "stage_kit"}
"""The small sandbox's steps before the first that stops a server."""
FROM_FIRST_STOP = {
    "upgrade_mirrors_east_stripe1",
    "failover_east_stripe1",
    "verify_servers",
    "restart_clients_1",
    "report",
}
"""Its steps from the first that stops a server: what a re-execution from there runs."""


@dataclass
class UiServers:
    """A running webserver and daemon, and the sandbox whose inventory they load."""

    url: str
    location: str
    """The code location's name, as the UI shows it."""
    home: Path
    sandbox: E2ESandbox


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``data`` of a GraphQL answer from the webserver at ``url`` (fails on ``errors``)."""
    return GraphQL(url).query(query, variables)


@contextlib.contextmanager
def ui_servers(
    topology: str = "small", env: Mapping[str, str] | None = None
) -> Iterator[UiServers]:
    """A ``topology`` sandbox, its inventory the only one of the code location, and the
    webserver and daemon (sensors every 2 s) for the ``with`` block; ``env`` goes to both."""
    home = Path(tempfile.mkdtemp(prefix="bm-upgrade-ui-"))
    prepare_instance(home)  # before the servers: both would create the storage at once
    started: list[Any] = []
    sandbox = start_e2e_sandbox(topology)
    try:
        inventories = home / "inventories"
        inventories.mkdir()
        shutil.copy(sandbox.inventory_path, inventories / f"{topology}.yaml")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        full_env = {
            INVENTORY_DIR_ENV: str(inventories),
            CACHE_DIR_ENV: str(home / "kits"),
            UI_URL_ENV: url,
            INTERVAL_ENV: "2",
            **(env or {}),
        }
        module = ["-m", "bm_upgrade.definitions"]
        web_args = ["-h", "127.0.0.1", "-p", str(port), *module]
        started.append(
            processes.start("dagster-webserver", web_args, home, home / "webserver.log", full_env)
        )
        started.append(
            processes.start("dagster-daemon", ["run", *module], home, home / "daemon.log", full_env)
        )
        processes.wait_until(
            lambda: answers(f"{url}/server_info"),
            90,
            f"the webserver (log: {home / 'webserver.log'})",
            interval=0.5,
        )
        (entry,) = graphql(url, LOCATIONS)["workspaceOrError"]["locationEntries"]
        assert entry["locationOrLoadError"]["__typename"] != "PythonError", entry
        yield UiServers(url, entry["name"], home, sandbox)
    finally:
        for proc in started:
            processes.stop(proc)
        stop_e2e_sandbox(sandbox)
        shutil.rmtree(home, ignore_errors=True)
