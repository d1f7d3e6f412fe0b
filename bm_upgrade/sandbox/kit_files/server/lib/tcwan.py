"""The WAN orchestrator stand-in: ``tcwan.py run -f <wan.xml>`` / ``tcwan.py stop -f <wan.xml>``.

``start-wan.sh`` runs it in the foreground; ``stop-wan.sh`` asks it to stop. Behaviour and log
lines are documented in ENGINE.md ("WAN orchestrators", the one place). In short: it listens
on its wan.xml ``<bind>`` (no HTTP status: a real orchestrator has none) and writes the WAN
Replication User Guide's replication log lines into the folder of wan.xml's ``<logs>``;
orchestrators find each other through sandbox.json and their state files
(:mod:`tcwanpeer`); a standby takes over when no master of its region runs for election_s;
the serving orchestrator of a replica region keeps each replica cache ACTIVE / INACTIVE /
RESYNCING from its link to the master region's serving orchestrator (same version only).
Exit codes: 0 stopped, 1 (stop) unreachable, 2 startup error, 143 SIGTERM.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import (
        tccommon,
        tckey,
        tcwanlink,
        tcwanpeer,
        tcwanxml,
    )
else:
    import tccommon
    import tckey
    import tcwanlink
    import tcwanpeer
    import tcwanxml

POLL_S = 0.1
RUNNING, STANDBY, STOPPED = tcwanlink.RUNNING, tcwanlink.STANDBY, "stopped"
INACTIVE = tcwanlink.INACTIVE
LOG_FILE = "wan-orchestrator.log"  # the file's name in <logs> is not documented (assumed)


class Orchestrator:
    """One orchestrator process: its role, its state, its replica caches."""

    def __init__(self, wan_xml: Path, kit_root: Path) -> None:
        self.kit_root = kit_root
        self.version = tccommon.read_properties(
            kit_root / "server" / "lib" / "tc-version.properties"
        ).get("version", "0.0.0")
        try:
            self.config = tcwanxml.parse_wan_xml(wan_xml.read_text(encoding="utf-8"))
        except OSError as exc:
            raise tccommon.StartupError(
                f"Cannot read the WAN configuration {wan_xml}: {exc}"
            ) from None
        except tcwanxml.WanConfigError as exc:
            raise tccommon.StartupError(f"Invalid WAN configuration {wan_xml}: {exc}") from None
        folder = wan_xml.resolve().parent
        # Without <logs> the log goes beside wan.xml (the product's default is assumed).
        self.log_file = (folder / (self.config["logs"] or "logs")) / LOG_FILE
        self.sandbox = tccommon.find_sandbox(folder) or tccommon.find_sandbox(kit_root) or {}
        self.journal = self.sandbox.get("journal")
        everyone: dict[str, dict[str, Any]] = self.sandbox.get("orchestrators", {})
        self.bind = f"{self.config['host']}:{self.config['port']}"
        self.name = next(
            (n for n, o in everyone.items() if f"{o['host']}:{o['port']}" == self.bind),
            self.bind,
        )
        me = everyone.get(self.name, {})
        self.region = str(me.get("region", ""))
        self.role = str(me.get("role", "master"))
        self.master_region = str(self.sandbox.get("wan_master_region", self.region))
        self.peers = {n: o for n, o in everyone.items() if n != self.name}
        timing = self.sandbox.get("timing", {})
        self.start_s = float(timing.get("start_s", 0.0))
        self.takeover_s = float(timing.get("election_s", 1.0))
        self.resync_s = float(timing.get("sync_s", 1.0))
        self.run_id = f"{self.name}:{os.getpid()}:{time.time():.6f}"
        self.state_file = (
            tcwanpeer.state_path(self.sandbox["dir"], self.name)
            if self.sandbox.get("dir")
            else None
        )
        self.state = ""
        self.caches: dict[str, str] = {}
        self.link: str | None = None  # run id of the master orchestrator the caches follow
        self.sync_no = 0  # replica side: one more at every resync
        self.synced: dict[str, tuple[str, str]] = {}  # master side: replica -> (sync, phase)
        self.standalone = False  # remainDisconnected after a disconnect
        self.resync_until = 0.0
        self.master_lost_at: float | None = None
        self.refused: set[str] = set()
        self.stopping = threading.Event()
        self.exit_code = 0
        self._listener: Any = None

    # ------------------------------------------------------------ log, journal, state file

    def log(self, message: str, level: str = "INFO", thread: str = "", source: str = "") -> None:
        """One line on the console (stdout) and in ``<logs>/wan-orchestrator.log``: the
        guide's ``LEVEL [thread] Class - message`` for a replication log line (``source``
        given), the sandbox's own ``LEVEL - message`` otherwise."""
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
        origin = f" [{thread}] {source}" if source else ""
        line = f"{stamp} {level}{origin} - {message}\n"
        sys.stdout.write(line)
        sys.stdout.flush()
        try:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with self.log_file.open("a", encoding="utf-8") as stream:
                stream.write(line)
        except OSError:
            pass  # the console still has it

    def publish(self) -> None:
        """Rewrite this orchestrator's state file (what its peers and the sandbox read)."""
        tcwanpeer.write_state(
            self.state_file,
            {
                "name": self.name,
                "pid": os.getpid(),
                "run": self.run_id,
                "state": self.state,
                "role": self.role,
                "region": self.region,
                "version": self.version,
                "bind": self.bind,
                "link": self.link,
                "sync": self.sync_no,
                "caches": self.caches,
            },
        )

    def set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        self.log(f"Orchestrator {self.name} state: {state.upper()}")
        self.publish()
        self.journal_state(state)

    def journal_state(self, state: str, **more: str) -> None:
        """Journal the orchestrator's state (``failed``, with its ``reason``: it could not
        start)."""
        tccommon.journal_append(
            self.journal,
            "orchestrator_state",
            orchestrator=self.name,
            region=self.region,
            role=self.role,
            state=state,
            version=self.version,
            **more,
        )

    def set_caches(self, state: str) -> None:
        """Every cache to ``state``: logged; journaled as ``replica_cache`` in replica regions."""
        replica = self.region != self.master_region
        changed = False
        for cache in [c["name"] for c in self.config["caches"]]:
            if self.caches.get(cache) != state:
                self.caches[cache] = state
                changed = True
                self.log(f"{'Replica cache' if replica else 'Cache'} {cache} state: {state}")
                if replica:
                    tccommon.journal_append(
                        self.journal, "replica_cache", region=self.region, cache=cache, state=state
                    )
        if changed:
            self.publish()

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Check the license, listen on ``<bind>``, enter the first state."""
        self.log(
            f"WAN orchestrator {self.name} {self.version} (region {self.region or '-'}, "
            f"role {self.role}) starting on {self.bind}"
        )
        tccommon.boot(self, f"Orchestrator {self.name} {self.version} crashed at start")
        key = self.kit_root / tckey.LICENSE_FILE_NAME
        problem = tckey.check_license(key, self.version)
        if problem is None:
            fields, _, _ = tckey.parse_license(key.read_text(encoding="utf-8"))
            # The sandbox fault license-without-wan: the key reads as one without WAN.
            no_wan = tccommon.fault(self.sandbox, "license-without-wan", self.name)
            if no_wan or tckey.WAN_CAPABILITY not in tckey.capabilities(fields):
                problem = f"License key {key} does not carry the WAN capability"
        if problem:
            raise tccommon.StartupError(problem)
        try:
            self._listener = tcwanpeer.listen(
                self.config["host"], self.config["port"], lambda: self.request_stop(0)
            )
        except OSError as exc:
            raise tccommon.StartupError(
                f"Cannot bind {self.bind}: {exc.strerror}; is another orchestrator using that port?"
            ) from None
        self.set_state(RUNNING if self.role == "master" else STANDBY)
        if self.role != "master":
            self.master_lost_at = time.monotonic()

    def run(self) -> int:
        while not self.stopping.wait(POLL_S):
            tcwanlink.tick(self)
        return self.exit_code

    def peer(self, name: str) -> dict[str, Any] | None:
        """A peer's last state, None when it does not run."""
        if not self.sandbox.get("dir"):
            return None
        return tcwanpeer.read_state(tcwanpeer.state_path(self.sandbox["dir"], name))

    def request_stop(self, code: int) -> None:
        if not self.stopping.is_set():
            self.exit_code = code
            self.stopping.set()

    def finish(self) -> None:
        slow = tccommon.fault(self.sandbox, "slow-stop", self.name)
        if slow and self.state:
            seconds = float(slow.get("seconds", 5.0))
            self.log(f"Stopping; draining takes {seconds:g} s (sandbox fault slow-stop)")
            time.sleep(seconds)
        if self._listener is not None:
            self._listener.server_close()
        if self.state == RUNNING and self.region != self.master_region and self.caches:
            self.set_caches(INACTIVE)  # nobody serves this region's replicas any more
        if self.state:
            self.set_state(STOPPED)


