"""Preflight's Java check: the kit scripts of every server and orchestrator will find a usable
JAVA_HOME on their host.

Every kit script sources the kit root's ``server/bin/setenv.sh`` when present, then exits 2
unless JAVA_HOME names a directory (docs/terracotta.md, "Server scripts"). The check does the
same, in one SSH command per host: for each node of the host, in a subshell with the
environment its scripts get (the node's ``java_home`` when set, else the login's), it sources
that ``setenv.sh`` and tests the JAVA_HOME it ends with. A miss is refused before anything is
touched, naming each host, its nodes and the fix (docs/safety.md rule 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory, Orchestrator, Server
from bm_upgrade.inventory.scripts import JAVA_HOME_REFUSAL, java_home_fix, script_env
from bm_upgrade.remote import Connection, HostPool
from bm_upgrade.remote.quoting import echo_mark, shell, split_marked

Node = Server | Orchestrator

# Run as ``sh -c CHECK sh <kit root>``: what a kit script does before it runs Java, then one
# line: ``ok <dir>``, ``missing <value>`` or ``no-kit`` (no server/bin there yet).
CHECK = (
    'if [ ! -d "$1/server/bin" ]; then echo no-kit; exit 0; fi; '
    'TC_INSTALL_DIR=$1; if [ -r "$1/server/bin/setenv.sh" ]; then '
    '. "$1/server/bin/setenv.sh" >/dev/null 2>&1; fi; '
    'if test -d "${JAVA_HOME:-}"; then printf "ok %s\\n" "$JAVA_HOME"; '
    'else printf "missing %s\\n" "${JAVA_HOME:-}"; fi'
)


@dataclass(frozen=True)
class JavaSeen:
    """What the check saw for one node: ``ok`` (a directory), ``missing`` or ``no-kit``, and
    the JAVA_HOME value its scripts would get (empty: none)."""

    node: Node
    outcome: str
    value: str

    def describe(self) -> str:
        if self.value:
            return f"{self.node.name} ({self.value} is not a directory)"
        return f"{self.node.name} (no JAVA_HOME from the inventory, the login or setenv.sh)"


def java_command(nodes: list[Node]) -> str:
    """One command checking every node of one host, a marker line before each node's answer."""
    parts = []
    for node in nodes:
        argv = [*script_env(node), "sh", "-c", CHECK, "sh", node.kit_root.path]
        parts += [echo_mark(f"java {node.name}"), shell(argv)]
    return "; ".join(parts) + "; true"


def parse_answer(nodes: list[Node], output: str) -> list[JavaSeen]:
    """Each node's answer in the output of :func:`java_command` (no answer counts as
    missing: a setenv.sh that ended the shell leaves the scripts no better off)."""
    sections = split_marked(output)
    seen = []
    for node in nodes:
        line = next(iter(sections.get(f"java {node.name}", [])), "missing")
        outcome, _, value = line.partition(" ")
        if outcome not in ("ok", "missing", "no-kit"):
            outcome, value = "missing", ""
        seen.append(JavaSeen(node, outcome, value.strip()))
    return seen


def nodes_by_host(inventory: Inventory) -> dict[str, list[Node]]:
    """Every server and orchestrator, grouped by host in inventory order."""
    grouped: dict[str, list[Node]] = {}
    for _, _, server in inventory.servers():
        grouped.setdefault(server.host, []).append(server)
    for _, orch in inventory.orchestrators():
        grouped.setdefault(orch.host, []).append(orch)
    return grouped


def check_java_homes(inventory: Inventory, pool: HostPool) -> str:
    """Check every host; returns what was checked, in words (for preflight's checks).

    A node whose kit root has no ``server/bin`` yet (a swap interrupted between its two
    moves) is named as not checked: its new kit gets the kept previous kit's setenv.sh.

    Raises:
        StepFailed: a node's scripts would find no usable JAVA_HOME, or a host could not be
            asked; nothing was touched.
    """
    grouped = nodes_by_host(inventory)

    def ask(conn: Connection) -> list[JavaSeen]:
        nodes = grouped[conn.host]
        result = conn.run(java_command(nodes), timeout=30.0, check=False)
        return parse_answer(nodes, result.stdout)

    outcome = pool.fan_out(grouped, ask)
    if outcome.errors:
        failed = "; ".join(f"{host}: {exc}" for host, exc in outcome.errors.items())
        raise StepFailed(
            "preflight",
            f"the Java check could not run on {len(outcome.errors)} host(s) ({failed}); "
            "nothing was touched; fix SSH access and rerun",
        )
    answers = [seen for host in grouped for seen in outcome.results[host]]
    raise_on_missing(answers)
    skipped = [seen.node.name for seen in answers if seen.outcome == "no-kit"]
    line = (
        f"JAVA_HOME names a directory for all {len(answers) - len(skipped)} server(s) and "
        "orchestrator(s) with a kit root"
    )
    return line + (f" (no kit root to check yet: {', '.join(skipped)})" if skipped else "")


def raise_on_missing(answers: list[JavaSeen]) -> None:
    """Refuse, in one sentence naming each host and its nodes, when any node lacks Java.

    Raises:
        StepFailed: some node's scripts would exit 2 for want of JAVA_HOME.
    """
    missing = [seen for seen in answers if seen.outcome == "missing"]
    if not missing:
        return
    hosts: dict[str, list[JavaSeen]] = {}
    for seen in missing:
        hosts.setdefault(seen.node.host, []).append(seen)
    where = "; ".join(
        f"on host {host}: {', '.join(seen.describe() for seen in group)}"
        for host, group in hosts.items()
    )
    raise StepFailed(
        "preflight",
        f"the kit scripts would exit 2 ({JAVA_HOME_REFUSAL}) {where}; nothing was touched; "
        f"{java_home_fix(seen.node for seen in missing)}, then rerun",
    )
