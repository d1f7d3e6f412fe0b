"""The fault kinds of client applications and WAN orchestrators (entries of
:data:`bm_upgrade.sandbox.faults.KINDS`; ENGINE.md "Faults" describes each).

All four are faults the programs read through ``tccommon.fault`` at the moment it matters:
the client application when it starts and when ``app.sh stop`` runs, the orchestrator when it
checks its license and when a replica resync would end. Clearing removes the fault file.
"""

from __future__ import annotations

import re
from pathlib import Path

from bm_upgrade.sandbox.fault_targets import FaultError, Injection, Kind, file_only, need, nodes

_TOOLKIT_JAR = re.compile(r"^terracotta-toolkit-runtime-ee-(?P<version>\d[\w.]*)\.jar$")


def _client_version(directory: Path, host: str, name: str) -> str:
    """The client library a sandbox client runs on now (its toolkit jar's version)."""
    lib = directory / "hosts" / host / "opt" / name / "lib"
    found = sorted(m["version"] for p in lib.glob("*.jar") if (m := _TOOLKIT_JAR.match(p.name)))
    if len(found) != 1:
        raise FaultError(f"{lib} holds no single toolkit jar; is client {name} installed?")
    return found[0]


def _inject_client_start_fails(job: Injection) -> str:
    client = need(job.target, nodes(job.info, ("clients",)), "a client name")
    keeps = _client_version(job.directory, str(client["host"]), job.target)
    job.record["version"] = keeps
    return f"client {job.target} will exit 2 at start on any client library but {keeps}"


def _inject_no_resync(job: Injection) -> str:
    orch = need(job.target, nodes(job.info, ("orchestrators",)), "an orchestrator name")
    if orch.get("region") == job.info.get("wan_master_region"):
        raise FaultError(
            f"{job.target} is an orchestrator of the master region; give one of a replica region"
        )
    return f"the replica caches {job.target} serves will stay RESYNCING"


KINDS = (
    Kind(
        "client-stop-hangs",
        "client name",
        "the client's stop command (``app.sh stop``) hangs before it signals the application, "
        "which keeps running, until the command is killed; clear lets a hanging stop go on",
        file_only(
            ("clients",),
            "a client name",
            "the stop command of client {target} will hang (the application keeps running)",
        ),
    ),
    Kind(
        "client-start-fails",
        "client name",
        "the client application exits 2 at start (``FATAL``) on any client library but the "
        "one it runs when the fault is injected",
        _inject_client_start_fails,
        journaled=("version",),
    ),
    Kind(
        "license-without-wan",
        "orchestrator name",
        "the orchestrator reads its license key as one without the WAN capability and "
        "refuses to start (exit 2, ``FATAL``); the key file is not changed",
        file_only(
            ("orchestrators",),
            "an orchestrator name",
            "orchestrator {target} will refuse to start: its license key reads as one "
            "without the WAN capability",
        ),
    ),
    Kind(
        "no-resync",
        "orchestrator name (of a replica region)",
        "the replica caches it serves start a resync (``SYNC_START`` logged) and stay "
        "RESYNCING, so the master never logs them synchronized; clear ends the resync",
        _inject_no_resync,
    ),
)
"""The kinds this module adds to the table."""
