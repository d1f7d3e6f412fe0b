"""Dagster's own programs (daemon, webserver, CLI) started by tests, and stopped by PID.

Each starts in a session of its own with SIGINT/SIGTERM at their defaults, so SIGTERM to its
process group (whose id is the PID the test started) stops it and every child it forked
(code servers, run workers). Nothing is stopped by name.
"""

from __future__ import annotations

import os
import signal
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
