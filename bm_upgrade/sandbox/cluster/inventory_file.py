"""DIR/inventory.yaml: the sandbox described as a bm_upgrade inventory, used unchanged by
`bm-upgrade validate | plan | status | run`.

Kits are served from the sandbox's HTTP server, SSH goes to each host's own sshd with the
sandbox's key and known_hosts, and the timeouts are generous multiples of the topology's
time scale. In the topology's ``java_home: inventory`` mode each server and orchestrator names
its host's Java folder (``java_home``, per node: every host has its own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bm_upgrade.sandbox import java, kits, license, security, wan
from bm_upgrade.sandbox.cluster.layout import KIT_PORT
from bm_upgrade.sandbox.hosts import ClientPlan, HostPlan, ServerPlan
from bm_upgrade.sandbox.topology_model import Topology


def write_inventory(
    topology: Topology,
    directory: Path,
    plan: HostPlan,
    *,
    user: str,
    port: int,
    key_file: Path,
    tarballs: dict[str, Path],
) -> Path:
    """Write ``DIR/inventory.yaml`` for this sandbox (what `bm-upgrade` then uses unchanged)."""
    timing = topology.timing
    # Generous multiples of the sandbox's time scale: a sync is sync_s (+ data), a failover
    # is election_s; the tool's own polling adds a little.
    sync_s = max(30.0, 20 * (timing.sync_s + timing.election_s))
    regions = []
    for region in topology.regions:
        regions.append(
            {
                "name": region.name,
                "stripes": [
                    {
                        "name": stripe,
                        "servers": [_server_entry(s, topology.java_home) for s in servers],
                    }
                    for stripe, servers in plan.stripes_of(region.name)
                ],
                "clients": [_client_entry(c) for c in plan.clients if c.region == region.name],
                "orchestrators": [
                    {
                        **wan.inventory_entry(o),
                        **java.inventory_fields(topology.java_home, o.java_home),
                    }
                    for o in plan.orchestrators
                    if o.region == region.name
                ],
                **(
                    {"management_security": security.inventory_entry(directory)}
                    if region.secured
                    else {}
                ),
            }
        )
    newest = max(topology.kits, key=lambda v: tuple(int(p) for p in v.split(".")))
    inventory = {
        "cluster": _cluster_name(topology, directory),
        "target_version": newest,
        "kits": [
            {
                "version": v,
                "url": f"http://{plan.kit_host}:{KIT_PORT}/{t.name}",
                "sha256": kits.sha256_of(t),
            }
            for v, t in tarballs.items()
        ],
        "license_file": str(directory / license.LICENSE_FILE_NAME),
        "ssh": {
            "user": user,
            "port": port,
            "key_file": str(key_file),
            "use_agent": False,
            "known_hosts": str(directory / "ssh" / "known_hosts"),
            "connect_timeout_s": 5,
            "command_timeout_s": 60,
            "keepalive_s": 0,
        },
        "probe_via": "rest",
        "persistent": topology.persistent,
        "wan_master_region": topology.wan_master_region(),
        "regions": regions,
        "window": {"enabled": False},
        "policy": {
            "failback": True,
            "delete_dirty_backups": False,
            "keep_previous_kit": True,
            "client_batch_size": 1,
            "parallel_stripes": 1,
            "timeouts": {
                "stop_s": 30,
                "start_s": 60,
                "sync_s": sync_s,
                "failover_s": max(30.0, 10 * timing.election_s),
                "client_s": 60,
                "orchestrator_s": 60,
            },
        },
    }
    path = directory / "inventory.yaml"
    header = (
        f"# Written by `bm-upgrade sandbox up` for the sandbox in {directory}.\n"
        "# Use it unchanged: bm-upgrade validate|plan|status|run " + str(path) + "\n"
    )
    path.write_text(header + yaml.safe_dump(inventory, sort_keys=False), encoding="utf-8")
    return path


def _server_entry(server: ServerPlan, java_mode: str) -> dict[str, Any]:
    return {
        "name": server.name,
        "host": server.host,
        "install_dir": str(server.install_dir),
        "tc_config": str(server.tc_config),
        "data_dir": str(server.data_dir),
        "tsa_port": server.tsa_port,
        "management_port": server.management_port,
        "console_log": str(server.console_log),
        **java.inventory_fields(java_mode, server.java_home),
    }


def _client_entry(client: ClientPlan) -> dict[str, Any]:
    return {
        "name": client.name,
        "host": client.host,
        "lib_dir": str(client.lib_dir),
        "stop_command": client.stop_command,
        "start_command": client.start_command,
        "status_command": client.status_command,
    }


def _cluster_name(topology: Topology, directory: Path) -> str:
    if topology.name:
        return topology.name
    cleaned = "".join(c if c.isalnum() else "_" for c in directory.name).strip("_")
    return ("sandbox_" + cleaned)[:48] if cleaned else "sandbox"
