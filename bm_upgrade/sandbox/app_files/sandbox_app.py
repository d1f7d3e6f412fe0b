"""The sandbox's client application: writes to every stripe and keeps a ledger of its acks.

Installed as ``<app>/bin/app.py`` and run by ``<app>/bin/app.sh start`` with the system
python3. Like a Java application it loads its cache library from the jars in ``<app>/lib``
(zip files put on ``sys.path``), so replacing the jars upgrades the client. Configuration:
``<app>/etc/app.json``. Exit codes: 0 stopped, 2 refused by a server of another minor version
(or the sandbox fault client-start-fails), 3 no active within the reconnect window.

Sandbox faults it reads (``DIR/faults``, through the toolkit jar's ``tccommon.fault``):
``client-start-fails`` (it exits 2 at start on any client library but the one the fault
names) and ``client-stop-hangs`` (``app.py hold-stop``, which ``app.sh stop`` runs first,
blocks while the fault is in force).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any


def _load_library(lib: Path) -> tuple[Any, Any]:
    for jar in sorted(lib.glob("*.jar")):
        sys.path.insert(0, str(jar))
    return importlib.import_module("tcehcache"), importlib.import_module("tcclient")


def _fault(app_dir: Path, kind: str, name: str) -> dict[str, Any] | None:
    """The sandbox fault ``kind`` on this client, read with the jars' own reader."""
    for jar in sorted((app_dir / "lib").glob("*.jar")):
        sys.path.insert(0, str(jar))
    try:
        tccommon = importlib.import_module("tccommon")
    except ImportError:
        return None
    found: dict[str, Any] | None = tccommon.fault(tccommon.find_sandbox(app_dir), kind, name)
    return found


def hold_stop(app_dir: Path) -> int:
    """``app.sh stop``'s first step: while the sandbox fault client-stop-hangs names this
    client, the stop hangs (the application keeps running); once cleared it goes on."""
    config = json.loads((app_dir / "etc" / "app.json").read_text(encoding="utf-8"))
    said = False
    while _fault(app_dir, "client-stop-hangs", str(config["name"])) is not None:
        if not said:
            print("stopping hangs (sandbox fault client-stop-hangs)", flush=True)
            said = True
        time.sleep(0.1)
    return 0


class App:
    """Writers (one thread per stripe) and the ledger."""

    def __init__(self, app_dir: Path) -> None:
        self.app_dir = app_dir
        self.config: dict[str, Any] = json.loads(
            (app_dir / "etc" / "app.json").read_text(encoding="utf-8")
        )
        self.tcehcache, self.tcclient = _load_library(app_dir / "lib")
        self.tccommon = importlib.import_module("tccommon")
        self.name = str(self.config["name"])
        self.stopping = threading.Event()
        stripes = [
            (s["name"], [(h, int(p)) for h, p in s["servers"]]) for s in self.config["stripes"]
        ]
        self.cache = self.tcehcache.ClusteredCache(
            stripes, client=self.name, stopping=self.stopping
        )
        self.version = str(self.cache.version)
        self.failure: Any = None
        self.acked = 0

    def log(self, message: str) -> None:
        """One line on the application's console."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        sys.stdout.write(f"{stamp} {self.name}: {message}\n")
        sys.stdout.flush()

    def _writer(self, index: int) -> None:
        stripes = len(self.cache.stripes)
        interval = stripes / max(float(self.config.get("rate_per_s", 20)), 0.1)
        number = 0
        due = time.monotonic()
        while not self.stopping.is_set():
            key = f"{self.name}:{number}"
            number += 1
            if self.cache.stripe_of(key) != index:
                continue
            value = f"{self.name}-{number}-{time.time():.3f}"
            try:
                stripe = self.cache.put(key, value)
            except self.tcclient.ClientError as exc:
                if not self.stopping.is_set():
                    self.failure = exc
                    self.stopping.set()
                return
            self.tccommon.append_line(
                self.config["ledger"],
                {
                    "t": time.time(),
                    "key": key,
                    "value": value,
                    "stripe": stripe,
                    "region": self.config.get("region", ""),
                    "client": self.name,
                },
            )
            self.acked += 1
            due += interval
            self.stopping.wait(max(0.0, due - time.monotonic()))

    def run(self) -> int:
        """Write until SIGTERM or a failure; returns the exit code."""
        journal = self.config.get("journal")
        self.tccommon.journal_append(
            journal, "client_process", client=self.name, action="start", version=self.version
        )
        self.log(f"started with client library {self.version}")
        refused = _fault(self.app_dir, "client-start-fails", self.name)
        if refused is not None and refused.get("version") != self.version:
            reason = (
                f"cannot start on client library {self.version} (sandbox fault client-start-fails)"
            )
            self.log(f"FATAL - {reason}")
            self.cache.close()
            self.tccommon.journal_append(
                journal,
                "client_process",
                client=self.name,
                action="stop",
                version=self.version,
                exit_code=2,
                reason=reason,
            )
            return 2
        threads = [
            threading.Thread(target=self._writer, args=(i,), daemon=True)
            for i in range(len(self.cache.stripes))
        ]
        for thread in threads:
            thread.start()
        self.stopping.wait()
        for thread in threads:
            thread.join(timeout=3.0)
        self.cache.close()
        code = 0
        reason = "stopped"
        if self.failure is not None:
            code, reason = int(self.failure.code), str(self.failure)
            self.log(f"ERROR: {reason}")
        self.log(f"stopped after {self.acked} acknowledged writes")
        self.tccommon.journal_append(
            journal,
            "client_process",
            client=self.name,
            action="stop",
            version=self.version,
            exit_code=code,
            reason=reason,
        )
        return code


def main() -> int:
    """Run the application of the folder this file is installed in (``hold-stop``: see
    :func:`hold_stop`)."""
    app_dir = Path(__file__).resolve().parent.parent
    if sys.argv[1:] == ["hold-stop"]:
        return hold_stop(app_dir)
    app = App(app_dir)
    signal.signal(signal.SIGTERM, lambda *_: app.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: app.stopping.set())
    pid_file = app.tccommon.write_pid_file(
        {"dir": app.config.get("sandbox_dir")}, "client", app.name
    )
    try:
        return App.run(app)
    finally:
        app.tccommon.remove_pid_file(pid_file)


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    os._exit(exit_code)  # a writer may still sit in a socket read; nothing is left to flush
