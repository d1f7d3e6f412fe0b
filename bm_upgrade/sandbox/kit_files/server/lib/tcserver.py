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
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import tccommon, tcrest
    from bm_upgrade.sandbox.kit_files.server.lib.tcactive import Replicator
    from bm_upgrade.sandbox.kit_files.server.lib.tcstore import Store
else:
    import tccommon
    import tcrest
    from tcactive import Replicator
    from tcstore import Store

EXIT_STARTUP = 2
EXIT_RESTART = 11
POLL_S = 0.05


class StartupError(Exception):
    """The server cannot start; the message is the log line saying why."""


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
        self._active_sock: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._httpd: Any = None
        try:
            self.config_text = self.config_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise StartupError(f"Cannot read the configuration {config_path}: {exc}") from None
        try:
            self.config = tccommon.parse_tc_config(self.config_text)
        except tccommon.ConfigError as exc:
            raise StartupError(f"Invalid configuration {config_path}: {exc}") from None
        found = [
            (stripe, member)
            for stripe in self.config["stripes"]
            for member in stripe["servers"]
            if member["name"] == name
        ]
        if not found:
            raise StartupError(f"Server '{name}' is not defined in {config_path}")
        self.stripe, self.me = found[0]
        self.peers = [m for m in self.stripe["servers"] if m["name"] != name]
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
        """Why a non-forced stop is refused (an ACTIVE without a PASSIVE-STANDBY), or None."""
        if force or self.state != self.ACTIVE or self.replicator.standby_names():
            return None
        return (
            f"Server {self.name} is ACTIVE-COORDINATOR and stripe {self.stripe['name']} "
            "has no mirror in PASSIVE-STANDBY; stopping it would make the stripe "
            "unavailable. Use --force to stop it anyway."
        )

    def request_stop(self, code: int) -> None:
        """Ask the life cycle to stop with ``code`` (from REST, a signal, or a fatal error)."""
        if not self.stopping.is_set():
            self.exit_code = code
            self.stopping.set()
        sock = self._active_sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # ------------------------------------------------------------ listeners

    def _listen(self, port: int, handler: Any) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.me["host"], port))
        except OSError as exc:
            sock.close()
            raise StartupError(
                f"Cannot bind {self.me['host']}:{port}: {exc.strerror}; "
                "is another server using that port?"
            ) from None
        sock.listen(64)
        self._sockets.append(sock)
        threading.Thread(target=self._accept, args=(sock, handler), daemon=True).start()

    def _accept(self, sock: socket.socket, handler: Any) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve_conn, args=(conn, handler), daemon=True).start()

    def _serve_conn(self, conn: socket.socket, handler: Any) -> None:
        try:
            with conn, conn.makefile("rb") as stream:
                handler(conn, stream)
        except (OSError, ValueError, KeyError):
            pass  # a peer or client that went away mid-message; it will reconnect

    def _serve_group(self, conn: socket.socket, stream: BinaryIO) -> None:
        while True:
            line = stream.readline(tccommon.MAX_LINE)
            if not line:
                return
            message = tccommon.decode(line)
            if message.get("op") == "status":
                conn.sendall(tccommon.encode(self.status()))
            elif message.get("op") == "join":
                self.replicator.serve_join(conn, stream, message)
                return

    def _serve_tsa(self, conn: socket.socket, stream: BinaryIO) -> None:
        first = True
        while True:
            line = stream.readline(tccommon.MAX_LINE)
            if not line:
                return
            if first and line.startswith(b"GET "):
                self._serve_config_http(conn, stream, line)
                return
            first = False
            conn.sendall(tccommon.encode(self._client_request(tccommon.decode(line))))

    def _serve_config_http(self, conn: socket.socket, stream: BinaryIO, line: bytes) -> None:
        while stream.readline(65536) not in (b"\r\n", b"\n", b""):
            pass  # skip the request headers
        path = line.split()[1].decode("ascii", "replace") if len(line.split()) > 1 else "/"
        if path.split("?")[0] == "/config":
            body, status = self.config_text.encode("utf-8"), "200 OK"
        else:
            body, status = b"Not Found\n", "404 Not Found"
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {len(body)}"
            "\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
        conn.sendall(head + body)

    def _client_request(self, message: dict[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        if self.state != self.ACTIVE:
            return {"ok": False, "error": "not-active", "state": self.state}
        if op == "hello":
            version = str(message.get("version", ""))
            if tccommon.major_minor(version) != tccommon.major_minor(self.version):
                self.log(
                    f"Refusing client {message.get('client')}: client version {version} "
                    f"is not compatible with server version {self.version}"
                )
                return {
                    "ok": False,
                    "error": "version",
                    "version": self.version,
                    "message": f"client {version} cannot connect to server "
                    f"{self.version}: different minor version",
                }
            return {
                "ok": True,
                "server": self.name,
                "group": self.stripe["name"],
                "version": self.version,
                "reconnect_window_s": self.config["reconnect_window_s"],
            }
        if op == "put":
            if self.replicator.put(str(message["key"]), str(message["value"])):
                return {"ok": True}
            return {"ok": False, "error": "not-active", "state": self.state}
        if op == "get":
            return {"ok": True, "value": self.store.data.get(str(message["key"]))}
        if op == "get_many":
            keys = [str(key) for key in message.get("keys", [])]
            return {"ok": True, "values": {key: self.store.data.get(key) for key in keys}}
        return {"ok": False, "error": "bad-request", "message": f"unknown op {op!r}"}

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
        self.stopping.wait(tccommon.boot_time_left(self.start_s))
        if tccommon.fault(self.sandbox, "crash-on-start", self.version, self.name):
            raise StartupError(
                f"Server {self.name} {self.version} crashed at start: "
                "java.lang.ExceptionInInitializerError (sandbox fault "
                "crash-on-start)"
            )
        problem = tccommon.check_license(self.kit_root / tccommon.LICENSE_FILE_NAME, self.version)
        if problem:
            raise StartupError(problem)
        self._listen(self.me["tsa_port"], self._serve_tsa)
        self._listen(self.me["group_port"], self._serve_group)
        self._listen(self.me["jmx_port"], lambda conn, stream: None)
        try:
            self._httpd = tcrest.start_rest(self)
        except OSError as exc:
            raise StartupError(
                f"Cannot bind {self.me['host']}:{self.me['management_port']}: "
                f"{exc.strerror}; is another server using that port?"
            ) from None
        self.store.data_dir.mkdir(parents=True, exist_ok=True)
        self.set_state(self.START)

    def _peer_statuses(self) -> dict[str, dict[str, Any]]:
        statuses = {}
        for peer in self.peers:
            try:
                statuses[peer["name"]] = tccommon.request(
                    peer["host"], peer["group_port"], {"op": "status"}, timeout_s=1.0
                )
            except (OSError, ValueError):
                continue
        return statuses

    def _i_win(self, statuses: dict[str, dict[str, Any]]) -> bool:
        """The election: may this START-STATE server become the active now?

        A PASSIVE-STANDBY peer is about to take over, so nobody else may. Persistent: the last
        active (highest epoch) recovers; a server that has seen a cluster but was not its active
        waits for it; fresh servers elect the first in tc-config order. Non-persistent: the
        first in tc-config order among the START-STATE servers.
        """
        if any(s["state"] == self.STANDBY for s in statuses.values()):
            return False
        mine = self.status()
        candidates = [mine] + [s for s in statuses.values() if s["state"] == self.START]
        if self.store.persistent:
            seen_cluster = any(int(c["epoch"]) > 0 for c in candidates)
            eligible = [c for c in candidates if c["was_active"] or not seen_cluster]
            if mine not in eligible:
                return False
            winner = max(
                eligible, key=lambda c: (c["was_active"], int(c["epoch"]), -int(c["index"]))
            )
        else:
            winner = min(candidates, key=lambda c: int(c["index"]))
        return bool(winner["name"] == self.name)

    def run(self) -> int:
        """The life cycle until stopped; returns the exit code."""
        deadline = time.monotonic() + self.election_s
        while not self.stopping.is_set():
            statuses = self._peer_statuses()
            active = next((s for s in statuses.values() if s["state"] == self.ACTIVE), None)
            if active is not None:
                if self._join(active) == "takeover":
                    self._become_active(recovered=False)
                    break
            elif (
                self.state == self.START and time.monotonic() >= deadline and self._i_win(statuses)
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

    def _join(self, active: dict[str, Any]) -> str:
        """Be a mirror of ``active`` until the link ends; 'takeover' when we must fail over."""
        peer = next(p for p in self.peers if p["name"] == active["name"])
        if tccommon.major_minor(str(active["version"])) != tccommon.major_minor(self.version):
            raise StartupError(
                f"Cannot join stripe {self.stripe['name']}: its active {active['name']} runs "
                f"{active['version']} and this server runs {self.version} (a different minor "
                "version)"
            )
        if self.state == self.START and self.store.has_disk_data():
            backup = self.store.move_to_dirty_backup()
            self.store.write_meta(int(self.store.read_meta()["epoch"]), was_active=False)
            self.log(
                f"Data in {self.store.objectdb} is dirty (an active is running); moved it "
                f"to {backup}; restarting"
            )
            self.event("dirty_backup", server=self.name, path=str(backup), action="created")
            self.request_stop(EXIT_RESTART)
            return "stopped"
        try:
            sock = tccommon.connect(peer["host"], peer["group_port"], 2.0)
        except OSError:
            return "retry"
        self._active_sock = sock
        sock.settimeout(None)
        self.set_state(self.UNINITIALIZED)
        # Sandbox fault no-sync: joined, but the sync never starts until the fault is cleared.
        while tccommon.fault(self.sandbox, "no-sync", self.name) and not self.stopping.wait(0.2):
            pass
        try:
            with sock, sock.makefile("rb") as stream:
                sock.sendall(
                    tccommon.encode({"op": "join", "name": self.name, "version": self.version})
                )
                self._mirror(sock, stream)
        except (OSError, ValueError, KeyError):
            pass
        finally:
            self._active_sock = None
        if self.stopping.is_set():
            return "stopped"
        return self._after_active_lost(active)

    def _mirror(self, sock: socket.socket, stream: BinaryIO) -> None:
        while True:
            line = stream.readline(tccommon.MAX_LINE)
            if not line:
                return
            message = tccommon.decode(line)
            op = message.get("op")
            if op == "rep":
                self.store.put(str(message["key"]), str(message["value"]))
                sock.sendall(tccommon.encode({"op": "ack", "seq": message["seq"]}))
            elif op == "snapshot":
                self.store.replace_all({str(k): str(v) for k, v in message["data"].items()})
                self.epoch = int(message["epoch"])
                self.store.write_meta(self.epoch, was_active=False)
                self.set_state(self.STANDBY)
                sock.sendall(tccommon.encode({"op": "synced"}))
            elif op == "refused":
                if message.get("reason") == "version":
                    raise StartupError(
                        f"The active of stripe {self.stripe['name']} runs "
                        f"{message.get('version')}; this server runs "
                        f"{self.version} (a different minor version)"
                    )
                return

    def _after_active_lost(self, old: dict[str, Any]) -> str:
        """The link to the active ended: fail over if we are a standby and it is gone."""
        if self.state != self.STANDBY:
            self.log(
                f"Lost the active {old['name']} before the sync completed; this server "
                "cannot take over and waits for an active"
            )
            return "retry"
        self.log(f"Lost the active {old['name']}; election in {self.election_s:g} s")
        if self.stopping.wait(self.election_s):
            return "stopped"
        statuses = self._peer_statuses()
        if any(s["state"] == self.ACTIVE for s in statuses.values()):
            self.set_state(self.UNINITIALIZED)  # another server won: resync from it
            return "retry"
        standbys = [self.status()] + [s for s in statuses.values() if s["state"] == self.STANDBY]
        first = min(standbys, key=lambda s: int(s["index"]))
        return "takeover" if first["name"] == self.name else "retry"

    def finish(self) -> None:
        """Leave the stripe: close links and listeners, journal STOP-STATE."""
        self.replicator.close_all()
        for sock in self._sockets:
            sock.close()
        if self._httpd is not None:
            self._httpd.server_close()
        self.store.close()
        if self.state:
            self.set_state(self.STOP)


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
    except StartupError as exc:
        line = f"FATAL - {exc}"
        if server is not None:
            server.log(line)
        else:
            sys.stdout.write(line + "\n")
        code = EXIT_STARTUP
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
