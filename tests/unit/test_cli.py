"""The `bm-upgrade` command as a user runs it: exit codes and messages, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from bm_upgrade.cli import main
from bm_upgrade.defs.instance import ensure_instance_yaml
from tests.unit.inventories import minimal, server

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "inventory.yaml"


def bm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bm_upgrade.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(tmp_path: Path, data: object, name: str = "inv.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_validate_accepts_the_readme_example() -> None:
    result = bm("validate", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "valid inventory of cluster 'prod_eu'" in result.stdout


def test_validate_rejects_with_every_named_field(tmp_path: Path) -> None:
    data = minimal(target_version="4.3.1")
    data["regions"][0]["stripes"][0]["servers"][0]["management_port"] = "x"
    data["ssh"]["password"] = "hunter2"
    path = write(tmp_path, data)
    result = bm("validate", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr
    for field in (
        "target_version",
        "regions[0].stripes[0].servers[0].management_port",
        "ssh.password",
    ):
        assert f"{path}: {field}:" in result.stderr


def test_validate_malformed_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: [unclosed\n")
    result = bm("validate", str(bad))
    assert result.returncode == 2 and "malformed YAML" in result.stderr
    result = bm("validate", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_is_json_schema() -> None:
    result = bm("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "regions" in schema["properties"]


def test_plan_prints_the_procedure_in_order() -> None:
    result = bm("plan", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    order = ["PREFLIGHT", "KIT", "SERVERS", "VERIFY", "CLIENTS", "ORCHESTRATORS", "REPORT"]
    positions = [out.index(f"\n{phase}\n") for phase in order]
    assert positions == sorted(positions)
    # Mirror first, then the active through a controlled failover, then failback.
    stripe1 = [line.split()[1:3] for line in out.splitlines() if "[frankfurt/stripe1]" in line]
    assert stripe1[:8] == [
        ["stop", "tsa-f1b"],
        ["install", "tsa-f1b"],
        ["start", "tsa-f1b"],
        ["confirm-standby", "tsa-f1b"],
        ["failover-stop", "tsa-f1a"],
        ["wait-failover", "tsa-f1b"],
        ["install", "tsa-f1a"],
        ["start", "tsa-f1a"],
    ]
    assert stripe1[9] == ["failback-stop", "tsa-f1b"]


def test_plan_json_and_to(tmp_path: Path) -> None:
    result = bm("plan", str(EXAMPLE), "--to", "4.2.0", "--json")
    assert result.returncode == 0, result.stderr
    planned = json.loads(result.stdout)
    steps = planned["steps"]
    assert {"phase", "node", "action", "parallel_group", "skipped"} <= set(steps[0])
    assert steps[1]["waits_for"].startswith("bigmemory-max-4.2.0.tar.gz")
    orch = [(s["node"], s["action"]) for s in steps if s["phase"] == "orchestrators"]
    assert orch.index(("wan-f-standby", "stop")) < orch.index(("wan-f-master", "stop"))


def test_plan_refusal_is_a_user_error(tmp_path: Path) -> None:
    data = minimal(persistent=False)
    data["regions"][0]["stripes"][0]["servers"] = [server("tsa-x", "10.0.0.9")]
    path = write(tmp_path, data)
    result = bm("plan", str(path))
    assert result.returncode == 2
    assert "east/stripe1" in result.stderr and "--accept-data-loss" in result.stderr
    assert "Traceback" not in result.stderr
    ok = bm("plan", str(path), "--allow-downtime", "--accept-data-loss")
    assert ok.returncode == 0, ok.stderr


def test_plan_unknown_target_is_a_user_error() -> None:
    result = bm("plan", str(EXAMPLE), "--to", "4.2.9")
    assert result.returncode == 2
    assert "no kit of version 4.2.9" in result.stderr


def test_readme_example_is_the_validated_example() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Annotated example inventory", 1)[1].split("```yaml\n", 1)[1]
    block = block.split("```", 1)[0]
    assert block.strip() == EXAMPLE.read_text().strip()


# -- mistakes `run` and `rerun` catch before a run exists (so before any host is contacted) --
LICENSE = REPO / "tests" / "fixtures" / "license-4.2.key"


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    ensure_instance_yaml(home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def runs_in(home: Path) -> list[str]:
    with dg.DagsterInstance.from_config(str(home)) as inst:
        return [run.run_id for run in inst.get_runs()]


def test_run_and_rerun_without_a_usable_dagster_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["rerun", "0123"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: DAGSTER_HOME is not set") and "Traceback" not in err
    monkeypatch.setenv("DAGSTER_HOME", "relative/home")
    path = write(tmp_path, minimal(license_file=str(LICENSE)))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "DAGSTER_HOME='relative/home' is a relative path; it must be absolute" in err
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "missing"))
    assert main(["rerun", "0123"]) == 2
    assert "is not an existing folder" in capsys.readouterr().err


def test_run_to_a_version_without_a_kit_stops_before_any_run(
    tmp_path: Path, dagster_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, minimal(license_file=str(LICENSE)))
    assert main(["run", str(path), "--to", "4.2.999"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: --to 4.2.999: no kit of version 4.2.999 is listed under kits in "
        f"{path} (it lists 4.2.1, 4.2.0); add its url and sha256 there, or choose "
        "one of those\n"
    )
    assert runs_in(dagster_home) == []  # no run, so no host was contacted


def test_run_without_its_license_file_stops_before_any_run(
    tmp_path: Path, dagster_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "terracotta-license.key"
    path = write(tmp_path, minimal(license_file=str(missing)))
    assert main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: license_file {missing} does not exist")
    assert "Traceback" not in err
    missing.mkdir()  # unreadable as a file
    assert main(["run", str(path)]) == 2
    assert f"license_file {missing} cannot be read" in capsys.readouterr().err
    assert runs_in(dagster_home) == []


def test_run_with_a_corrupt_known_hosts_line_stops_before_any_run(
    tmp_path: Path, dagster_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("tsa-1.example.com ssh-ed25519 not-base64!!\n", encoding="utf-8")
    data = minimal(license_file=str(LICENSE))
    data["ssh"]["known_hosts"] = str(known)
    path = write(tmp_path, data)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(known) in err and "line 1" in err and "Traceback" not in err
    assert runs_in(dagster_home) == []  # no run, so no host was contacted
