"""The safety rules of docs/safety.md, checked on a sandbox's journal (what really happened), not
on the tool's own logs.

`violations(journal, inventory, target)` replays the journal in time order and returns one
line per broken rule (empty: every rule held).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bm_upgrade.inventory import Inventory

ACTIVE, STANDBY, STOPPED = "ACTIVE-COORDINATOR", "PASSIVE-STANDBY", "STOP-STATE"
DISRUPTIVE_COMMAND_WORDS = ("stop-tc-server.sh", "stop-wan.sh", "app.sh stop", "rm -rf", "mv --")


_TIMED = re.compile(r"timeout -k [0-9.]+ [0-9.]+ sh -c (.+)", re.DOTALL)


def untimed(command: str) -> str:
    """The line a :func:`bm_upgrade.remote.quoting.timed` command runs; any other command as
    it is (to read a host's journal in terms of the commands the tool meant)."""
    match = _TIMED.fullmatch(command)
    if match is None:
        return command
    try:
        words = shlex.split(match.group(1))
    except ValueError:
        return command
    return words[0] if len(words) == 1 else command


def read(journal: Path) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    return sorted(events, key=lambda e: e["t"])


@dataclass
class _Replay:
    inventory: Inventory
    target: str
    stripe_of: dict[str, str] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)
    version: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for region, stripe, server in self.inventory.servers():
            self.stripe_of[server.name] = f"{region.name}/{stripe.name}"

    def members(self, server: str) -> list[str]:
        key = self.stripe_of[server]
        return [s for s, k in self.stripe_of.items() if k == key]

    def servers_ready(self) -> bool:
        """Rule 5's condition: every server on the target; one ACTIVE + standbys a stripe."""
        for name in self.stripe_of:
            if self.version.get(name) != self.target:
                return False
        for key in set(self.stripe_of.values()):
            states = [self.state.get(s) for s, k in self.stripe_of.items() if k == key]
            if states.count(ACTIVE) != 1 or states.count(STANDBY) != len(states) - 1:
                return False
        return True


def violations(
    journal: Path,
    inventory: Inventory,
    target: str,
    *,
    since: float = 0.0,
    until: float = float("inf"),
    crash_expected: Iterable[str] = (),
) -> list[str]:
    """Every safety rule broken between ``since`` (unix time the run started) and ``until``
    (when it ended; the sandbox's own shutdown afterwards is not the tool's doing).

    A server that exits 2 at start broke rule 4 (no license in its kit root), unless the test
    injected a crash on it (``crash_expected``)."""
    crash_expected = set(crash_expected)
    replay = _Replay(inventory, target)
    events = read(journal)
    hosts = set(inventory.hosts())
    contacted: set[str] = set()
    staged: set[str] = set()
    first_disruption: dict[str, Any] | None = None
    clients_started = False
    orch_stops: list[tuple[str, str]] = []
    orch_start_versions: set[str] = set()
    roles = {o.name: o.role for r in inventory.regions for o in r.orchestrators}
    for e in events:
        if e["t"] > until:
            break
        kind = e["event"]
        if kind == "server_state" and e["server"] in replay.stripe_of:
            _server_state(replay, e, e["t"] >= since)
        if e["t"] < since:
            continue
        if kind == "command":
            contacted.add(e["host"])
            if ".bm-upgrade-staging" in e["command"]:
                staged.add(e["host"])
            if first_disruption is None and any(
                w in e["command"] for w in DISRUPTIVE_COMMAND_WORDS
            ):
                first_disruption = e
                # Rule 1: preflight (every host contacted) and staging before any change.
                if contacted != hosts or not hosts <= staged:
                    replay.problems.append(
                        f"rule 1: {e['command']!r} on {e['host']} ran before every host was "
                        f"probed and staged (probed {sorted(contacted)}, staged "
                        f"{sorted(staged)})"
                    )
        elif (
            kind == "server_process"
            and e.get("exit_code") == 2
            and e["server"] not in crash_expected
        ):
            replay.problems.append(f"rule 4: {e['server']} exited 2 at start (license?)")
        elif kind == "client_process" and e["action"] == "stop" and not clients_started:
            clients_started = True
            if not replay.servers_ready():
                replay.problems.append(
                    f"rule 5: client {e['client']} stopped while the servers were not all on "
                    f"{target} with one ACTIVE + standbys ({replay.state}, {replay.version})"
                )
        elif kind == "orchestrator_state":
            if e["state"] == "stopped" and e["orchestrator"] in roles:
                if not replay.servers_ready():
                    replay.problems.append(
                        f"rule 6: orchestrator {e['orchestrator']} "
                        "stopped before the servers were ready"
                    )
                orch_stops.append((e["orchestrator"], roles[e["orchestrator"]]))
            elif e["state"] in ("running", "standby"):
                orch_start_versions.add(e["version"])
    masters_seen = False
    for name, role in orch_stops:
        if role == "master":
            masters_seen = True
        elif masters_seen:
            replay.problems.append(f"rule 6: standby orchestrator {name} stopped after a master")
    if len(orch_start_versions) > 1:
        replay.problems.append(f"rule 6: orchestrators started on {sorted(orch_start_versions)}")
    return replay.problems


def _server_state(replay: _Replay, e: dict[str, Any], check: bool) -> None:
    name, new = e["server"], e["state"]
    check = check and not e.get("fault")  # a sandbox fault's doing (kill), not the tool's
    before = replay.state.get(name)
    if check and new == STOPPED and before == ACTIVE:
        others = [s for s in replay.members(name) if s != name]
        if others and not any(replay.state.get(s) == STANDBY for s in others):
            mirrors = {s: replay.state.get(s) for s in others}
            replay.problems.append(
                f"rule 2: ACTIVE {name} stopped at {e['t']:.3f} with no "
                f"PASSIVE-STANDBY mirror ({mirrors})"
            )
    replay.state[name] = new
    if e.get("version"):
        replay.version[name] = e["version"]
    if check and new == STOPPED:
        down = [s for s in replay.members(name) if replay.state.get(s) == STOPPED]
        if len(down) > 1:
            replay.problems.append(
                f"rule 3: {down} of stripe {replay.stripe_of[name]} down together at {e['t']:.3f}"
            )


def stops(journal: Path, since: float = 0.0) -> list[str]:
    """Servers whose process exited after ``since``, in order (not counting a dirty mirror's
    exit 11, after which its start script relaunches it)."""
    return [
        e["server"]
        for e in read(journal)
        if e["event"] == "server_process"
        and e["action"] == "exit"
        and e["t"] >= since
        and e.get("exit_code") != 11
    ]


def changing_commands(
    journal: Path,
    since: float = 0.0,
    words: Iterable[str] = (
        "stop-tc-server.sh",
        "start-tc-server.sh",
        "mv -- ",
        "app.sh stop",
        "app.sh start",
        "stop-wan.sh",
        "start-wan.sh",
    ),
) -> list[str]:
    """Commands after ``since`` that stop or start a node or move a kit root (the swap's
    ``mv``). Unpacking the staged kit into a node's own work folder is not a change: staging
    does it once to prove the kit's version before anything stops (procedure/kit/staging.py),
    and an install does it before its swap, which ``mv`` then shows."""
    words = tuple(words)
    return [
        e["command"]
        for e in read(journal)
        if e["event"] == "command" and e["t"] >= since and any(w in e["command"] for w in words)
    ]
