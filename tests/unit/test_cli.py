"""The `bm-upgrade` command as a user runs it: exit codes and messages, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.unit.inventories import minimal, server

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "inventory.yaml"


def bm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bm_upgrade.cli", *args],
                          capture_output=True, text=True, timeout=60, check=False)


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
    for field in ("target_version", "regions[0].stripes[0].servers[0].management_port",
                  "ssh.password"):
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
    stripe1 = [line.split()[1:3] for line in out.splitlines()
               if "[frankfurt/stripe1]" in line]
    assert stripe1[:8] == [
        ["stop", "tsa-f1b"], ["install", "tsa-f1b"], ["start", "tsa-f1b"],
        ["confirm-standby", "tsa-f1b"], ["failover-stop", "tsa-f1a"],
        ["wait-failover", "tsa-f1b"], ["install", "tsa-f1a"], ["start", "tsa-f1a"]]
    assert stripe1[9] == ["failback-stop", "tsa-f1b"]


def test_plan_json_and_to(tmp_path: Path) -> None:
    result = bm("plan", str(EXAMPLE), "--to", "4.2.0", "--json")
    assert result.returncode == 0, result.stderr
    steps = json.loads(result.stdout)
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
