"""The WAN orchestrator stand-in: ``tcwan.py run -f <wan.xml>`` / ``tcwan.py stop -f <wan.xml>``.

``start-wan.sh`` runs it in the foreground; ``stop-wan.sh`` asks it to stop. Behaviour, status
and log lines are documented in ENGINE.md ("WAN orchestrators", the one place). In short: it
serves ``GET /wan/status`` on its wan.xml ``<bind>``; orchestrators find each other through
sandbox.json; a standby takes over when no master of its region runs for election_s; the
serving orchestrator of a replica region keeps each replica cache ACTIVE / INACTIVE /
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
    from bm_upgrade.sandbox.kit_files.server.lib import tccommon, tckey, tcwanhttp, tcwanxml
else:
    import tccommon
    import tckey
    import tcwanhttp
    import tcwanxml

POLL_S = 0.1
RUNNING, STANDBY, STOPPED = "running", "standby", "stopped"
ACTIVE, INACTIVE, RESYNCING = "ACTIVE", "INACTIVE", "RESYNCING"


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
        self.sandbox = (
            tccommon.find_sandbox(wan_xml.resolve().parent) or tccommon.find_sandbox(kit_root) or {}
        )
        self.journal = self.sandbox.get("journal")
        everyone: dict[str, dict[str, Any]] = self.sandbox.get("orchestrators", {})
        bind = (self.config["host"], self.config["port"])
        self.name = next(
            (n for n, o in everyone.items() if (o["host"], int(o["port"])) == bind),
            f"{bind[0]}:{bind[1]}",
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
        self.state = ""
        self.caches: dict[str, str] = {}
        self.link: str | None = None  # run id of the master orchestrator the caches follow
        self.standalone = False  # remainDisconnected after a disconnect
        self.resync_until = 0.0
        self.master_lost_at: float | None = None
        self.refused: set[str] = set()
        self.stopping = threading.Event()
        self.exit_code = 0
        self._httpd: Any = None

    # ------------------------------------------------------------ log, journal, status

    def log(self, message: str, level: str = "INFO") -> None:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
        sys.stdout.write(f"{stamp} {level} - {message}\n")
        sys.stdout.flush()

    def set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        self.log(f"Orchestrator {self.name} state: {state.upper()}")
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
        for cache in [c["name"] for c in self.config["caches"]]:
            if self.caches.get(cache) != state:
                self.caches[cache] = state
                self.log(f"{'Replica cache' if replica else 'Cache'} {cache} state: {state}")
                if replica:
                    tccommon.journal_append(
                        self.journal, "replica_cache", region=self.region, cache=cache, state=state
                    )

    def status(self) -> dict[str, Any]:
        """What ``GET /wan/status`` answers (a standby serves, and lists, no cache)."""
        caches = (
            [{"name": c, "state": s} for c, s in self.caches.items()]
            if self.state == RUNNING
            else []
        )
        return {
            "name": self.name,
            "role": self.role,
            "state": self.state,
            "version": self.version,
            "region": self.region,
            "caches": caches,
        }

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Check the license, bind the status port, enter the first state."""
        self.log(
            f"WAN orchestrator {self.name} {self.version} (region {self.region or '-'}, "
            f"role {self.role}) starting on {self.config['host']}:{self.config['port']}"
        )
        tccommon.boot(self, f"Orchestrator {self.name} {self.version} crashed at start")
        key = self.kit_root / tckey.LICENSE_FILE_NAME
        problem = tckey.check_license(key, self.version)
        if problem is None:
            fields, _ = tckey.parse_license(key.read_text(encoding="utf-8"))
            capabilities = [c.strip() for c in fields.get("Capabilities", "").split(",")]
            if "WAN" not in capabilities:
                problem = f"License key {key} does not carry the WAN capability"
        if problem:
            raise tccommon.StartupError(problem)
        self._httpd = tccommon.bind_http(
            lambda: tcwanhttp.serve(self), self.config["host"], self.config["port"], "orchestrator"
        )
        self.set_state(RUNNING if self.role == "master" else STANDBY)
        if self.role != "master":
            self.master_lost_at = time.monotonic()

    def run(self) -> int:
        while not self.stopping.wait(POLL_S):
            self._tick()
        return self.exit_code

    def _peer(self, name: str) -> dict[str, Any] | None:
        peer = self.peers[name]
        try:
            code, data = tcwanhttp.call(peer["host"], int(peer["port"]), "/wan/peer")
        except OSError:
            return None
        return data if code == 200 else None

    def _tick(self) -> None:
        if self.role != "master":
            self._standby_tick()
        if self.state != RUNNING:
            return
        if self.region == self.master_region:
            self.set_caches(ACTIVE)  # the master region serves its caches at once
        else:
            self._replica_tick()

    def _standby_tick(self) -> None:
        masters = [
            n for n, p in self.peers.items() if p["region"] == self.region and p["role"] == "master"
        ]
        running = [n for n in masters if (self._peer(n) or {}).get("state") == RUNNING]
        now = time.monotonic()
        if running:
            self.master_lost_at = None
            if self.state == RUNNING:
                self.log(f"Master orchestrator {running[0]} is running again; standing by")
                self.set_state(STANDBY)
                self.caches, self.link = {}, None
        elif self.state == STANDBY:
            if self.master_lost_at is None:
                self.master_lost_at = now
                self.log(
                    f"No master orchestrator of region {self.region} is running; taking "
                    f"over in {self.takeover_s:g} s"
                )
            elif now - self.master_lost_at >= self.takeover_s and not self._earlier_standby():
                self.log(f"Taking over as the serving orchestrator of region {self.region}")
                self.set_state(RUNNING)

    def _earlier_standby(self) -> bool:
        """A standby of this region listed before this one answers: it takes over, not us."""
        return any(
            self._peer(n) is not None
            for n, p in self.peers.items()
            if p["region"] == self.region and p["role"] != "master" and n < self.name
        )

    def _source(self) -> dict[str, Any] | None:
        """The master region's serving orchestrator (a master before a standby), or None."""
        names = sorted(
            (n for n, p in self.peers.items() if p["region"] == self.master_region),
            key=lambda n: self.peers[n]["role"] != "master",
        )
        for name in names:
            status = self._peer(name)
            if status and status.get("state") == RUNNING:
                return status
        return None

    def _replica_tick(self) -> None:
        source = self._source()
        if source is not None and source.get("version") != self.version:
            if source["run"] not in self.refused:
                self.refused.add(source["run"])
                self.log(
                    f"Refusing to connect to orchestrator {source['name']} "
                    f"(version {source['version']}): all orchestrators must run the same "
                    f"version (this one runs {self.version})",
                    "WARN",
                )
            source = None
        run = None if source is None else str(source["run"])
        source_name = "" if source is None else str(source["name"])
        behavior = self.config["behavior"]
        if run is None:
            if self.link is not None:
                self.log(f"Disconnected from the master region {self.master_region}")
                self.standalone = behavior == "remainDisconnected"
                if self.standalone:
                    self.log(
                        "Replica caches remain disconnected (remainDisconnected); restart "
                        "this orchestrator to resync them",
                        "WARN",
                    )
            self.link = None
            self.set_caches(INACTIVE)
        elif self.standalone:
            self.set_caches(INACTIVE)
        elif run != self.link:
            if self.link is not None and behavior == "remainDisconnected":
                self.standalone, self.link = True, None
                self.log(
                    f"The master region's orchestrator changed to {source_name}; "
                    "replica caches remain disconnected (remainDisconnected); restart "
                    "this orchestrator to resync them",
                    "WARN",
                )
                self.set_caches(INACTIVE)
                return
            self.link = run
            self.resync_until = time.monotonic() + self.resync_s
            self.log(
                f"Connected to orchestrator {source_name} of the master region; "
                "clearing and resyncing every replica cache"
            )
            self.set_caches(RESYNCING)
        elif time.monotonic() >= self.resync_until:
            self.set_caches(ACTIVE)

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
        if self._httpd is not None:
            self._httpd.server_close()
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
        orch = Orchestrator(Path(tcwanhttp.config_arg(argv)), kit_root)
        pid_file = tccommon.write_pid_file(orch.sandbox, "orchestrator", orch.name)
        signal.signal(signal.SIGTERM, lambda *_: orch.request_stop(143) if orch else None)
        orch.start()
        code = orch.run()
    except tccommon.StartupError as exc:
        message = f"FATAL - {exc}"
        if orch is not None:
            orch.log(str(exc), "FATAL")
            orch.journal_state("failed", reason=str(exc))
        else:
            print(message)
        code = tccommon.EXIT_STARTUP
    finally:
        if orch is not None:
            orch.finish()
        tccommon.remove_pid_file(pid_file)
    return code


if __name__ == "__main__":
    commands = {"run": run, "stop": tcwanhttp.stop}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print("usage: tcwan.py run|stop -f <wan.xml>", file=sys.stderr)
        sys.exit(2)
    exit_code = commands[sys.argv[1]](sys.argv[2:])
    sys.stdout.flush()
    os._exit(exit_code)  # daemon threads may sit in accept()
