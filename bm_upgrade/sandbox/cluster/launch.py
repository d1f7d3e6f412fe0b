"""Programs of `sandbox up` started as the login user, and the waits until they answer.

A program is started the way the tool starts one over SSH: as the login user, with the
environment an SSH login gets, detached (own session, ``nohup``, output to a log). Servers and
orchestrators get the host's JAVA_HOME on top, whatever the topology's ``java_home`` mode
(:mod:`bm_upgrade.sandbox.java`), so `sandbox up` works in every mode.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bm_upgrade.sandbox import java, logins, security, wan
from bm_upgrade.sandbox.hosts import HostPlan, OrchestratorPlan, ServerPlan
from bm_upgrade.sandbox.protocol import server_stat

LOGIN_PATH = "/usr/local/bin:/usr/bin:/bin"


class SandboxError(Exception):
    """The sandbox could not be brought up, stopped or verified; the message says where."""


def _login_env(user: str) -> dict[str, str]:
    """The environment an SSH login gets, so `up` starts programs the way the tool does."""
    home = os.path.expanduser(f"~{user}")
    return {
        "PATH": LOGIN_PATH,
        "HOME": home,
        "USER": user,
        "LOGNAME": user,
        "SHELL": "/bin/sh",
        "LANG": "C.UTF-8",
    }


def run_as(
    user: str,
    argv: list[str],
    cwd: Path,
    timeout_s: float = 30.0,
    env: dict[str, str] | None = None,
) -> str:
    """Run ``argv`` as ``user`` (login environment plus ``env``) and return its output;
    raises SandboxError on a non-zero exit."""
    switch = logins.is_root() and user != "root"
    result = subprocess.run(
        argv,
        cwd=cwd,
        env={**_login_env(user), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        stdin=subprocess.DEVNULL,
        user=user if switch else None,
        group=user if switch else None,
        extra_groups=[] if switch else None,
        start_new_session=True,
    )
    if result.returncode != 0:
        raise SandboxError(
            f"`{' '.join(argv)}` failed with exit code {result.returncode}: "
            f"{(result.stderr or result.stdout).strip()[-400:]}"
        )
    return result.stdout


def start_detached(
    argv: list[str], log: Path, user: str, cwd: Path, env: dict[str, str] | None = None
) -> int:
    """Start ``argv`` detached (own session, output to ``log``) as ``user``, with ``env`` added
    to the login environment; return its pid."""
    script = 'log=$1; shift; nohup "$@" >"$log" 2>&1 </dev/null & echo $!'
    out = run_as(user, ["/bin/sh", "-c", script, "sh", str(log), *argv], cwd=cwd, env=env)
    return int(out.strip().splitlines()[-1])


def start_server(server: ServerPlan, user: str) -> None:
    """Start one server by its kit's ``start-tc-server.sh``; its pid goes to DIR/run."""
    pid = start_detached(
        [
            str(server.install_dir / "server" / "bin" / "start-tc-server.sh"),
            "-f",
            str(server.tc_config),
            "-n",
            server.name,
        ],
        server.console_log,
        user,
        cwd=server.root,
        env=java.start_environment(server.java_home),
    )
    pid_file = server.directory / "run" / f"script-server-{server.name}.pid"
    pid_file.write_text(f"{pid}\n", encoding="ascii")


def start_wan(plan: HostPlan, user: str, deadline: float, say: Callable[[str], None]) -> None:
    """Start every orchestrator in ``wan.start_all``'s order; raises SandboxError when one
    does not reach its state before ``deadline``."""
    try:
        wan.start_all(
            plan.orchestrators, lambda orch: _start_orchestrator(orch, user), deadline, say
        )
    except TimeoutError as exc:
        raise SandboxError(str(exc)) from None


def _start_orchestrator(orch: OrchestratorPlan, user: str) -> None:
    start_detached(
        [str(orch.install_dir / "server" / "bin" / "start-wan.sh"), "-f", str(orch.wan_xml)],
        orch.console_log,
        user,
        cwd=orch.root,
        env=java.start_environment(orch.java_home),
    )


def _state(server: ServerPlan) -> str | None:
    """The server's state by its REST stat (with the sandbox's credentials when secured)."""
    auth = security.auth_for(server.directory, server.region)
    return (server_stat(server.host, server.management_port, auth=auth) or {}).get("state")


def wait_states(servers: list[ServerPlan], states: set[str], deadline: float) -> None:
    """Wait until every server's REST stat shows one of ``states``; raises SandboxError."""
    pending = list(servers)
    while pending:
        pending = [s for s in pending if _state(s) not in states]
        if not pending:
            return
        if time.monotonic() > deadline:
            server = pending[0]
            seen = _state(server) or "no answer"
            raise SandboxError(
                f"server {server.name} ({server.host}) did not reach {'/'.join(sorted(states))} "
                f"in time (state: {seen}); see {server.console_log}"
            )
        time.sleep(0.05)


def wait_clients_write(directory: Path, clients: list[str], deadline: float) -> None:
    """Wait until every client's ledger holds an acknowledged write; raises SandboxError."""
    pending = list(clients)
    while pending:
        pending = [c for c in pending if not _ledger_has_lines(directory, c)]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise SandboxError(
                f"client {pending[0]} acknowledged no write in time; see its "
                "log under its host folder"
            )
        time.sleep(0.05)


def _ledger_has_lines(directory: Path, client: str) -> bool:
    try:
        return (directory / "ledgers" / f"{client}.jsonl").stat().st_size > 0
    except FileNotFoundError:
        return False
