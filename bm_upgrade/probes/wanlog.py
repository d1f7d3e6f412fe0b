"""Pure parsers of what an orchestrator shows: its wan.xml and its replication log.

A real 4.2 orchestrator has no status endpoint (docs/terracotta.md, "WAN replication"); what
can be read is wan.xml (``<bind>``, ``<logs>``, the caches) and the replication log in the
``<logs>`` folder, whose marker lines the WAN Replication User Guide documents ("Working with
the Replication Logs")::

    INFO [master-0] FullScanMasterSynchronizer - Master 'h1:9001' initiated sync protocol
        for replica 'h2:9002' and cache '__tc_clustered-ehcache|__DEFAULT__|orders'
    INFO [New I/O worker #4] FullScanMasterSynchronizer - Master 'h1:9001' successfully
        synchronized replica 'h2:9002' for cache '__tc_clustered-ehcache|__DEFAULT__|orders'
    INFO [replica-sync-4] FullScanReplicaSynchronizer - Replica got SYNC_START request from
        master 'h1:9001' for cache '__tc_clustered-ehcache|__DEFAULT__|orders'

(one line each). A line's leading timestamp is taken when it has one; the rest of a line's
prefix is not relied on.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from bm_upgrade.probes.models import ReplicaSync, WanConfig

_MASTER = re.compile(
    r"FullScanMasterSynchronizer - Master '(?P<master>[^']+)' (?:initiated sync protocol for "
    r"replica '(?P<started>[^']+)' and cache|successfully synchronized replica "
    r"'(?P<done>[^']+)' for cache) '(?P<cache>[^']+)'"
)
_REPLICA = re.compile(
    r"FullScanReplicaSynchronizer - Replica got SYNC_START request from master "
    r"'(?P<master>[^']+)' for cache '(?P<cache>[^']+)'"
)
_STAMP = re.compile(r"^(?P<at>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[,.]\d+)?)")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_wan_config(xml_text: str) -> WanConfig:
    """``<bind host= port=>``, ``<logs>`` and the ``<cache name=>``s of a wan.xml.

    Raises:
        ValueError: not XML, or no usable ``<bind>``.
    """
    try:
        # The operator's own wan.xml from their own host: ElementTree fetches no entity.
        root = ET.fromstring(xml_text)  # noqa: S314
    except ET.ParseError as exc:
        raise ValueError(f"not well-formed XML ({exc})") from None
    bind = next((e for e in root.iter() if _local(e.tag) == "bind"), None)
    host, port = (bind.get("host"), bind.get("port")) if bind is not None else (None, None)
    if not host or not port or not port.isdigit():
        raise ValueError("no <bind host=... port=...> element")
    logs = next((e for e in root.iter() if _local(e.tag) == "logs"), None)
    caches = tuple(
        str(e.get("name")) for e in root.iter() if _local(e.tag) == "cache" and e.get("name")
    )
    folder = (logs.text or "").strip() if logs is not None else ""
    return WanConfig((host, int(port)), folder or None, caches)


def cache_name(logged: str) -> str:
    """The cache's own name in the log's clustered name (``...|<manager>|<cache>``)."""
    return logged.rsplit("|", 1)[-1]


def parse_replication_log(text: str) -> tuple[ReplicaSync, ...]:
    """The last sync event per side, master, replica and cache, in the order last seen.

    Lines that are not the guide's sync markers are skipped, so a log holding anything else
    (statistics, the product's other lines) parses the same.
    """
    last: dict[tuple[str, str, str | None, str], ReplicaSync] = {}
    for line in text.splitlines():
        stamp = _STAMP.match(line.strip())
        at = stamp["at"] if stamp else None
        if match := _MASTER.search(line):
            replica = match["started"] or match["done"]
            sync = ReplicaSync(
                "master",
                cache_name(match["cache"]),
                match["master"],
                replica,
                synchronized=match["done"] is not None,
                at=at,
            )
        elif match := _REPLICA.search(line):
            sync = ReplicaSync(
                "replica", cache_name(match["cache"]), match["master"], None, False, at
            )
        else:
            continue
        key = (sync.side, sync.master, sync.replica, sync.cache)
        last.pop(key, None)
        last[key] = sync
    return tuple(last.values())


def synchronized_replicas(syncs: tuple[ReplicaSync, ...]) -> dict[str, set[str]]:
    """Replica address -> the caches a master's log shows it successfully synchronized
    (as last seen)."""
    done: dict[str, set[str]] = {}
    for sync in syncs:
        if sync.side == "master" and sync.synchronized and sync.replica:
            done.setdefault(sync.replica, set()).add(sync.cache)
    return done
