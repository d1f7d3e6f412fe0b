"""The WAN side of `sandbox up`: orchestrator hosts, wan.xml files, start order, inventory.

Each orchestrator gets its own host (a kit root with the license, ``etc/wan.xml``,
``logs/<name>.console.log``, its replication log in ``logs/wan/``) and is started by the
kit's ``start-wan.sh`` like the tool does. Orchestrators find each other through sandbox.json's
``orchestrators`` and ``wan_master_region`` and their state files; what they do is in
ENGINE.md ("WAN orchestrators").
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bm_upgrade.sandbox.hosts import OrchestratorPlan
from bm_upgrade.sandbox.kit_files.server.lib import tcwanpeer, tcwanxml
from bm_upgrade.sandbox.topology_model import WAN_CACHES, Topology


def sandbox_json_entries(plan: tuple[OrchestratorPlan, ...]) -> dict[str, dict[str, Any]]:
    """sandbox.json ``orchestrators``: how orchestrators (and faults) find each other."""
    return {
        o.name: {
            "region": o.region,
            "role": o.role,
            "host": o.host,
            "port": o.port,
            "wan_xml": str(o.wan_xml),
            "install_dir": str(o.install_dir),
            "replica_disconnect_behavior": o.replica_disconnect_behavior,
        }
        for o in plan
    }


def lay_out(
    topology: Topology, plan: tuple[OrchestratorPlan, ...], tarball: Path, license_file: Path
) -> None:
    """Unpack the kit (plus the license) and write wan.xml on every orchestrator host."""
    from bm_upgrade.sandbox import kits

    master_region = topology.wan_master_region()
    masters = [(o.host, o.port) for o in plan if o.region == master_region and o.role == "master"]
    for orch in plan:
        kits.unpack_kit(tarball, orch.install_dir)
        shutil.copyfile(license_file, orch.install_dir / "terracotta-license.key")
        orch.wan_xml.parent.mkdir(parents=True, exist_ok=True)
        orch.console_log.parent.mkdir(parents=True, exist_ok=True)
        orch.wan_logs.mkdir(parents=True, exist_ok=True)
        orch.wan_xml.write_text(
            tcwanxml.render_wan_xml(
                host=orch.host,
                port=orch.port,
                logs=str(orch.wan_logs),
                behavior=orch.replica_disconnect_behavior,
                caches=list(WAN_CACHES),
                masters=masters,
            ),
            encoding="utf-8",
        )


def state(directory: Path, name: str) -> dict[str, Any] | None:
    """What orchestrator ``name`` of the sandbox in ``directory`` last said of itself
    (``state``, ``version``, ``region``, ``caches``, ...), or None when it does not run.

    The sandbox's own view (its state file), for `up`, faults and tests; the tool sees an
    orchestrator only as the product shows it (process, listen check, replication log).
    """
    return tcwanpeer.read_state(tcwanpeer.state_path(directory, name))


def start_all(
    plan: tuple[OrchestratorPlan, ...],
    start: Callable[[OrchestratorPlan], None],
    deadline: float,
    say: Callable[[str], None],
) -> None:
    """Masters first (the master region's first), then standbys; wait until every replica
    cache is ACTIVE. ``start`` starts one orchestrator detached.

    Raises:
        TimeoutError: something did not reach its state before ``deadline``; says which.
    """
    if not plan:
        return
    say(f"starting {len(plan)} WAN orchestrator(s)")
    masters = [o for o in plan if o.role == "master"]
    standbys = [o for o in plan if o.role == "standby"]
    for orch in masters:
        start(orch)
    _wait(masters, lambda s: s.get("state") == "running", "running", deadline)
    for orch in standbys:
        start(orch)
    _wait(standbys, lambda s: s.get("state") == "standby", "standby", deadline)
    _wait(
        masters,
        lambda s: all(state == "ACTIVE" for state in (s.get("caches") or {}).values()),
        "every cache ACTIVE",
        deadline,
    )


def _state(orch: OrchestratorPlan) -> dict[str, Any] | None:
    return state(orch.directory, orch.name)


def _wait(
    orchs: list[OrchestratorPlan],
    ready: Callable[[dict[str, Any]], bool],
    what: str,
    deadline: float,
) -> None:
    pending = list(orchs)
    while pending:
        pending = [o for o in pending if not ready(_state(o) or {"state": None})]
        if not pending:
            return
        if time.monotonic() > deadline:
            orch = pending[0]
            seen = _state(orch)
            raise TimeoutError(
                f"orchestrator {orch.name} ({orch.host}) did not reach {what} in "
                f"time (state: {seen or 'not running'}); see {orch.console_log}"
            )
        time.sleep(0.05)


def inventory_entry(orch: OrchestratorPlan) -> dict[str, Any]:
    """The orchestrator's entry in DIR/inventory.yaml (bm_upgrade.inventory.Orchestrator)."""
    return {
        "name": orch.name,
        "host": orch.host,
        "install_dir": str(orch.install_dir),
        "wan_xml": str(orch.wan_xml),
        "role": orch.role,
        "replica_disconnect_behavior": orch.replica_disconnect_behavior,
        "console_log": str(orch.console_log),
    }
