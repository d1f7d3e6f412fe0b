"""The inventory's java_home (cluster default, per-node override), the script commands built
from it, and how the tool reads a kit script's refusal to run without JAVA_HOME: against the
sandbox's real kit scripts run on this machine through ``sh`` (no SSH)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bm_upgrade.errors import InventoryError, StepFailed
from bm_upgrade.inventory import Inventory, Orchestrator, Server, json_schema, parse_inventory
from bm_upgrade.inventory.scripts import (
    JAVA_HOME_REFUSAL,
    foreign_kit_env,
    java_export,
    java_home_problem,
    refused_for_java,
    script_argv,
    script_env,
)
from bm_upgrade.probes import probe_server_ssh
from bm_upgrade.procedure.java_check import java_command, parse_answer, raise_on_missing
from bm_upgrade.procedure.kit_look import kit_root_guard, not_a_kit
from bm_upgrade.remote.quoting import shell
from bm_upgrade.sandbox import kits
from tests.unit.inventories import minimal, server_model, two_regions_wan


def load(data: dict[str, Any]) -> Inventory:
    return parse_inventory(data, "inv.yaml")


def issues_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InventoryError) as caught:
        load(data)
    return [(i.path, i.message) for i in caught.value.issues]


# -- the inventory field ------------------------------------------------------------------
def test_unset_everywhere_means_the_hosts_own_environment() -> None:
    inv = load(two_regions_wan())
    assert inv.java_home is None
    assert {s.java_home for _, _, s in inv.servers()} == {None}
    assert {o.java_home for _, o in inv.orchestrators()} == {None}


def test_the_cluster_default_reaches_every_server_and_orchestrator_a_node_may_override() -> None:
    data = two_regions_wan()
    data["java_home"] = "/opt/java/jdk8"
    data["regions"][1]["stripes"][0]["servers"][1]["java_home"] = "/usr/lib/jvm/java-8"
    data["regions"][0]["orchestrators"][1]["java_home"] = "/opt/jre"
    inv = load(data)
    servers = {s.name: s.java_home for _, _, s in inv.servers()}
    assert servers.pop("west-s1-2") == "/usr/lib/jvm/java-8"
    assert set(servers.values()) == {"/opt/java/jdk8"}
    assert {o.name: o.java_home for _, o in inv.orchestrators()} == {
        "east-wan-m": "/opt/java/jdk8",
        "east-wan-s": "/opt/jre",
        "west-wan-m": "/opt/java/jdk8",
        "west-wan-s": "/opt/java/jdk8",
    }
    assert inv.java_home == "/opt/java/jdk8"


def test_java_home_must_be_an_absolute_normalised_path() -> None:
    assert issues_of(minimal(java_home="jdk8")) == [
        (
            "java_home",
            "'jdk8' is not an absolute path; write it from the root, such as "
            "/opt/terracotta/bigmemory-max (a remote path has no ~ or working folder)",
        )
    ]
    data = minimal()
    data["regions"][0]["stripes"][0]["servers"][0]["java_home"] = "/opt/java/../jdk"
    path, message = issues_of(data)[0]
    assert path == "regions[0].stripes[0].servers[0].java_home"
    assert "'/opt/java/../jdk' is not normalised" in message


def test_java_home_inside_the_kit_root_is_refused() -> None:
    """A swap moves the whole kit root aside: a Java inside it would go with the old kit."""
    data = minimal(java_home="/opt/terracotta/bigmemory-max/jre")
    issues = issues_of(data)
    assert [path for path, _ in issues] == [
        "regions[0].stripes[0].servers[0].java_home",
        "regions[0].stripes[0].servers[1].java_home",
    ]
    assert "keep the java_home outside every install_dir" in issues[0][1]


def test_the_schema_documents_both_levels() -> None:
    schema = json_schema()
    assert "java_home" in schema["properties"]
    assert "java_home" in schema["$defs"]["Server"]["properties"]
    assert "java_home" in schema["$defs"]["Orchestrator"]["properties"]


# -- commands -----------------------------------------------------------------------------
def test_script_commands_carry_the_nodes_java_home_quoted() -> None:
    bare = server_model()
    assert script_env(bare) == []
    assert script_argv(bare, "version.sh") == ["/opt/tc/bigmemory-max/server/bin/version.sh"]
    assert java_export(bare) == ""
    odd = server_model(java_home="/opt/my java/$(x)")
    argv = script_argv(odd, "stop-tc-server.sh", "-f", odd.tc_config, "-n", odd.name)
    assert argv == [
        "env",
        "JAVA_HOME=/opt/my java/$(x)",
        "/opt/tc/bigmemory-max/server/bin/stop-tc-server.sh",
        "-f",
        "/etc/tc/tc-config.xml",
        "-n",
        "tsa-a1",
    ]
    assert shell(argv).startswith("env 'JAVA_HOME=/opt/my java/$(x)' ")
    assert java_export(odd) == "JAVA_HOME='/opt/my java/$(x)'; export JAVA_HOME; "
    assert kit_root_guard(odd).startswith(
        "bm_kit=$(env 'JAVA_HOME=/opt/my java/$(x)' /opt/tc/bigmemory-max/server/bin/version.sh"
    )
    orch = Orchestrator(
        name="wan-m",
        host="10.0.0.9",
        install_dir="/opt/tc/wan",
        wan_xml="/etc/tc/wan.xml",
        role="master",
        java_home="/opt/jre",
    )
    assert script_argv(orch, "start-wan.sh", "-f", orch.wan_xml)[:3] == [
        "env",
        "JAVA_HOME=/opt/jre",
        "/opt/tc/wan/server/bin/start-wan.sh",
    ]


def sh(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``command`` through sh here, with a login's environment (no JAVA_HOME) plus ``env``."""
    base = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    return subprocess.run(
        ["sh", "-c", command],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=30,
        check=False,
    )