def run(argv: list[str]) -> int:
    """What start-wan.sh runs: one orchestrator in the foreground; returns its exit code."""
    kit_root = Path(__file__).resolve().parent.parent.parent
    orch: Orchestrator | None = None
    pid_file = None
    code = 0
    try:
        orch = Orchestrator(Path(tcwanpeer.config_arg(argv)), kit_root)
        pid_file = tccommon.write_pid_file(orch.sandbox, "orchestrator", orch.name)
        signal.signal(signal.SIGTERM, lambda *_: orch.request_stop(143) if orch else None)
        orch.start()
        code = orch.run()
    except tccommon.StartupError as exc:
        if orch is not None:
            orch.log(str(exc), "FATAL")
            orch.journal_state("failed", reason=str(exc))
        else:
            print(f"FATAL - {exc}")
        code = tccommon.EXIT_STARTUP
    finally:
        if orch is not None:
            orch.finish()
        tccommon.remove_pid_file(pid_file)
    return code


if __name__ == "__main__":
    commands = {"run": run, "stop": tcwanpeer.stop}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print("usage: tcwan.py run|stop -f <wan.xml>", file=sys.stderr)
        sys.exit(2)
    exit_code = commands[sys.argv[1]](sys.argv[2:])
    sys.stdout.flush()
    os._exit(exit_code)  # daemon threads may sit in accept()
