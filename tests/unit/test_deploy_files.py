"""deploy/ read as the tools that consume it would: the YAML files parse, the systemd units
parse and (where systemd-analyze is installed) verify, the Helm values hold the chart keys
bm_upgrade relies on and say what deploy/dagster.yaml says, the Dockerfile installs from the
locks with hashes, and the image's two locks agree on every version they share.

Nothing here builds the image or installs the chart (deploy/README.md says what was tested).
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
REPO = DEPLOY.parent
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


def load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))


def at(data: Any, path: str) -> Any:
    """The value at a dotted path (``a.b.0.c``); KeyError/IndexError names a missing key."""
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path, encoding="utf-8")
    return parser


def test_every_yaml_file_parses() -> None:
    names = ["dagster.yaml", "dagster-postgres.yaml", "workspace-grpc.yaml", "helm/values.yaml"]
    for name in names:
        assert isinstance(load(name), dict), name


def test_three_units_for_code_server_daemon_and_webserver() -> None:
    assert [p.name for p in UNITS] == [
        "bm-upgrade-code-server.service",
        "bm-upgrade-daemon.service",
        "bm-upgrade-webserver.service",
    ]
    programs = {}
    for path in UNITS:
        service = unit(path)["Service"]
        assert service["User"] == service["Group"] == "bm-upgrade", path.name
        assert service["Restart"] == "on-failure", path.name
        assert service["EnvironmentFile"] == "/etc/bm-upgrade/bm-upgrade.env", path.name
        assert service["KillSignal"] == "SIGTERM", path.name
        assert "DAGSTER_HOME=/var/lib/bm-upgrade/dagster_home" in service["Environment"]
        assert unit(path)["Install"]["WantedBy"] == "multi-user.target"
        programs[path.name] = service["ExecStart"].split()[0].rsplit("/", 1)[1]
    assert programs == {
        "bm-upgrade-code-server.service": "dagster",
        "bm-upgrade-daemon.service": "dagster-daemon",
        "bm-upgrade-webserver.service": "dagster-webserver",
    }
    code_server = unit(DEPLOY / "systemd" / "bm-upgrade-code-server.service")
    # SIGTERM reaches the run workers too, and they get time to finish their server.
    assert code_server["Service"]["KillMode"] == "control-group"
    assert code_server["Service"]["TimeoutStopSec"] == "40min"
    assert "-m bm_upgrade.definitions" in " ".join(code_server["Service"]["ExecStart"].split())
    for name in ("daemon", "webserver"):
        after = unit(DEPLOY / "systemd" / f"bm-upgrade-{name}.service")["Unit"]["After"]
        assert "bm-upgrade-code-server.service" in after.split()
        start = unit(DEPLOY / "systemd" / f"bm-upgrade-{name}.service")["Service"]["ExecStart"]
        assert "-w /opt/bm-upgrade/deploy/workspace-grpc.yaml" in " ".join(start.split())


def test_the_environment_file_example_names_only_variables_bm_upgrade_reads() -> None:
    text = (DEPLOY / "systemd" / "bm-upgrade.env.example").read_text(encoding="utf-8")
    names = set(re.findall(r"^#?([A-Z_]+)=", text, flags=re.MULTILINE))
    assert names == {
        "BM_UPGRADE_PG_URL",
        "BM_UPGRADE_CODE_SERVER_PORT",
        "BM_UPGRADE_INVENTORY_DIR",
        "BM_UPGRADE_UI_URL",
        "BM_UPGRADE_WEBHOOK_URL",
        "BM_UPGRADE_KEY_PASSPHRASE",
    }
    sources = "\n".join(p.read_text() for p in (REPO / "bm_upgrade").rglob("*.py"))
    sources += (DEPLOY / "dagster-postgres.yaml").read_text()
    sources += (DEPLOY / "workspace-grpc.yaml").read_text()
    sources += (REPO / "README.md").read_text()
    for name in names:
        assert name in sources, name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_verifies_the_units(tmp_path: Path) -> None:
    """systemd's own check, with the programs pointed at this checkout's virtualenv."""
    venv = Path(sys.executable).parent.parent
    for path in UNITS:
        text = path.read_text(encoding="utf-8")
        text = text.replace("/opt/bm-upgrade/.venv", str(venv))
        text = text.replace("/opt/bm-upgrade/deploy", str(DEPLOY))
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")


HELM_KEYS = [
    # Your PostgreSQL, its password from a Secret (chart: global_.py, postgresql.py).
    "global.postgresqlSecretName",
    "generatePostgresqlPasswordSecret",
    "postgresql.enabled",
    "postgresql.postgresqlHost",
    "postgresql.postgresqlUsername",
    "postgresql.postgresqlDatabase",
    # The code location (chart: user_deployments.py; `dagster code-server start` + args).
    "dagster-user-deployments.enabled",
    "dagster-user-deployments.enableSubchart",
    "dagster-user-deployments.deployments.0.name",
    "dagster-user-deployments.deployments.0.image.repository",
    "dagster-user-deployments.deployments.0.image.tag",
    "dagster-user-deployments.deployments.0.codeServerArgs",
    "dagster-user-deployments.deployments.0.port",
    "dagster-user-deployments.deployments.0.includeConfigInLaunchedRuns.enabled",
    "dagster-user-deployments.deployments.0.env",
    "dagster-user-deployments.deployments.0.envSecrets",
    "dagster-user-deployments.deployments.0.volumes",
    "dagster-user-deployments.deployments.0.volumeMounts",
    # Each run its own pod (chart: run_launcher.py, RunK8sConfig).
    "runLauncher.type",
    "runLauncher.config.k8sRunLauncher.loadInclusterConfig",
    "runLauncher.config.k8sRunLauncher.imagePullPolicy",
    "runLauncher.config.k8sRunLauncher.runK8sConfig.podSpecConfig",
    # The queue and run monitoring (chart: daemon.py; templates/configmap-instance.yaml).
    "dagsterDaemon.runCoordinator.enabled",
    "dagsterDaemon.runCoordinator.type",
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits",
    "dagsterDaemon.runMonitoring.enabled",
    "dagsterDaemon.runMonitoring.startTimeoutSeconds",
    "dagsterDaemon.runMonitoring.cancelTimeoutSeconds",
    "dagsterDaemon.runMonitoring.pollIntervalSeconds",
    "dagsterDaemon.runMonitoring.maxResumeRunAttempts",
    "pythonLogs.managedPythonLoggers",
    "pythonLogs.pythonLogLevel",
    "telemetry.enabled",
]


def test_the_helm_values_hold_the_keys_bm_upgrade_relies_on() -> None:
    values = load("helm/values.yaml")
    for key in HELM_KEYS:
        at(values, key)  # raises naming the key when it is missing
    assert set(values) == {k.split(".")[0] for k in HELM_KEYS}, "a top-level key not checked"
    deployment = at(values, "dagster-user-deployments.deployments.0")
    assert deployment["codeServerArgs"] == [
        "-m",
        "bm_upgrade.definitions",
        "--location-name",
        "bm_upgrade",
    ]
    # Every volume is mounted, and the mounts are where the image and its env look.
    assert {v["name"] for v in deployment["volumes"]} == {
        m["name"] for m in deployment["volumeMounts"]
    }
    mounts = {m["mountPath"] for m in deployment["volumeMounts"]}
    assert deployment["env"]["BM_UPGRADE_INVENTORY_DIR"] in mounts
    assert deployment["env"]["BM_UPGRADE_KIT_CACHE"] in mounts
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    assert "password" not in str(values["postgresql"]).lower()


def test_the_helm_values_say_what_the_instance_settings_say() -> None:
    values = load("helm/values.yaml")
    instance = load("dagster.yaml")
    daemon = values["dagsterDaemon"]
    limits = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    assert limits == instance["concurrency"]["runs"]["tag_concurrency_limits"]
    monitoring = instance["run_monitoring"]
    assert daemon["runMonitoring"]["enabled"] is monitoring["enabled"] is True
    assert daemon["runMonitoring"]["startTimeoutSeconds"] == monitoring["start_timeout_seconds"]
    assert daemon["runMonitoring"]["cancelTimeoutSeconds"] == monitoring["cancel_timeout_seconds"]
    assert daemon["runMonitoring"]["pollIntervalSeconds"] == monitoring["poll_interval_seconds"]
    assert daemon["runMonitoring"]["maxResumeRunAttempts"] == 0, "never resumed by itself"
    logs = instance["python_logs"]
    assert values["pythonLogs"]["managedPythonLoggers"] == logs["managed_python_loggers"]
    assert values["pythonLogs"]["pythonLogLevel"] == logs["python_log_level"]
    assert values["telemetry"]["enabled"] is instance["telemetry"]["enabled"] is False


def test_the_dockerfile_installs_from_the_locks_with_hashes() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert "openssh-client" in text
    for lock in ("pip.lock", "requirements.lock", "requirements-k8s.lock"):
        assert f"pip install --require-hashes -r {lock}" in text, lock
    assert "pip install --no-deps --no-build-isolation ." in text
    assert "USER bm-upgrade" in text
    assert not any(line.startswith("ENTRYPOINT") for line in lines)
    cmd = " ".join(text.split("CMD", 1)[1].split())
    assert '"dagster", "code-server", "start"' in cmd
    assert '"-m", "bm_upgrade.definitions", "--location-name", "bm_upgrade"' in cmd
    # What it copies is what the ignore file lets into the build context.
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for copied in re.findall(r"^COPY (.+) \S+$", text, flags=re.MULTILINE):
        for source in copied.split():
            assert f"!{source}" in ignore.replace("bm_upgrade/", "bm_upgrade"), source


def pins(path: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", path.read_text(), flags=re.MULTILINE)
    return {name.lower().replace("_", "-"): version for name, version in found}


def test_the_image_locks_agree() -> None:
    """deploy/requirements-k8s.lock was made against requirements.lock: every package both
    pin has one version, and dagster-k8s belongs to the dagster release in the main lock."""
    main, k8s = pins(REPO / "requirements.lock"), pins(DEPLOY / "requirements-k8s.lock")
    shared = set(main) & set(k8s)
    assert "dagster" in shared
    assert {n: (main[n], k8s[n]) for n in shared if main[n] != k8s[n]} == {}
    assert k8s["dagster-k8s"] == main["dagster-postgres"]
    assert "--hash=sha256:" in (DEPLOY / "requirements-k8s.lock").read_text()
