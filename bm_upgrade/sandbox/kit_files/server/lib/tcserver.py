"""The Terracotta server stand-in: ``python3 tcserver.py -f <tc-config.xml> -n <name>``.

Run by ``server/bin/start-tc-server.sh`` in the foreground. Exit codes: 0 stopped, 2 startup
error (config, license, port in use, another minor version), 11 restart me (dirty mirror),
143 SIGTERM. States: START-STATE -> (election) ACTIVE-COORDINATOR, or PASSIVE-UNINITIALIZED
-> PASSIVE-STANDBY -> (failover) ACTIVE-COORDINATOR; STOP-STATE on exit. The server-to-server
protocol (tsa-group-port) and the client protocol (tsa-port) are described in ENGINE.md.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import (
        tccommon,
        tcconfigxml,
        tcelect,
        tckey,
        tclisten,
        tcpassive,
        tcrest,
        tctsa,
    )
    from bm_upgrade.sandbox.kit_files.server.lib.tcactive import Replicator
    from bm_upgrade.sandbox.kit_files.server.lib.tcstore import Store
else:
    import tccommon
    import tcconfigxml
    import tcelect
    import tckey
    import tclisten
    import tcpassive
    import tcrest
    import tctsa
    from tcactive import Replicator
    from tcstore import Store

POLL_S = 0.05


class Server:
    """One server process: its state, its listeners, and its life cycle."""

    ACTIVE = "ACTIVE-COORDINATOR"
    STANDBY = "PASSIVE-STANDBY"
    UNINITIALIZED = "PASSIVE-UNINITIALIZED"
    START = "START-STATE"
    STOP = "STOP-STATE"

    def __init__(self, config_path: Path, name: str, kit_root: Path) -> None:
        self.config_path = config_path.resolve()
        self.name = name
        self.kit_root = kit_root
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.stopping = threading.Event()
        self.exit_code = 0
        self.state = ""
        self.epoch = 0
        self.props = tccommon.read_properties(kit_root / "server" / "lib" / "tc-version.properties")
        self.version = self.props.get("version", "0.0.0")
        self.sandbox = tccommon.find_sandbox(self.config_path.parent) or tccommon.find_sandbox(
            kit_root
        )
        self.journal = (self.sandbox or {}).get("journal")
        self.log_file: Path | None = None
        self.replicator = Replicator(self)
        self.active_sock: socket.socket | None = None
        self._httpd: Any = None
        try:
            self.config_text = self.config_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise tccommon.StartupError(
                f"Cannot read the configuration {config_path}: {exc}"
            ) from None
        try:
            self.config = tcconfigxml.parse_tc_config(self.config_text)
        except tcconfigxml.ConfigError as exc:
            raise tccommon.StartupError(f"Invalid configuration {config_path}: {exc}") from None
        found = [
            (stripe, member)
            for stripe in self.config["stripes"]
            for member in stripe["servers"]
            if member["name"] == name
        ]
        if not found:
            raise tccommon.StartupError(f"Server '{name}' is not defined in {config_path}")
        self.stripe, self.me = found[0]
        self.peers = [m for m in self.stripe["servers"] if m["name"] != name]
        self.listeners = tclisten.Listeners(self.me["host"])
        timing = (self.sandbox or {}).get("timing", {})
        self.election_s = float(self.stripe["election_s"])
        self.start_s = float(timing.get("start_s", 0.0))
        self.sync_s = float(timing.get("sync_s", 1.0))
        self.sync_s_per_mb = float(timing.get("sync_s_per_mb", 0.0))
        info = (self.sandbox or {}).get("servers", {}).get(name, {})
        self.region = str(info.get("region", ""))
        self.stripe_name = str(info.get("stripe", self.stripe["name"]))
        self.store = Store(self._path(self.me["data"]), bool(self.config["persistent"]))

    # ------------------------------------------------------------ helpers

    def _path(self, value: str) -> Path:
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else self.config_path.parent / path

    def log(self, message: str) -> None:
        """One console line (stdout) and the same line in ``<logs>/terracotta-server.log``."""
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
        line = f"{stamp} INFO - {message}\n"
        sys.stdout.write(line)
        sys.stdout.flush()
        if self.log_file is not None:
            with self.log_file.open("a", encoding="utf-8") as stream:
                stream.write(line)

    def event(self, event: str, **fields: Any) -> None:
        """Journal an event (no-op outside a sandbox)."""
        tccommon.journal_append(self.journal, event, **fields)

    def set_state(self, state: str) -> None:
        """Change state, log it as Terracotta does, and journal ``server_state``."""
        with self.cond:
            if state == self.state:
                return
            self.state = state
            self.cond.notify_all()
        if state == self.ACTIVE:
            self.log(f"Becoming State[ {state} ]")
        else:
            self.log(f"Moved to State[ {state} ]")
        self.event(
            "server_state",
            region=self.region,
            stripe=self.stripe_name,
            server=self.name,
            state=state,
            version=self.version,
        )

    def status(self) -> dict[str, Any]:
        """What peers and the topology endpoint learn about this server."""
        meta = self.store.read_meta()
        return {
            "name": self.name,
            "state": self.state,
            "version": self.version,
            "group": self.stripe["name"],
            "epoch": max(self.epoch, int(meta["epoch"])),
            "was_active": bool(meta["was_active"]) or self.state == self.ACTIVE,
            "index": self.me["index"],
        }

    def shutdown_refusal(self, force: bool) -> str | None:
        """Why a non-forced stop is refused (an ACTIVE without a PASSIVE-STANDBY), or None.

        The product's sentence (its management agent's local shutdown resource, production
        mode); ENGINE.md, Management REST."""
        if force or self.state != self.ACTIVE or self.replicator.standby_names():
            return None
        return "No passive server available in Standby mode. Use force option to stop the server."

    def request_stop(self, code: int) -> None:
        """Ask the life cycle to stop with ``code`` (from REST, a signal, or a fatal error)."""
        if not self.stopping.is_set():
            self.exit_code = code
            self.stopping.set()
        sock = self.active_sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _serve_group(self, conn: socket.socket, stream: BinaryIO) -> None:
        for message in tccommon.messages(stream):
            if message.get("op") == "status":
                conn.sendall(tccommon.encode(self.status()))
            elif message.get("op") == "join":
                self.replicator.serve_join(conn, stream, message)
                return

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Check the license, bind every port, enter START-STATE (raises StartupError)."""
        logs = self._path(self.me["logs"])
        logs.mkdir(parents=True, exist_ok=True)
        self.log_file = logs / "terracotta-server.log"
        self.log(
            f"Terracotta Enterprise {self.version}; server {self.name}, "
            f"group {self.stripe['name']}, config {self.config_path}"
        )
        # What a JVM takes to boot before it checks its license and binds its ports.
        tccommon.boot(
            self,
            f"Server {self.name} {self.version} crashed at start: "
            "java.lang.ExceptionInInitializerError",
        )
        if tccommon.fault(self.sandbox, "restart-loop", self.version, self.name):
            # Sandbox fault restart-loop: asks its start script for a restart, every time.
            raise RestartRequested(
                f"Server {self.name} {self.version} requested a restart at start "
                "(sandbox fault restart-loop)"
            )
        problem = tckey.check_license(self.kit_root / tckey.LICENSE_FILE_NAME, self.version)
        if problem:
            raise tccommon.StartupError(problem)
        self.listeners.listen(self.me["tsa_port"], functools.partial(tctsa.serve_tsa, self))
        self.listeners.listen(self.me["group_port"], self._serve_group)
        self.listeners.listen(self.me["jmx_port"], lambda conn, stream: None)
        self._httpd = tccommon.bind_http(
            lambda: tcrest.start_rest(self), self.me["host"], self.me["management_port"], "server"
        )
        self.store.data_dir.mkdir(parents=True, exist_ok=True)
        self.set_state(self.START)

    def run(self) -> int:
        """The life cycle until stopped; returns the exit code."""
        deadline = time.monotonic() + self.election_s
        while not self.stopping.is_set():
            statuses = tcelect.peer_statuses(self)
            active = next((s for s in statuses.values() if s["state"] == self.ACTIVE), None)
            if active is not None:
                if tcpassive.join(self, active) == "takeover":
                    self._become_active(recovered=False)
                    break
            elif (
                self.state == self.START
                and time.monotonic() >= deadline
                and tcelect.wins(self, statuses)
            ):
                self._become_active(recovered=self.store.persistent)
                break
            self.stopping.wait(POLL_S)
        self.stopping.wait()
        return self.exit_code

    def _become_active(self, recovered: bool) -> None:
        with self.cond:
            if self.stopping.is_set():
                return
            if recovered and self.store.has_disk_data():
                count = self.store.recover()
                self.log(f"Recovered {count} entries from {self.store.objectdb}")
            elif self.state == self.START:
                self.store.start_empty()
            self.epoch = max(self.epoch, int(self.store.read_meta()["epoch"])) + 1
            self.store.write_meta(self.epoch, was_active=True)
        self.set_state(self.ACTIVE)

    def finish(self) -> None:
        """Leave the stripe: close links and listeners, journal STOP-STATE."""
        self.replicator.close_all()
        self.listeners.close()
        if self._httpd is not None:
            self._httpd.server_close()
        self.store.close()
        if self.state:
            self.set_state(self.STOP)