def test_an_operators_command_sees_the_java_home(tmp_path: Path) -> None:
    node = server_model(java_home=str(tmp_path))
    done = sh(java_export(node) + 'sh -c \'printf "%s" "$JAVA_HOME"\'')
    assert done.stdout == str(tmp_path)


# -- against the sandbox's real kit scripts -----------------------------------------------
@pytest.fixture(scope="module")
def kit_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("java-kit")
    root = base / "bigmemory-max"
    kits.unpack_kit(kits.build_kit("4.2.1", base / "kits"), root)
    return root


@pytest.fixture
def java_dir(tmp_path: Path) -> Path:
    java = tmp_path / "jdk"
    (java / "bin").mkdir(parents=True)
    return java


@pytest.fixture
def setenv(kit_root: Path) -> Iterator[Path]:
    path = kit_root / "server" / "bin" / "setenv.sh"
    yield path
    path.unlink(missing_ok=True)


def node_at(root: Path, **extra: Any) -> Server:
    fields: dict[str, Any] = {
        "name": "tsa-a1",
        "host": "localhost",
        "install_dir": str(root),
        "tc_config": str(root.parent / "tc-config.xml"),
        "data_dir": str(root.parent / "data"),
        "management_port": 1,
    }
    return Server(**{**fields, **extra})


@dataclass(frozen=True)
class _Done:
    exit_code: int
    stdout: str
    stderr: str


class LocalHost:
    """Runs the tool's commands here through sh, with a login's environment."""

    host = "localhost"

    def run(
        self, command: str | Sequence[str], timeout: float | None = None, check: bool = True
    ) -> _Done:
        line = command if isinstance(command, str) else shell(command)
        done = sh(line)
        return _Done(done.returncode, done.stdout, done.stderr)


