"""A scripted fake of the procedure's one seam to hosts (:class:`~bm_upgrade.procedure.waits.
Hosts`) for the client and WAN branch tests: no process, no sshd, no socket.

Every command is answered by pattern from state held here, and recorded as (host, kind) in
:attr:`FakeHosts.ran`, in order. The servers answer ``server-stat.sh`` and ``version.sh``
(the inventory's ``probe_via: ssh``), which is all the check of docs/safety.md rule 5 needs
(``require_servers_ready``); a subclass answers the rest through :meth:`FakeHosts.answer`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from bm_upgrade.errors import CommandFailed
from bm_upgrade.inventory import Inventory, Server
from bm_upgrade.remote.quoting import MARK, Command, shell

ACTIVE, STANDBY, SYNCING = "ACTIVE-COORDINATOR", "PASSIVE-STANDBY", "PASSIVE-UNINITIALIZED"


@dataclass
class Done:
    exit_code: int
    stdout: str
    stderr: str = ""


def version_sh(version: str | None) -> str:
    """What a kit root's ``version.sh`` prints."""
    return f"Terracotta Enterprise {version}, as of 20150901 (Revision 1)\n" if version else ""


def marked(**sections: list[str]) -> str:
    """A composite command's output: each section's lines after its marker line."""
    return "".join(
        f"{MARK}{name}\n" + "".join(f"{line}\n" for line in lines)
        for name, lines in sections.items()
    )


class FakeHosts:
    """The hosts of one cluster, scripted.

    Args:
        inventory: the cluster.
        servers: per server name, the state it answers and the version it runs; a server
            not named is ACTIVE (its stripe's first) or PASSIVE-STANDBY on ``target``.
        target: the version unnamed servers run.
    """

    def __init__(
        self, inventory: Inventory, target: str, servers: dict[str, tuple[str, str]] | None = None
    ) -> None:
        self.servers: dict[str, tuple[Server, str, str]] = {}
        for _, stripe, server in inventory.servers():
            first = server is stripe.servers[0]
            state, version = (servers or {}).get(
                server.name, (ACTIVE if first else STANDBY, target)
            )
            self.servers[server.host] = (server, state, version)
        self.ran: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def get(self, host: str) -> FakeHost:
        return FakeHost(self, host)

    def on(self, host: str) -> list[str]:
        """The kinds of command run on ``host``, in order."""
        return [kind for where, kind in self.ran if where == host]

    def answer(self, host: str, line: str) -> tuple[str, Done]:
        """A command on a host without a server: its kind and its answer."""
        raise AssertionError(f"unexpected command on {host}: {line}")

    def server_answer(self, host: str, line: str) -> tuple[str, Done]:
        server, state, version = self.servers[host]
        if "server-stat.sh" in line:
            role = "ACTIVE" if state == ACTIVE else "PASSIVE"
            lines = ["health: OK", f"role: {role}", f"state: {state}", "port: 9540"]
            return "server-stat", Done(0, "".join(f"{server.name}.{line}\n" for line in lines))
        if line.endswith("server/bin/version.sh"):
            return "version", Done(0, version_sh(version))
        if f"{MARK}file 0" in line:  # the tc-config read before a backup: not restartable
            config = f"<tc-config><servers><server name='{server.name}'/></servers></tc-config>"
            return "tc-config", Done(0, f"{MARK}file 0\n{config}\n")
        raise AssertionError(f"unexpected command on server host {host}: {line}")


@dataclass
class FakeHost:
    """One host's connection (a :class:`~bm_upgrade.probes.Runner`)."""

    hosts: FakeHosts
    host: str

    def run(self, command: Command, timeout: float | None = None, check: bool = True) -> Done:
        line = command if isinstance(command, str) else shell(command)
        with self.hosts.lock:
            if self.host in self.hosts.servers:
                kind, done = self.hosts.server_answer(self.host, line)
            else:
                kind, done = self.hosts.answer(self.host, line)
            self.hosts.ran.append((self.host, kind))
        if check and done.exit_code != 0:
            raise CommandFailed(self.host, line, done.exit_code, done.stdout, done.stderr)
        return done