class RestartRequested(Exception):
    """The server asks its start script to relaunch it (exit 11) before reaching a state."""


def _parse_args(argv: list[str]) -> tuple[str, str]:
    config, name = "", ""
    args = iter(argv)
    for arg in args:
        if arg in ("-f", "--config"):
            config = next(args, "")
        elif arg in ("-n", "--name"):
            name = next(args, "")
    if not config:
        config = "tc-config.xml"
    return config, name


def main(argv: list[str]) -> int:
    """Run one server; returns its exit code."""
    config, name = _parse_args(argv)
    kit_root = Path(__file__).resolve().parent.parent.parent
    sandbox = tccommon.find_sandbox(Path(config).resolve().parent) or tccommon.find_sandbox(
        kit_root
    )
    journal = (sandbox or {}).get("journal")
    version = tccommon.read_properties(kit_root / "server" / "lib" / "tc-version.properties").get(
        "version", "0.0.0"
    )
    pid_file = tccommon.write_pid_file(sandbox, "server", name or "server")
    tccommon.journal_append(
        journal, "server_process", server=name, action="start", version=version, exit_code=None
    )
    server: Server | None = None
    code = 0
    try:
        server = Server(Path(config), name, kit_root)
        signal.signal(signal.SIGTERM, lambda *_: server.request_stop(143) if server else None)
        server.start()
        code = server.run()
        slow = tccommon.fault(server.sandbox, "slow-stop", server.name)
        if slow:
            # Sandbox fault slow-stop: still up (and answering) while it "flushes".
            seconds = float(slow.get("seconds", 5.0))
            server.log(f"Stopping; flushing takes {seconds:g} s (sandbox fault slow-stop)")
            time.sleep(seconds)
    except RestartRequested as exc:
        if server is not None:
            server.log(f"WARN - {exc}")
        code = tcpassive.EXIT_RESTART
    except tccommon.StartupError as exc:
        line = f"FATAL - {exc}"
        if server is not None:
            server.log(line)
        else:
            sys.stdout.write(line + "\n")
        code = tccommon.EXIT_STARTUP
    finally:
        if server is not None:
            server.finish()
        tccommon.journal_append(
            journal, "server_process", server=name, action="exit", version=version, exit_code=code
        )
        tccommon.remove_pid_file(pid_file)
    return code


if __name__ == "__main__":
    exit_code = main(sys.argv[1:])
    sys.stdout.flush()
    # Daemon threads may sit in accept() or in a peer's read; nothing is left to flush.
    os._exit(exit_code)
