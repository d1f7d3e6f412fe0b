"""`make serve`'s script (deploy/serve.sh) started and stopped for a test, by PID."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from tests.dagster import processes
from tests.e2e.graphql import GraphQL, answers

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "deploy" / "serve.sh"


def start_serve(env: Mapping[str, str], log: Path) -> tuple[subprocess.Popen[bytes], GraphQL]:
    """deploy/serve.sh in its own session, its output in ``log``, once its webserver (on
    ``env["UI_PORT"]``) answers; stopped again (:func:`stop_serve`) if it never does."""
    with log.open("wb") as out:
        serve = subprocess.Popen(
            ["bash", str(SERVE)],
            cwd=REPO,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        ui = GraphQL(f"http://127.0.0.1:{env['UI_PORT']}")
        processes.wait_until(
            lambda: answers(f"{ui.url}/server_info") or serve.poll() is not None,
            120,
            f"the webserver (log: {log})",
            interval=0.5,
        )
        assert serve.poll() is None, log.read_text()[-3000:]
    except BaseException:
        stop_serve(serve)
        raise
    return serve, ui


def stop_serve(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to serve.sh alone (as a service manager sends it); SIGKILL to its group if it
    has not stopped everything within the timeout."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
