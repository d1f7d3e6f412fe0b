"""JAVA_HOME, as strict as the product: every kit script sources server/bin/setenv.sh when
present, then exits 2 printing ``<script>: the JAVA_HOME environment variable is not defined
correctly`` unless JAVA_HOME names a directory; and the topology's ``java_home`` modes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bm_upgrade.sandbox import cluster, kits
from bm_upgrade.sandbox.java import java_home_of
from bm_upgrade.sandbox.topology import parse_topology
from bm_upgrade.sandbox.topology_model import TopologyError

from .conftest import new_folder, ssh_run, start_sandbox

REFUSAL = "the JAVA_HOME environment variable is not defined correctly"
SCRIPTS: tuple[tuple[str, list[str]], ...] = (
    ("start-tc-server.sh", ["-f", "/nonexistent/tc-config.xml", "-n", "x"]),
    ("stop-tc-server.sh", ["-f", "/nonexistent/tc-config.xml", "-n", "x"]),
    ("server-stat.sh", ["-s", "127.0.0.1:1"]),
    ("version.sh", []),
    ("start-wan.sh", ["-f", "/nonexistent/wan.xml"]),
    ("stop-wan.sh", ["-f", "/nonexistent/wan.xml"]),
)


@pytest.fixture(scope="module")
def kit_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("java-kit")
    root = base / "bigmemory-max"
    kits.unpack_kit(kits.build_kit("4.2.1", base / "kits"), root)
    return root


def run(script: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """The script as an SSH login runs it: a minimal PATH, and only the given variables."""
    return subprocess.run(
        [str(script), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": "/usr/bin:/bin", **env},
    )


@pytest.mark.parametrize(("name", "args"), SCRIPTS, ids=[name for name, _ in SCRIPTS])
def test_every_script_refuses_without_a_java_home_directory(
    kit_root: Path, tmp_path: Path, name: str, args: list[str]
) -> None:
    script = kit_root / "server" / "bin" / name
    for env in ({}, {"JAVA_HOME": ""}, {"JAVA_HOME": str(tmp_path / "no-such-jdk")}):
        done = run(script, args, **env)
        assert (done.returncode, done.stdout, done.stderr) == (2, f"{script}: {REFUSAL}\n", "")
    # With one, the script gets past the check (and fails, if at all, on its arguments).
    done = run(script, args, JAVA_HOME=str(tmp_path))
    assert REFUSAL not in done.stdout + done.stderr


def test_scripts_work_with_a_java_home(kit_root: Path, tmp_path: Path) -> None:
    version = run(kit_root / "server" / "bin" / "version.sh", [], JAVA_HOME=str(tmp_path))
    assert version.returncode == 0
    assert version.stdout.startswith("Terracotta Enterprise 4.2.1, as of ")
    stat = run(kit_root / "server" / "bin" / "server-stat.sh", ["-s", "127.0.0.1:1"], JAVA_HOME="/")
    assert stat.returncode == 0
    assert "127.0.0.1.health: unknown" in stat.stdout


def test_setenv_sh_is_sourced_first_and_wins(kit_root: Path, tmp_path: Path) -> None:
    """As in the product: setenv.sh (no export needed) names the Java, and it is sourced
    after the environment, so a wrong one there wins over a right one in the login."""
    setenv = kit_root / "server" / "bin" / "setenv.sh"
    version_sh = kit_root / "server" / "bin" / "version.sh"
    try:
        setenv.write_text(f'JAVA_HOME="{tmp_path}"\n[ -d "$TC_INSTALL_DIR/server/lib" ]\n')
        assert run(version_sh, []).returncode == 0
        setenv.write_text(f'JAVA_HOME="{tmp_path / "gone"}"\n')
        refused = run(version_sh, [], JAVA_HOME=str(tmp_path))
        assert (refused.returncode, refused.stdout) == (2, f"{version_sh}: {REFUSAL}\n")
    finally:
        setenv.unlink(missing_ok=True)


def test_the_topology_names_where_java_is_named() -> None:
    base: dict[str, Any] = {
        "version": "4.2.0",
        "regions": [{"name": "east", "stripes": 1, "mirrors": 0, "clients": 0}],
    }
    assert parse_topology(base).java_home == "inventory"
    for mode in ("inventory", "setenv", "login", "none"):
        assert parse_topology({**base, "java_home": mode}).java_home == mode
    with pytest.raises(TopologyError) as caught:
        parse_topology({**base, "java_home": "jdk8"}, "t.yaml")
    assert caught.value.issues == [
        "java_home: 'jdk8' must be one of inventory, setenv, login, none"
    ]


# -- the four modes, each on a sandbox of its own (one stripe of two servers) --------------
MODES = ("inventory", "setenv", "login", "none")


@pytest.mark.parametrize("mode", MODES)
def test_up_works_in_every_mode_and_names_java_only_where_asked(
    sandbox_tmp: Path, mode: str
) -> None:
    topology = {
        "version": "4.2.0",
        "kits": ["4.2.0"],
        "java_home": mode,
        "regions": [{"name": "east", "stripes": 1, "mirrors": 1, "clients": 0}],
        "timing": {"start_s": 0.1, "election_s": 0.3, "sync_s": 0.2},
    }
    folder = new_folder(sandbox_tmp, f"java-{mode}")
    path = folder / "topology.yaml"
    path.write_text(yaml.safe_dump(topology))
    directory = folder / "sb"
    try:
        sb = start_sandbox(directory, str(path))
        inventory = yaml.safe_load(sb.inventory.read_text())
        servers = inventory["regions"][0]["stripes"][0]["servers"]
        states = {
            (cluster.server_stat(s["host"], s["management_port"]) or {}).get("state")
            for s in servers
        }
        assert states == {"ACTIVE-COORDINATOR", "PASSIVE-STANDBY"}
        for server in servers:
            java = java_home_of(directory / "hosts" / server["host"])
            assert (java / "bin" / "java").is_file()
            assert server.get("java_home") == (str(java) if mode == "inventory" else None)
            setenv = Path(server["install_dir"]) / "server" / "bin" / "setenv.sh"
            assert setenv.exists() == (mode == "setenv")
            ssh = sb.connect(server["host"])
            try:
                _, login_java, _ = ssh_run(ssh, 'printf %s "$JAVA_HOME"')
                code, out, _ = ssh_run(ssh, f"{server['install_dir']}/server/bin/version.sh")
            finally:
                ssh.close()
            assert login_java == (str(java) if mode == "login" else "")
            if mode in ("setenv", "login"):
                assert (code, out[:28]) == (0, "Terracotta Enterprise 4.2.0,")
            else:
                script = f"{server['install_dir']}/server/bin/version.sh"
                assert (code, out) == (2, f"{script}: {REFUSAL}\n")
    finally:
        cluster.down(directory)