def test_the_tool_reads_a_refusal_as_a_missing_java_home(kit_root: Path, java_dir: Path) -> None:
    node = node_at(kit_root)
    refused = sh(shell(script_argv(node, "server-stat.sh", "-s", "localhost:1")))
    assert refused.returncode == 2
    script = kit_root / "server" / "bin" / "server-stat.sh"
    assert refused.stdout == f"{script}: {JAVA_HOME_REFUSAL}\n"
    assert refused_for_java(refused.stdout)

    status = probe_server_ssh(LocalHost(), node)
    assert not status.reachable
    assert status.error == java_home_problem(node)
    assert status.error.startswith(
        f"the kit scripts of tsa-a1 on localhost exit 2 ({JAVA_HOME_REFUSAL}: neither the "
        "login nor the kit's setenv.sh sets it to a directory); set java_home in the "
        "inventory (for the cluster, or on tsa-a1)"
    )
    assert f"JAVA_HOME in {kit_root}/server/bin/setenv.sh, then rerun" in status.error

    guarded = sh(kit_root_guard(node) + "echo stopped")
    printed = guarded.stdout.splitlines()
    assert printed[0] == "@@bm-upgrade not-a-kit" and "stopped" not in printed
    failure = not_a_kit(node, printed[1:], "tsa-a1 was not stopped")
    assert isinstance(failure, StepFailed)
    assert str(failure) == f"tsa-a1 was not stopped: {java_home_problem(node)}"

    with_java = node_at(kit_root, java_home=str(java_dir))
    ran = sh(shell(script_argv(with_java, "version.sh")))
    assert (ran.returncode, ran.stdout[:28]) == (0, "Terracotta Enterprise 4.2.1,")


def test_a_staged_kit_runs_with_the_java_of_the_nodes_setenv(
    kit_root: Path, java_dir: Path, setenv: Path, tmp_path: Path
) -> None:
    """The staged kit has no setenv.sh of the operator's yet: its version.sh borrows the
    node's (set without export, as an operator may write it)."""
    staged = tmp_path / "work" / "bigmemory-max-4.2.1"
    kits.unpack_kit(kits.build_kit("4.2.1", tmp_path / "kits"), staged)
    version_sh = shell([str(staged / "server" / "bin" / "version.sh")])
    node = node_at(kit_root)
    assert sh(foreign_kit_env(node) + version_sh).returncode == 2
    setenv.write_text(f"JAVA_HOME={java_dir}\n")
    ran = sh(foreign_kit_env(node) + version_sh)
    assert (ran.returncode, ran.stdout[:28]) == (0, "Terracotta Enterprise 4.2.1,")
    login = sh(
        foreign_kit_env(node_at(tmp_path / "none")) + version_sh, {"JAVA_HOME": str(java_dir)}
    )
    assert login.returncode == 0


def test_the_preflight_check_does_what_the_scripts_do(
    kit_root: Path, java_dir: Path, setenv: Path, tmp_path: Path
) -> None:
    bare = node_at(kit_root)
    named = node_at(kit_root, name="tsa-a2", java_home=str(java_dir))
    wrong = node_at(kit_root, name="tsa-a3", java_home=str(tmp_path / "gone"))
    no_kit = node_at(tmp_path / "swapped-away", name="tsa-a4")
    nodes: list[Server | Orchestrator] = [bare, named, wrong, no_kit]
    seen = parse_answer(nodes, sh(java_command(nodes)).stdout)
    assert [(s.outcome, s.value) for s in seen] == [
        ("missing", ""),
        ("ok", str(java_dir)),
        ("missing", str(tmp_path / "gone")),
        ("no-kit", ""),
    ]
    with pytest.raises(StepFailed) as refused:
        raise_on_missing(seen)
    assert str(refused.value) == (
        f"the kit scripts would exit 2 ({JAVA_HOME_REFUSAL}) on host localhost: tsa-a1 (no "
        f"JAVA_HOME from the inventory, the login or setenv.sh), tsa-a3 ({tmp_path}/gone is "
        "not a directory); nothing was touched; set java_home in the inventory (for the "
        "cluster, or on tsa-a1, tsa-a3) to the host's Java folder, or set JAVA_HOME in "
        f"{kit_root}/server/bin/setenv.sh, then rerun"
    )
    # setenv.sh is sourced after the environment, so it wins, as in the scripts.
    setenv.write_text(f'JAVA_HOME="{java_dir}"\n')
    seen = parse_answer(nodes, sh(java_command(nodes)).stdout)
    assert [s.outcome for s in seen] == ["ok", "ok", "ok", "no-kit"]
    raise_on_missing(seen)
