"""What `sandbox up` writes before anything starts: kits, license, sandbox.json, host folders.

Each server host gets the start version's kit root with the license copied in, its
tc-config.xml (one per region, the same on every server of the region) and its data and log
folders; each client host its application over an unpacked kit; each orchestrator host what
``wan.lay_out`` writes. Every host gets its Java folder, and in the topology's ``setenv`` mode
every kit root a ``server/bin/setenv.sh`` naming it (:mod:`bm_upgrade.sandbox.java`).
"""

from __future__ import annotations

import datetime
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bm_upgrade.sandbox import clientapp, java, kits, license, security, tcconfig, wan
from bm_upgrade.sandbox.hosts import HostPlan, ServerPlan
from bm_upgrade.sandbox.topology_model import Topology

KIT_PORT = 8080


def build_kits(topology: Topology, directory: Path) -> dict[str, Path]:
    """Build every kit of the topology into DIR/kits (each with its ``.sha256``) and write
    DIR's license key; returns version -> tarball."""
    tarballs = {v: kits.build_kit(v, directory / "kits") for v in topology.kits}
    for tarball in tarballs.values():
        tarball.with_name(tarball.name + ".sha256").write_text(
            f"{kits.sha256_of(tarball)}  {tarball.name}\n", encoding="utf-8"
        )
    license.write_license(
        directory / license.LICENSE_FILE_NAME,
        expiry=datetime.date.today() + datetime.timedelta(days=365),
    )
    return tarballs


def write_sandbox_json(
    topology: Topology, directory: Path, plan: HostPlan, *, block: str, user: str, port: int
) -> None:
    """DIR/sandbox.json: how the kit's programs, faults and `verify` find the sandbox."""
    data: dict[str, Any] = {
        "dir": str(directory),
        "journal": str(directory / "journal.jsonl"),
        "faults_dir": str(directory / "faults"),
        "ledger_dir": str(directory / "ledgers"),
        "run_dir": str(directory / "run"),
        "block": block,
        "login_user": user,
        "ssh_port": port,
        "kit_url": f"http://{plan.kit_host}:{KIT_PORT}/",
        "persistent": topology.persistent,
        "reconnect_window_s": topology.reconnect_window_s,
        "timing": {
            "start_s": topology.timing.start_s,
            "election_s": topology.timing.election_s,
            "sync_s": topology.timing.sync_s,
            "sync_s_per_mb": topology.timing.sync_s_per_mb,
        },
        "servers": {
            s.name: {
                "region": s.region,
                "stripe": s.stripe,
                "host": s.host,
                "tsa_port": s.tsa_port,
                "management_port": s.management_port,
                "install_dir": str(s.install_dir),
            }
            for s in plan.servers
        },
        "clients": {c.name: {"region": c.region, "host": c.host} for c in plan.clients},
        "orchestrators": wan.sandbox_json_entries(plan.orchestrators),
        "wan_master_region": topology.wan_master_region(),
    }
    (directory / "sandbox.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def lay_out_hosts(topology: Topology, directory: Path, plan: HostPlan, tarball: Path) -> None:
    """Lay out every host root from the start version's ``tarball`` and DIR's license."""
    license_file = directory / license.LICENSE_FILE_NAME

    def server_host(server: ServerPlan) -> None:
        kits.unpack_kit(tarball, server.install_dir)
        shutil.copyfile(license_file, server.install_dir / license.LICENSE_FILE_NAME)
        for folder in (server.data_dir, server.logs_dir, server.console_log.parent):
            folder.mkdir(parents=True, exist_ok=True)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(server_host, plan.servers))
    if plan.orchestrators:
        wan.lay_out(topology, plan.orchestrators, tarball, license_file)
    for region in topology.regions:
        stripes = [
            {"name": stripe, "servers": [s.tc_entry() for s in servers]}
            for stripe, servers in plan.stripes_of(region.name)
        ]
        first = plan.servers_of(region.name)[0].tc_config
        tcconfig.write_tc_config(
            first,
            stripes=stripes,
            persistent=topology.persistent,
            reconnect_window_s=topology.reconnect_window_s,
            election_s=topology.timing.election_s,
            security=_secure(directory, region.name, plan) if region.secured else None,
        )
        for server in plan.servers_of(region.name)[1:]:
            server.tc_config.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(first, server.tc_config)
    if plan.clients:
        client_kit = directory / "cache" / f"bigmemory-max-{topology.version}"
        if not client_kit.exists():
            kits.unpack_kit(tarball, client_kit)
        for client in plan.clients:
            client.root.mkdir(parents=True, exist_ok=True)
            clientapp.install_client_app(client.app_dir, client_kit, name=client.name)
    _lay_out_java(topology, plan)
    for region in topology.regions:
        if region.secured:
            for server in plan.servers_of(region.name):
                security.trust_ca(directory, server.java_home)


def _secure(directory: Path, region: str, plan: HostPlan) -> dict[str, str]:
    """A secured region's keystore, keychain and users (security.py)."""
    return security.secure_region(directory, region, [s.host for s in plan.servers_of(region)])


def _lay_out_java(topology: Topology, plan: HostPlan) -> None:
    """Every host's Java folder; in ``setenv`` mode, each kit root's setenv.sh naming it."""
    for node in (*plan.servers, *plan.clients, *plan.orchestrators):
        java.lay_out_java(node.java_home)
    if topology.java_home == "setenv":
        for kit_node in (*plan.servers, *plan.orchestrators):
            java.write_setenv(kit_node.install_dir, kit_node.java_home)
