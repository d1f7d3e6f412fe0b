"""One server as the procedure sees it: its probe, whether a process of it runs on its host,
and the kit installed in its kit root; the host's side read in one SSH command."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bm_upgrade.inventory import Server
from bm_upgrade.inventory.scripts import script_argv
from bm_upgrade.plan import NodeState
from bm_upgrade.probes import Runner, ServerStatus, parse_version
from bm_upgrade.probes.processes import PROCESS_LIST
from bm_upgrade.remote.quoting import echo_mark, shell, split_marked


@dataclass(frozen=True)
class Seen:
    """One server as observed: its probe, whether a process of it runs, its installed kit.
    It carries what the steps' checks and messages need beyond the plan's
    :class:`~bm_upgrade.plan.NodeState` (which it gives as :attr:`node_state`).

    ``alive`` comes from the host's process list, so a server still booting (not answering
    yet) or restarting itself (a dirty mirror's exit 11) counts as running, never as down.
    """

    server: Server
    status: ServerStatus
    alive: bool
    installed: str | None

    @classmethod
    def answering(cls, server: Server, status: ServerStatus) -> Seen:
        """A server that answered its probe with its version: it runs (``alive``), and the
        kit that matters is the one it runs (``installed``: the plan uses the running
        version of a running server; the kit root counts only once it is down)."""
        return cls(server, status, True, status.version)

    @property
    def running(self) -> bool:
        return self.status.reachable or self.alive

    @property
    def node_state(self) -> NodeState:
        """What the plan needs: running, version (the running one when known), state."""
        if self.status.reachable:
            return NodeState(True, self.status.version or self.installed, self.status.state)
        return NodeState(self.alive, self.installed, None)

    def describe(self) -> str:
        version = self.node_state.version or "unknown version"
        if self.status.reachable:
            return f"{self.server.name} {self.status.state} on {version}"
        if self.alive:
            return f"{self.server.name} starting (not answering yet) on {version}"
        return f"{self.server.name} down (kit {version})"


def describe(seen: Mapping[str, Seen]) -> str:
    """The stripe as observed, in words (for records and messages)."""
    return ", ".join(s.describe() for s in seen.values()) or "no server"


def server_pids(ps_output: str, server: Server) -> list[int]:
    """Pids of ``server``'s processes in :data:`PS` output (``<pid> <args>`` lines).

    A server process (the start script and the server it runs) carries ``-f <tc-config>`` and
    ``-n <name>``; the stop script carries them too but never outlives its own command.
    """
    pids: list[int] = []
    for line in ps_output.splitlines():
        pid, _, args = line.strip().partition(" ")
        if not pid.isdigit() or "stop-tc-server" in args:
            continue
        # ps joins the arguments with spaces, and a path may hold some: whole words only.
        words = f" {args} "
        if f" -n {server.name} " in words and f" {server.tc_config} " in words:
            pids.append(int(pid))
    return pids


PS = PROCESS_LIST
"""Every process with its whole command line, locale-free (:mod:`bm_upgrade.probes.processes`:
``ps`` would print non-ASCII letters of a path as ``?`` over SSH, and cuts lines at
``$COLUMNS`` without ``-ww``)."""


def look_on_host(conn: Runner, servers: list[Server]) -> tuple[str, dict[str, str | None]]:
    """The host's process list and the kit installed for each of ``servers`` (``version.sh``),
    in one SSH command: ``ps``, then a marker line and ``version.sh`` per server."""
    parts = [PS]
    for server in servers:
        parts.append(echo_mark(f"kit {server.name}"))
        parts.append(shell(script_argv(server, "version.sh")) + " 2>/dev/null")
    sections = split_marked(conn.run("; ".join(parts), timeout=30.0, check=False).stdout)
    kits = {
        server.name: parse_version("\n".join(sections.get(f"kit {server.name}", [])))
        for server in servers
    }
    return "\n".join(sections[""]), kits
