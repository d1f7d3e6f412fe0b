"""Builders of inventory data for tests (plain dicts, as YAML would give them)."""

from __future__ import annotations

import copy
import socket
from pathlib import Path
from typing import Any

import yaml

from bm_upgrade.inventory import Server

KIT_SHA = "ab" * 32


def server(name: str, host: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "host": host,
        "install_dir": "/opt/terracotta/bigmemory-max",
        "tc_config": "/etc/terracotta/tc-config.xml",
        "data_dir": f"/var/lib/terracotta/{name}/data",
        **extra,
    }


def client(name: str, host: str) -> dict[str, Any]:
    return {
        "name": name,
        "host": host,
        "lib_dir": "/opt/app/lib",
        "stop_command": "app stop",
        "start_command": "app start",
    }


def orchestrator(name: str, host: str, role: str) -> dict[str, Any]:
    return {
        "name": name,
        "host": host,
        "install_dir": "/opt/terracotta/bigmemory-max",
        "wan_xml": "/etc/terracotta/wan.xml",
        "role": role,
    }


def minimal(**overrides: Any) -> dict[str, Any]:
    """A valid one-region, one-stripe, two-server inventory."""
    data: dict[str, Any] = {
        "cluster": "test",
        "target_version": "4.2.1",
        "kits": [
            {"version": "4.2.1", "url": "http://127.0.0.1/k-4.2.1.tar.gz", "sha256": KIT_SHA},
            {"version": "4.2.0", "url": "file:///srv/k-4.2.0.tar.gz", "sha256": KIT_SHA},
        ],
        "license_file": "/etc/bm/terracotta-license.key",
        "ssh": {"user": "tc", "key_file": "/keys/id", "known_hosts": "/keys/known_hosts"},
        "persistent": True,
        "regions": [
            {
                "name": "east",
                "stripes": [
                    {
                        "name": "stripe1",
                        "servers": [server("tsa-a1", "10.0.0.1"), server("tsa-a2", "10.0.0.2")],
                    },
                ],
                "clients": [client("app1", "10.0.1.1")],
            }
        ],
    }
    data.update(overrides)
    return copy.deepcopy(data)


def on_first_host(**fields: Any) -> dict[str, Any]:
    """:func:`minimal` with its second server on the first one's host (10.0.0.1), and
    ``fields`` set on it."""
    data = minimal()
    data["regions"][0]["stripes"][0]["servers"][1].update(host="10.0.0.1", **fields)
    return data


def two_regions_wan() -> dict[str, Any]:
    """Two regions, two stripes each, clients and WAN orchestrators."""
    data = minimal()
    regions = []
    for r, name in enumerate(("east", "west")):
        stripes = []
        for s in range(2):
            stripes.append(
                {
                    "name": f"stripe{s + 1}",
                    "servers": [server(f"{name}-s{s + 1}-{i}", f"10.{r}.{s}.{i}") for i in (1, 2)],
                }
            )
        regions.append(
            {
                "name": name,
                "stripes": stripes,
                "clients": [client(f"{name}-app{i}", f"10.{r}.9.{i}") for i in (1, 2)],
                "orchestrators": [
                    orchestrator(f"{name}-wan-m", f"10.{r}.8.1", "master"),
                    orchestrator(f"{name}-wan-s", f"10.{r}.8.2", "standby"),
                ],
            }
        )
    data["regions"] = regions
    data["wan_master_region"] = "east"
    return data


LICENSE_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "license-4.2.key"


UNANSWERED_STEPS = [
    "preflight",
    "download",
    "stage_kit",
    "upgrade_mirrors_east_stripe1",
    "failover_east_stripe1",
    "verify_servers",
    "restart_clients_1",
    "report",
]
"""The steps of the job of an :func:`unanswered` inventory, in order."""


def unanswered(folder: Path, name: str) -> Path:
    """An inventory file in ``folder``, valid and with a readable license, whose two servers
    and client nobody answers for (SSH to a free loopback port: refused at once), so a run
    of it fails in preflight without a sandbox."""
    (folder / "known_hosts").write_text("")
    (folder / "id").write_text("")
    data = minimal(
        license_file=str(LICENSE_FIXTURE),
        regions=[
            {
                "name": "east",
                "stripes": [
                    {
                        "name": "stripe1",
                        "servers": [server("tsa-a1", "127.0.0.1"), server("tsa-a2", "127.0.0.2")],
                    }
                ],
                "clients": [client("app1", "127.0.0.3")],
            }
        ],
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    data["ssh"] = {
        "user": "tc",
        "key_file": str(folder / "id"),
        "known_hosts": str(folder / "known_hosts"),
        "port": port,
        "connect_timeout_s": 2.0,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def server_model(**extra: Any) -> Server:
    """A validated :class:`Server` (tsa-a1 on 10.0.0.1, kit root /opt/tc/bigmemory-max/);
    ``extra`` overrides fields."""
    fields: dict[str, Any] = {
        "name": "tsa-a1",
        "host": "10.0.0.1",
        "install_dir": "/opt/tc/bigmemory-max/",
        "tc_config": "/etc/tc/tc-config.xml",
        "data_dir": "/var/tc/data",
    }
    fields.update(extra)
    return Server(**fields)
