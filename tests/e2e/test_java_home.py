"""JAVA_HOME end to end, on a sandbox whose logins have none and whose inventory names none
(topology ``java_home: none``): preflight refuses naming the hosts, nodes and the fix, having
touched nothing; with ``java_home`` in the inventory a full upgrade passes; with JAVA_HOME in
each kit root's setenv.sh instead, a rollback passes and carries that setenv.sh over.

The tests share one sandbox and run in file order."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bm_upgrade.defs.launch import run_upgrade
from bm_upgrade.inventory.scripts import JAVA_HOME_REFUSAL
from bm_upgrade.sandbox import cluster
from bm_upgrade.sandbox.java import java_home_of
from tests.e2e.conftest import E2ESandbox, e2e_sandbox
from tests.e2e.journal_check import changing_commands, stops, violations

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dagster_home")]

TOPOLOGY = Path(__file__).with_name("topologies") / "nojava.yaml"


@pytest.fixture(scope="module")
def sandbox(dagster_home: Path) -> Iterator[E2ESandbox]:
    with e2e_sandbox(str(TOPOLOGY)) as sb:
        yield sb


def servers(sb: E2ESandbox) -> list[dict[str, Any]]:
    data = yaml.safe_load(sb.inventory_path.read_text())
    found: list[dict[str, Any]] = data["regions"][0]["stripes"][0]["servers"]
    return found


def java_of(sb: E2ESandbox, host: str) -> Path:
    return java_home_of(sb.directory / "hosts" / host)


def rewrite_inventory(sb: E2ESandbox, *, named: bool) -> None:
    """Name each server's Java in the inventory (per node: every sandbox host has its own
    folder), or name none."""
    data = yaml.safe_load(sb.inventory_path.read_text())
    for server in data["regions"][0]["stripes"][0]["servers"]:
        server.pop("java_home", None)
        if named:
            server["java_home"] = str(java_of(sb, server["host"]))
    sb.inventory_path.write_text(yaml.safe_dump(data, sort_keys=False))


def installed(sb: E2ESandbox) -> set[str]:
    """The version each server's kit root holds (its tc-version.properties)."""
    found = set()
    for server in servers(sb):
        props = Path(server["install_dir"]) / "server" / "lib" / "tc-version.properties"
        found.add(props.read_text().splitlines()[0].removeprefix("version="))
    return found


def states(sb: E2ESandbox) -> list[str]:
    return sorted(
        (cluster.server_stat(s["host"], s["management_port"]) or {}).get("state", "down")
        for s in servers(sb)
    )


def test_preflight_refuses_naming_each_host_and_touches_nothing(sandbox: E2ESandbox) -> None:
    assert all("java_home" not in s for s in servers(sandbox))
    since = time.time()
    outcome = run_upgrade(sandbox.inventory_path)
    assert not outcome.success
    failure = outcome.failure or ""
    assert f"the kit scripts would exit 2 ({JAVA_HOME_REFUSAL})" in failure, failure
    for server in servers(sandbox):
        assert f"on host {server['host']}: {server['name']} (no JAVA_HOME" in failure
    assert "nothing was touched" in failure
    assert "set java_home in the inventory" in failure and "setenv.sh" in failure
    assert stops(sandbox.journal_path, since) == []
    assert changing_commands(sandbox.journal_path, since) == []
    assert sandbox.verify()["lost"] == 0


def test_with_java_home_in_the_inventory_a_full_upgrade_passes(sandbox: E2ESandbox) -> None:
    rewrite_inventory(sandbox, named=True)
    since = time.time()
    outcome = run_upgrade(sandbox.inventory_path)
    assert outcome.success, outcome.failure
    assert installed(sandbox) == {"4.2.1"}
    assert states(sandbox) == ["ACTIVE-COORDINATOR", "PASSIVE-STANDBY"]
    assert (
        violations(sandbox.journal_path, sandbox.inventory, "4.2.1", since=since, until=time.time())
        == []
    )
    assert sandbox.verify()["lost"] == 0
    starts = changing_commands(sandbox.journal_path, since, words=("start-tc-server.sh",))
    javas = [f"env JAVA_HOME={java_of(sandbox, s['host'])} " for s in servers(sandbox)]
    # Every detached start (mirror, old active, failback) names its own host's Java.
    assert starts and all(sum(j in command for j in javas) == 1 for command in starts), starts
    assert all(any(j in command for command in starts) for j in javas)


def test_with_java_home_in_setenv_sh_a_rollback_passes_and_carries_it(
    sandbox: E2ESandbox,
) -> None:
    rewrite_inventory(sandbox, named=False)
    for server in servers(sandbox):
        setenv = Path(server["install_dir"]) / "server" / "bin" / "setenv.sh"
        setenv.write_text(f"JAVA_HOME={java_of(sandbox, server['host'])}\n")
    since = time.time()
    outcome = run_upgrade(sandbox.inventory_path, target="4.2.0")
    assert outcome.success, outcome.failure
    assert installed(sandbox) == {"4.2.0"}
    assert states(sandbox) == ["ACTIVE-COORDINATOR", "PASSIVE-STANDBY"]
    assert (
        violations(sandbox.journal_path, sandbox.inventory, "4.2.0", since=since, until=time.time())
        == []
    )
    assert sandbox.verify()["lost"] == 0
    for server in servers(sandbox):
        setenv = Path(server["install_dir"]) / "server" / "bin" / "setenv.sh"
        assert setenv.read_text() == f"JAVA_HOME={java_of(sandbox, server['host'])}\n"
    assert outcome.report and "carried server/bin/setenv.sh" in outcome.report
