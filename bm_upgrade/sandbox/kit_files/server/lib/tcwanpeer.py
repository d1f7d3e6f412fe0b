"""How sandbox orchestrators see each other, and what listens on wan.xml's ``<bind>``.

A real orchestrator serves no status over HTTP: ``<bind>`` is its replication port. The sandbox
keeps that shape (ENGINE.md, "WAN orchestrators"):

- ``<bind>`` accepts TCP connections (a listen check is all it gives an onlooker) and takes
  one request, ``{"op": "shutdown"}``, from ``stop-wan.sh`` (how the real stop-wan.sh reaches
  its orchestrator is not documented: assumed);
- orchestrators learn each other's state from ``DIR/run/orchestrator-<name>.state.json``, a
  file each one rewrites whenever its state changes: the sandbox's own wiring, standing in
  for the replication protocol, never read by the tool.
"""

from __future__ import annotations

import json
import os
import socketserver
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import tccommon, tcwanxml
else:
    try:  # in the kit: its lib folder is the program's path
        import tccommon
        import tcwanxml
    except ImportError:  # bm_upgrade.sandbox reading state files (sandbox/wan.py)
        from bm_upgrade.sandbox.kit_files.server.lib import tccommon, tcwanxml

REQUEST_TIMEOUT_S = 2.0


def state_path(sandbox_dir: str | os.PathLike[str], name: str) -> Path:
    """``DIR/run/orchestrator-<name>.state.json``."""
    return Path(sandbox_dir) / "run" / f"orchestrator-{name}.state.json"


def write_state(path: Path | None, state: dict[str, Any]) -> None:
    """Replace the state file at once (write a sibling, rename), so readers never see half."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    part.write_text(json.dumps(state, separators=(",", ":")), encoding="utf-8")
    os.replace(part, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(path: Path) -> dict[str, Any] | None:
    """The state an orchestrator last wrote, or None when it does not run: no file, its
    process is gone (a killed orchestrator leaves its file behind), or it said ``stopped``
    (its last word: its port is closed, it only has to exit)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("state") == "stopped":
        return None
    if not _alive(int(state.get("pid", 0) or 0)):
        return None
    return state


class _Handler(socketserver.StreamRequestHandler):
    on_shutdown: Callable[[], None]

    def handle(self) -> None:
        """One line; a shutdown request is answered and acted on, anything else dropped."""
        self.connection.settimeout(REQUEST_TIMEOUT_S)
        try:
            message = tccommon.decode(self.rfile.readline(4096))
        except (OSError, ValueError):
            return  # a listen check, or a stranger: no answer
        if message.get("op") == "shutdown":
            self.wfile.write(tccommon.encode({"ok": True}))
            self.on_shutdown()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def listen(host: str, port: int, on_shutdown: Callable[[], None]) -> socketserver.BaseServer:
    """Listen on ``host:port`` from a daemon thread (raises OSError if taken)."""
    handler = type("Handler", (_Handler,), {"on_shutdown": staticmethod(on_shutdown)})
    server = _Server((host, port), handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True
    ).start()
    return server


def config_arg(argv: list[str]) -> str:
    """The ``-f <wan.xml>`` argument (default ``wan.xml``)."""
    args = iter(argv)
    for arg in args:
        if arg in ("-f", "--config"):
            return next(args, "")
    return "wan.xml"


def stop(argv: list[str]) -> int:
    """What stop-wan.sh runs: ask the orchestrator bound as this wan.xml says to stop."""
    path = config_arg(argv)
    try:
        config = tcwanxml.parse_wan_xml(Path(path).read_text(encoding="utf-8"))
    except (OSError, tcwanxml.WanConfigError) as exc:
        print(f"Error: cannot use {path}: {exc}", file=sys.stderr)
        return 2
    host, port = config["host"], config["port"]
    try:
        answer = tccommon.request(host, port, {"op": "shutdown"}, timeout_s=5.0)
    except (OSError, ValueError):
        print(
            f"Unable to connect to host '{host}', port {port}. Are you sure there is a WAN "
            "orchestrator running there?"
        )
        return 1
    ok = answer.get("ok") is True
    print(f"Stop success. Response code {200 if ok else 500}")
    return 0 if ok else 1
