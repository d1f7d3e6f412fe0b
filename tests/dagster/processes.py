"""Dagster's own programs (daemon, webserver, CLI) started by tests, and stopped by PID.

Each starts in a session of its own with SIGINT/SIGTERM at their defaults, so SIGTERM to its
process group (whose id is the PID the test started) stops it and every child it forked
(code servers, run workers). Nothing is stopped by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent


# Started from a background job, SIGINT may be ignored, and a Dagster server then ignores
# shutdown. An ignored signal stays ignored across exec, a default one stays default: this
# prelude resets both to default, then becomes the program (no preexec_fn, unsafe in threads).
_DEFAULT_SIGNALS = (
    "import os, signal, sys; "
    "[signal.signal(s, signal.SIG_DFL) for s in (signal.SIGINT, signal.SIGTERM)]; "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def start(
    program: str, args: list[str], home: Path, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``program`` (one of the venv's dagster commands) with ``DAGSTER_HOME=home``."""
    full_env = {**os.environ, "DAGSTER_HOME": str(home), **(env or {})}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", _DEFAULT_SIGNALS, str(BIN / program), *args],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM to the process group the test started, then SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=timeout)
            # The leader is gone; make sure no child of its group outlives it.
            os.killpg(proc.pid, signal.SIGKILL)
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            pass
        break
    if proc.poll() is None:
        proc.wait(timeout=timeout)


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2
) -> None:
    """Poll ``predicate`` until true; fail the test naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        found.setdefault(parent, []).append(int(entry.name))
    return found


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``: its children, theirs, and so on."""
    tree, found, todo = children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (an unreaped zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in {"Z", "X"}
