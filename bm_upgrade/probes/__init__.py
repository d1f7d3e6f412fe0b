"""Read the live state of servers, kits, clients and orchestrators.

Transport returns raw text; a pure parser turns it into a model. The modules, re-exported
here: ``models.py`` (what a probe found), ``parsers.py`` (raw text to models, tested against
saved real output under tests/fixtures/), ``reads.py`` (the reads over HTTP and SSH), and for
WAN orchestrators ``wanlog.py`` (wan.xml and the replication log) and ``orchestrator.py``
(their read over SSH: process, listen check, version, log).
"""

from bm_upgrade.probes.models import (
    UNKNOWN,
    ClientStatus,
    LogMark,
    OrchestratorStatus,
    ReplicaSync,
    ServerStatus,
    WanConfig,
)
from bm_upgrade.probes.orchestrator import probe_orchestrator, read_wan_config
from bm_upgrade.probes.parsers import (
    jar_set_version,
    parse_server_stat,
    parse_version,
    server_status_from_rest,
    server_status_from_stat,
    terracotta_jars,
    version_from_topology,
)
from bm_upgrade.probes.reads import (
    STAT_PATH,
    TOPOLOGY_PATH,
    Runner,
    kit_version,
    probe_client,
    probe_server_rest,
    probe_server_ssh,
)
from bm_upgrade.probes.wanlog import (
    parse_replication_log,
    parse_wan_config,
    synchronized_replicas,
)

__all__ = [
    "STAT_PATH",
    "TOPOLOGY_PATH",
    "UNKNOWN",
    "ClientStatus",
    "LogMark",
    "OrchestratorStatus",
    "ReplicaSync",
    "Runner",
    "ServerStatus",
    "WanConfig",
    "jar_set_version",
    "kit_version",
    "parse_replication_log",
    "parse_server_stat",
    "parse_version",
    "parse_wan_config",
    "probe_client",
    "probe_orchestrator",
    "probe_server_rest",
    "probe_server_ssh",
    "read_wan_config",
    "server_status_from_rest",
    "server_status_from_stat",
    "synchronized_replicas",
    "terracotta_jars",
    "version_from_topology",
]
