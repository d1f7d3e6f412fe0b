"""Reading a WAN orchestrator over SSH the way an operator can (docs/terracotta.md, "WAN
replication"): its wan.xml, then in one command on its host the process list, a TCP listen
check on ``<bind>``, its kit root's ``version.sh`` and the tail of its replication log.

A real orchestrator has no status endpoint; nothing here speaks HTTP. The listen check runs on
the orchestrator's own host (bash's ``/dev/tcp``), so it needs no route from the controller
to the replication port. The log read is bounded: lines written since a :class:`LogMark`
(the caller's, taken before a restart), at most :data:`LOG_LINES` of them.
"""

from __future__ import annotations

from bm_upgrade.errors import RemoteError
from bm_upgrade.inventory import Orchestrator
from bm_upgrade.inventory.scripts import script_argv
from bm_upgrade.probes.models import LogMark, OrchestratorStatus, WanConfig
from bm_upgrade.probes.parsers import parse_version
from bm_upgrade.probes.processes import PROCESS_LIST
from bm_upgrade.probes.reads import Runner
from bm_upgrade.probes.wanlog import parse_replication_log, parse_wan_config
from bm_upgrade.remote.quoting import MARK, echo_mark, quote, shell, split_marked

LOG_LINES = 2000
"""The most replication log lines one look reads."""
LISTEN_TIMEOUT_S = 5
WILDCARDS = ("", "0.0.0.0", "::", "*")  # noqa: S104 - compared, never bound
"""Bind hosts that mean every address: the listen check then connects to the loopback."""


def names_replica(logged: str, orch: Orchestrator, config: WanConfig) -> bool:
    """Whether ``logged``, the ``host:port`` a master's replication log names a replica by,
    is ``orch`` (whose wan.xml is ``config``). The port must be its ``<bind>`` port; the host
    its ``<bind>`` host or its inventory host (either spelling, any case), or anything when it
    binds every address (``0.0.0.0``: how the log then names it is not documented, assumed).
    """
    host, _, port = logged.rpartition(":")
    bind_host, bind_port = config.bind
    if not port.isdigit() or int(port) != int(bind_port):
        return False
    if bind_host in WILDCARDS:
        return True
    return host.strip("[]").lower() in {bind_host.strip("[]").lower(), orch.host.lower()}


def read_wan_config(conn: Runner, orch: Orchestrator, timeout: float = 30.0) -> WanConfig:
    """The orchestrator's wan.xml, read on its host.

    Raises:
        RemoteError: the file could not be read.
        ValueError: it has no usable ``<bind>`` (the message names the file).
    """
    xml_text = conn.run(shell(["cat", "--", orch.wan_xml]), timeout=timeout).stdout
    try:
        return parse_wan_config(xml_text)
    except ValueError as exc:
        raise ValueError(f"cannot read <bind> from {orch.wan_xml}: {exc}") from exc


def running(listing: str, wan_xml: str) -> bool:
    """A process of ``listing`` (:data:`~bm_upgrade.probes.processes.PROCESS_LIST` output)
    started with ``wan_xml`` runs (not a stop-wan.sh, not the probe's own command line)."""
    # The arguments are joined with spaces, and a path may hold some: the whole path.
    return any(
        f" {wan_xml} " in f" {line} " and "stop-wan" not in line and MARK not in line
        for line in listing.splitlines()
    )


def _log_script(folder: str, since: LogMark | None) -> str:
    """Shell: the newest ``*.log`` of ``folder``, its size, then its lines written since
    ``since`` (all of them when the file is another or shorter), the last LOG_LINES."""
    path, size = (since.path, since.size) if since else ("", 0)
    return (
        f"( cd -- {quote(folder)} 2>/dev/null && f=$(ls -1t -- *.log 2>/dev/null | head -n 1)"
        ' && [ -n "$f" ] && size=$(wc -c < "$f") && from=1'
        f' && {{ [ "$PWD/$f" != {quote(path)} ] || [ "$size" -lt {int(size)} ]'
        f" || from={int(size) + 1}; }}"
        f' && echo "$size $PWD/$f" && {echo_mark("logtext")}'
        f' && tail -c +"$from" -- "$f" | tail -n {LOG_LINES} )'
    )


def probe_orchestrator(
    conn: Runner,
    orch: Orchestrator,
    timeout: float = 30.0,
    *,
    config: WanConfig | None = None,
    since: LogMark | None = None,
    version: bool = True,
) -> OrchestratorStatus:
    """An orchestrator as its host shows it: process, ``<bind>`` listening, version (unless
    ``version`` is False: ``version.sh`` starts a JVM), replication log since ``since``.

    ``config`` (its wan.xml, when the caller read it already) saves reading it again. A host
    that cannot be read gives a status with ``error`` and nothing known, never an exception.
    """
    try:
        if config is None:
            config = read_wan_config(conn, orch, timeout)
    except (RemoteError, ValueError) as exc:
        return OrchestratorStatus(orch.name, orch.host, error=str(exc))
    host, port = config.bind
    target = orch.host if host in WILDCARDS else host
    parts = [
        echo_mark("ps"),
        PROCESS_LIST,
        echo_mark("listen"),
        f"if timeout {LISTEN_TIMEOUT_S} bash -c 'exec 3<>/dev/tcp/$0/$1' {quote(target)} "
        f"{int(port)} </dev/null >/dev/null 2>&1; then echo yes; else echo no; fi",
    ]
    if version:
        parts += [echo_mark("version"), shell(script_argv(orch, "version.sh")) + " 2>&1"]
    if config.logs:
        parts += [echo_mark("log"), _log_script(config.logs, since)]
    try:
        result = conn.run("; ".join(parts), timeout=timeout, check=False)
    except RemoteError as exc:
        return OrchestratorStatus(orch.name, orch.host, bind=config.address, error=str(exc))
    sections = split_marked(result.stdout)
    log_head = (sections.get("log") or [""])[0].split(" ", 1)
    mark = LogMark(log_head[1], int(log_head[0])) if len(log_head) == 2 else None
    return OrchestratorStatus(
        orch.name,
        orch.host,
        running=running("\n".join(sections.get("ps", [])), orch.wan_xml),
        listening=sections.get("listen") == ["yes"],
        version=parse_version("\n".join(sections.get("version", []))) if version else None,
        bind=config.address,
        syncs=parse_replication_log("\n".join(sections.get("logtext", []))),
        log=mark,
        error=None if config.logs else f"{orch.wan_xml} names no <logs> folder",
    )
