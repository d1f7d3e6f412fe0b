"""Read the live state of servers, kits, clients and orchestrators.

Transport returns raw text; a pure parser turns it into a model. Three modules, re-exported
here: ``models.py`` (what a probe found), ``parsers.py`` (raw text to models, tested against
saved real output under tests/fixtures/), ``reads.py`` (the reads over HTTP and SSH).
"""

from bm_upgrade.probes.models import (
    UNKNOWN,
    CacheState,
    ClientStatus,
    OrchestratorStatus,
    ServerStatus,
)
from bm_upgrade.probes.parsers import (
    jar_set_version,
    orchestrator_status_from_json,
    parse_server_stat,
    parse_version,
    parse_wan_bind,
    server_status_from_rest,
    server_status_from_stat,
    terracotta_jars,
    version_from_topology,
)
from bm_upgrade.probes.reads import (
    STAT_PATH,
    TOPOLOGY_PATH,
    WAN_STATUS_PATH,
    Runner,
    http_json,
    kit_version,
    probe_client,
    probe_orchestrator,
    probe_server_rest,
    probe_server_ssh,
    read_wan_bind,
)

__all__ = [
    "STAT_PATH",
    "TOPOLOGY_PATH",
    "UNKNOWN",
    "WAN_STATUS_PATH",
    "CacheState",
    "ClientStatus",
    "OrchestratorStatus",
    "Runner",
    "ServerStatus",
    "http_json",
    "jar_set_version",
    "kit_version",
    "orchestrator_status_from_json",
    "parse_server_stat",
    "parse_version",
    "parse_wan_bind",
    "probe_client",
    "probe_orchestrator",
    "probe_server_rest",
    "probe_server_ssh",
    "read_wan_bind",
    "server_status_from_rest",
    "server_status_from_stat",
    "terracotta_jars",
    "version_from_topology",
]
