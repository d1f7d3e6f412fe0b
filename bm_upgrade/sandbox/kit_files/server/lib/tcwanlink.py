"""What a sandbox orchestrator does each poll: a standby's takeover, a replica region's link
to the master region (resync, refusal, remainDisconnected), and the master side's sync log
lines. ENGINE.md ("WAN orchestrators") is the description; :mod:`tcwan` is the process.

The replication log lines written here are the WAN Replication User Guide's ("Working with
the Replication Logs"): ``FullScanMasterSynchronizer - Master '<bind>' initiated sync protocol
for replica '<bind>' and cache '<cache>'``, ``... successfully synchronized replica '<bind>' for
cache '<cache>'`` on the master side, ``FullScanReplicaSynchronizer - Replica got SYNC_START
request from master '<bind>' for cache '<cache>'`` on the replica side.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import tccommon
    from bm_upgrade.sandbox.kit_files.server.lib.tcwan import Orchestrator
else:
    import tccommon

RUNNING, STANDBY = "running", "standby"
ACTIVE, INACTIVE, RESYNCING = "ACTIVE", "INACTIVE", "RESYNCING"
MASTER_SYNC = "FullScanMasterSynchronizer"
REPLICA_SYNC = "FullScanReplicaSynchronizer"


def clustered_name(cache: str) -> str:
    """How the replication log names a cache (the guide's examples show
    ``__tc_clustered-ehcache|<cache manager>|<cache>``; the manager name is assumed)."""
    return f"__tc_clustered-ehcache|__DEFAULT__|{cache}"


def tick(orch: Orchestrator) -> None:
    if orch.role != "master":
        _standby(orch)
    if orch.state != RUNNING:
        return
    if orch.region == orch.master_region:
        orch.set_caches(ACTIVE)  # the master region serves its caches at once
        _master_sync(orch)
    else:
        _replica(orch)


def _master_sync(orch: Orchestrator) -> None:
    """Log, as a master, each replica orchestrator's sync with this one: initiated when it
    starts one, successfully synchronized once its caches are ACTIVE (the guide's lines)."""
    for name, peer in orch.peers.items():
        if peer["region"] == orch.master_region:
            continue
        seen = orch.peer(name)
        if not seen or seen.get("state") != RUNNING or seen.get("link") != orch.run_id:
            continue
        replica = f"{peer['host']}:{peer['port']}"
        sync = f"{seen['run']}#{seen.get('sync')}"
        if orch.synced.get(name, ("", ""))[0] != sync:
            orch.synced[name] = (sync, "started")
            for cache in orch.config["caches"]:
                orch.log(
                    f"Master '{orch.bind}' initiated sync protocol for replica '{replica}' "
                    f"and cache '{clustered_name(cache['name'])}'",
                    thread="master-0",
                    source=MASTER_SYNC,
                )
        caches = seen.get("caches") or {}
        done = bool(caches) and all(state == ACTIVE for state in caches.values())
        if done and orch.synced[name][1] == "started":
            orch.synced[name] = (sync, "done")
            for cache in orch.config["caches"]:
                orch.log(
                    f"Master '{orch.bind}' successfully synchronized replica '{replica}' "
                    f"for cache '{clustered_name(cache['name'])}'",
                    thread="New I/O worker #1",
                    source=MASTER_SYNC,
                )


def _standby(orch: Orchestrator) -> None:
    masters = [
        n for n, p in orch.peers.items() if p["region"] == orch.region and p["role"] == "master"
    ]
    running = [n for n in masters if (orch.peer(n) or {}).get("state") == RUNNING]
    now = time.monotonic()
    if running:
        orch.master_lost_at = None
        if orch.state == RUNNING:
            orch.log(f"Master orchestrator {running[0]} is running again; standing by")
            orch.caches, orch.link = {}, None
            orch.set_state(STANDBY)
    elif orch.state == STANDBY:
        if orch.master_lost_at is None:
            orch.master_lost_at = now
            orch.log(
                f"No master orchestrator of region {orch.region} is running; taking "
                f"over in {orch.takeover_s:g} s"
            )
        elif now - orch.master_lost_at >= orch.takeover_s and not _earlier_standby(orch):
            orch.log(f"Taking over as the serving orchestrator of region {orch.region}")
            orch.set_state(RUNNING)


def _earlier_standby(orch: Orchestrator) -> bool:
    """A standby of this region listed before this one runs: it takes over, not us."""
    return any(
        orch.peer(n) is not None
        for n, p in orch.peers.items()
        if p["region"] == orch.region and p["role"] != "master" and n < orch.name
    )


def _source(orch: Orchestrator) -> dict[str, Any] | None:
    """The master region's serving orchestrator (a master before a standby), or None."""
    names = sorted(
        (n for n, p in orch.peers.items() if p["region"] == orch.master_region),
        key=lambda n: orch.peers[n]["role"] != "master",
    )
    for name in names:
        status = orch.peer(name)
        if status and status.get("state") == RUNNING:
            return status
    return None


def _replica(orch: Orchestrator) -> None:
    source = _source(orch)
    if source is not None and source.get("version") != orch.version:
        if source["run"] not in orch.refused:
            orch.refused.add(source["run"])
            orch.log(
                f"Refusing to connect to orchestrator {source['name']} "
                f"(version {source['version']}): all orchestrators must run the same "
                f"version (this one runs {orch.version})",
                "WARN",
            )
        source = None
    run = None if source is None else str(source["run"])
    source_name = "" if source is None else str(source["name"])
    behavior = orch.config["behavior"]
    if run is None:
        if orch.link is not None:
            orch.log(f"Disconnected from the master region {orch.master_region}")
            orch.standalone = behavior == "remainDisconnected"
            if orch.standalone:
                orch.log(
                    "Replica caches remain disconnected (remainDisconnected); restart "
                    "this orchestrator to resync them",
                    "WARN",
                )
        orch.link = None
        orch.set_caches(INACTIVE)
    elif orch.standalone:
        orch.set_caches(INACTIVE)
    elif run != orch.link:
        if orch.link is not None and behavior == "remainDisconnected":
            orch.standalone, orch.link = True, None
            orch.log(
                f"The master region's orchestrator changed to {source_name}; "
                "replica caches remain disconnected (remainDisconnected); restart "
                "this orchestrator to resync them",
                "WARN",
            )
            orch.set_caches(INACTIVE)
            return
        orch.link, orch.sync_no = run, orch.sync_no + 1
        orch.resync_until = time.monotonic() + orch.resync_s
        orch.log(
            f"Connected to orchestrator {source_name} of the master region; "
            "clearing and resyncing every replica cache"
        )
        for cache in orch.config["caches"]:
            orch.log(
                f"Replica got SYNC_START request from master '{(source or {})['bind']}' "
                f"for cache '{clustered_name(cache['name'])}'",
                thread=f"replica-sync-{orch.sync_no}",
                source=REPLICA_SYNC,
            )
        orch.set_caches(RESYNCING)
        orch.publish()  # the new link, even when the caches were RESYNCING already
    elif time.monotonic() >= orch.resync_until and not _held(orch):
        orch.set_caches(ACTIVE)


def _held(orch: Orchestrator) -> bool:
    """The sandbox fault no-resync on this replica orchestrator: its caches stay RESYNCING
    (read only once a resync would end, so a clear lets it end at the next poll)."""
    resyncing = any(state != ACTIVE for state in orch.caches.values())
    return resyncing and tccommon.fault(orch.sandbox, "no-resync", orch.name) is not None
