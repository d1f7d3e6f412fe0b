"""Driving WAN orchestrators of a sandbox over SSH with the kit's own scripts, as an operator
(or the tool) does, and reading what they report: their state files (the sandbox's own view),
console and replication logs, the journal."""

from __future__ import annotations

import json
import shlex
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paramiko

from bm_upgrade.sandbox import wan
from bm_upgrade.sandbox.java import java_home_of

from .conftest import Sandbox, running_sandbox, ssh_run


class Orch:
    """One orchestrator of a sandbox."""

    def __init__(self, sandbox: Sandbox, name: str) -> None:
        entries = sandbox.info["orchestrators"]
        assert isinstance(entries, dict)
        self.name = name
        self.info: dict[str, Any] = dict(entries[name])
        self.host = str(self.info["host"])
        self.port = int(self.info["port"])
        self.role = str(self.info["role"])
        self.region = str(self.info["region"])
        self.wan_xml = Path(self.info["wan_xml"])
        self.kit = Path(self.info["install_dir"])
        self.console = sandbox.directory / "hosts" / self.host / "logs" / f"{name}.console.log"
        self.replication_log = self.console.parent / "wan" / "wan-orchestrator.log"
        self.directory = sandbox.directory
        self.ssh: paramiko.SSHClient = sandbox.connect(self.host)

    def run(self, command: str) -> tuple[int, str, str]:
        return ssh_run(self.ssh, command)

    def _script(self, script: Path) -> str:
        """``script -f wan.xml`` with the host's JAVA_HOME (a login has none: the scripts
        need it, as the product's do)."""
        java_home = java_home_of(self.directory / "hosts" / self.host)
        return shlex.join(["env", f"JAVA_HOME={java_home}", str(script), "-f", str(self.wan_xml)])

    def start(self, kit: Path | None = None) -> None:
        """``nohup start-wan.sh -f wan.xml >>console &`` from ``kit`` (default: its own)."""
        script = (kit or self.kit) / "server" / "bin" / "start-wan.sh"
        command = (
            f"nohup {self._script(script)} >>{shlex.quote(str(self.console))} 2>&1 </dev/null &"
        )
        assert self.run(command)[0] == 0

    def start_foreground(self, kit: Path) -> tuple[int, str]:
        script = kit / "server" / "bin" / "start-wan.sh"
        code, out, err = self.run(self._script(script))
        return code, out + err

    def stop(self) -> tuple[int, str]:
        script = self.kit / "server" / "bin" / "stop-wan.sh"
        code, out, err = self.run(self._script(script))
        return code, out + err

    def status(self) -> dict[str, Any] | None:
        """Its state file, shaped for the tests: ``name``, ``role``, ``state``, ``version``,
        ``region``, ``caches`` (``[{"name", "state"}]``, empty unless it serves); None when
        it does not run."""
        seen = wan.state(self.directory, self.name)
        if seen is None:
            return None
        caches = seen.get("caches") or {}
        return {key: seen[key] for key in ("name", "role", "state", "version", "region")} | {
            "caches": [{"name": n, "state": s} for n, s in caches.items()]
            if seen["state"] == "running"
            else []
        }

    def wait(
        self, check: Callable[[dict[str, Any] | None], bool], what: str, timeout_s: float = 15.0
    ) -> float:
        start = time.monotonic()
        while True:
            seen = self.status()
            if check(seen):
                return time.monotonic() - start
            assert time.monotonic() - start < timeout_s, (
                f"{self.name}: not {what}: {seen}; console ends: {self.log()[-600:]!r}"
            )
            time.sleep(0.05)

    def wait_state(self, state: str | None, timeout_s: float = 15.0) -> float:
        """Until its state says ``state`` (None: until it no longer runs)."""
        return self.wait(lambda s: (s or {}).get("state") == state, str(state), timeout_s)

    def wait_caches(self, state: str, timeout_s: float = 15.0) -> float:
        return self.wait(
            lambda s: (
                bool(s and s["caches"]) and all(c["state"] == state for c in (s or {})["caches"])
            ),
            f"caches {state}",
            timeout_s,
        )

    def log(self) -> str:
        return self.console.read_text(encoding="utf-8")

    def replication_lines(self) -> list[str]:
        """The lines of its replication log (in wan.xml's ``<logs>``), none before the first."""
        try:
            return self.replication_log.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []

    def wait_log(self, text: str, count: int, timeout_s: float = 15.0) -> None:
        """Until the console log holds ``text`` ``count`` times (it is appended across runs)."""
        deadline = time.monotonic() + timeout_s
        while self.log().count(text) < count:
            assert time.monotonic() < deadline, f"{self.name}: {text!r} not logged {count}x"
            time.sleep(0.05)

    def holds(
        self, check: Callable[[dict[str, Any] | None], bool], what: str, seconds: float
    ) -> None:
        """``check`` is true of its state at every look for ``seconds``: for a decision the
        orchestrator journals nothing about (it polls every 0.1 s), observed throughout."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            seen = self.status()
            assert check(seen), f"{self.name}: not {what}: {seen}"
            time.sleep(0.05)


def journal(sandbox: Sandbox, since: float = 0.0) -> list[dict[str, Any]]:
    lines = (sandbox.directory / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["t"] >= since]


def cache_states(sandbox: Sandbox, region: str, since: float) -> list[str]:
    """The journaled states of the region's ``orders`` replica cache since ``since``."""
    return [
        e["state"]
        for e in journal(sandbox, since)
        if e["event"] == "replica_cache" and e["region"] == region and e["cache"] == "orders"
    ]


def orchestrator_states(sandbox: Sandbox, since: float) -> list[tuple[str, str]]:
    return [
        (e["orchestrator"], e["state"])
        for e in journal(sandbox, since)
        if e["event"] == "orchestrator_state"
    ]


def wait_stopped(
    sandbox: Sandbox, names: Iterable[str], since: float, timeout_s: float = 15.0
) -> None:
    """Until each of ``names`` journaled ``stopped`` since ``since``: its last act (after it
    left its poll loop), so nothing it decides comes later."""
    deadline = time.monotonic() + timeout_s
    while missing := set(names) - {
        o for o, s in orchestrator_states(sandbox, since) if s == "stopped"
    }:
        assert time.monotonic() < deadline, f"not journaled stopped: {sorted(missing)}"
        time.sleep(0.05)


@contextmanager
def wan_sandbox(sandbox_tmp: Path, name: str, topology_text: str) -> Iterator[Sandbox]:
    """A sandbox of ``topology_text`` in its own folder, down (by PID) after the block."""
    topology = sandbox_tmp / f"{name}-{uuid.uuid4().hex[:8]}.yaml"
    topology.write_text(topology_text, encoding="utf-8")
    with running_sandbox(sandbox_tmp, name, str(topology)) as sandbox:
        yield sandbox


@contextmanager
def orchestrators(sandbox: Sandbox, names: Iterable[str]) -> Iterator[dict[str, Orch]]:
    """An SSH handle per orchestrator, closed after the block."""
    found = {name: Orch(sandbox, name) for name in names}
    try:
        yield found
    finally:
        for orch in found.values():
            orch.ssh.close()
