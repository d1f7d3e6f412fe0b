"""One server on its host: stop it and start it (its kit swap is
:mod:`bm_upgrade.procedure.kit_swap`'s).

Stopping uses the kit's stop script (or the inventory's ``stop_command``), with ``--force``
only for a stripe of one server whose downtime the operator consented to, and waits until the
process is gone. It happens only while the kit root's own ``version.sh`` proves a 4.x kit
(checked in the stop's own command): the kit swap after a stop refuses a folder that did not
prove to be a kit root, so a wrong ``install_dir`` is refused while the server still runs,
not once it is down. Starting happens only once the kit
root holds the license key, detached with the kit's start script (or the inventory's
``start_command``). The node's ``java_home`` reaches the kit's scripts and the operator's own
commands alike (:mod:`bm_upgrade.inventory.scripts`). Every value in a command is quoted.
"""

from __future__ import annotations

from bm_upgrade.errors import (
    CommandFailed,
    CommandTimeout,
    RemoteError,
    SecretUnavailable,
    StepFailed,
)
from bm_upgrade.inventory import Server
from bm_upgrade.inventory.scripts import java_export, script_argv, with_script_input
from bm_upgrade.plan import ACTIVE
from bm_upgrade.probes import Runner
from bm_upgrade.procedure.context import StepContext
from bm_upgrade.procedure.kit_swap import NOT_A_KIT, kit_root_guard, not_a_kit
from bm_upgrade.procedure.records import StepRecorder
from bm_upgrade.remote.quoting import detached, echo_mark, printed_pid, quote, shell, split_marked


def console_tail(ctx: StepContext, server: Server) -> str:
    """The last lines of the server's console log, on one line (for a failure message)."""
    log_path = server.console_log_path
    try:
        out = ctx.pool.get(server.host).run(["tail", "-n", "3", "--", log_path], check=False).stdout
    except RemoteError:
        return f"(cannot read {log_path})"
    return f"last lines of {log_path}: " + (" | ".join(out.strip().splitlines()) or "(empty)")


def _with_password(server: Server, command: str) -> str:
    """The stop command with a secured server's management password on its standard input
    (inventory/scripts.py ``management_args``).

    Raises:
        StepFailed: the password cannot be read; nothing was stopped.
    """
    try:
        return with_script_input(command, server, "stop-tc-server.sh")
    except SecretUnavailable as exc:
        raise StepFailed(server.name, f"{server.name} was not stopped: {exc}") from None


def stop_server(
    ctx: StepContext, server: Server, rec: StepRecorder, *, downtime_consented: bool = False
) -> None:
    """Stop the server with its stop script and wait until it exited.

    ``--force`` is passed only with ``downtime_consented`` (a stripe of one server, whose
    upgrade the operator allowed to stop it): otherwise the product's own refusal to stop an
    ACTIVE without a PASSIVE-STANDBY mirror stays in force. The same command first checks
    that the kit root's ``version.sh`` prints a 4.x version (:func:`kit_root_guard`).

    What happened is decided from the script's exit code and a fresh look at the server (its
    probe and its host's process list), never from what the script printed, which is only
    quoted (docs/terracotta.md, Server scripts): a stop tool may print anything, and one
    version of it even exits 0 on a refusal, which the wait for the exit catches.

    Raises:
        StepFailed: the kit root is not a proven 4.x kit, the script exited non-zero and the
            server still runs (ACTIVE: the product's refusal), or the process did not exit
            within ``timeouts.stop_s``; in each case but the last nothing was stopped.
    """
    conn = ctx.pool.get(server.host)
    timeouts = ctx.options.timeouts
    timeout = timeouts.stop_s
    force = ["--force"] if downtime_consented else []
    command = kit_root_guard(server) + (
        java_export(server) + server.stop_command
        if server.stop_command
        else shell(
            script_argv(
                server, "stop-tc-server.sh", "-f", server.tc_config, "-n", server.name, *force
            )
        )
    )
    if not server.stop_command:
        command = _with_password(server, command)
    result = conn.run(command, timeout=timeout, check=False)
    refused = split_marked(result.stdout).get(NOT_A_KIT)
    if refused is not None:
        raise not_a_kit(server, refused, f"{server.name} was not stopped")
    if result.exit_code != 0:
        status = ctx.probe(server)
        # Still booting or restarting itself (its management port is not up yet): let it
        # answer, then ask again.
        if (
            not status.reachable
            and ctx.alive(server)
            and ctx.wait_state(server, None, timeouts.start_s).ok
        ):
            result = conn.run(command, timeout=timeout, check=False)
    said = _first_line(result.stdout + result.stderr, result.exit_code)
    if result.exit_code != 0:
        _after_failed_stop(ctx, server, rec, result.exit_code, said, forced=bool(force))
        return
    rec.done(f"ran the stop script (exit 0: {said})")
    outcome = ctx.wait_stopped(server, timeout)
    outcome.value_or_fail(
        server.name,
        f"{server.name} on {server.host} did not stop within {timeout:g} s of its stop script "
        f"(which exited 0 and said: {said})",
        f"check its console log {server.console_log_path}, stop it by hand, then rerun",
    )
    rec.done(f"{server.name} exited after {outcome.waited_s:.1f} s")


def _after_failed_stop(
    ctx: StepContext, server: Server, rec: StepRecorder, code: int, said: str, *, forced: bool
) -> None:
    """A stop script that exited ``code`` (non-zero), judged by the server's state now.

    Raises:
        StepFailed: the server still runs (the product refused, or the stop failed).
    """
    status = ctx.probe(server)
    if not status.reachable and not ctx.alive(server):
        rec.saw(f"{server.name} is not running (the stop script exited {code}: {said})")
        return
    state = status.state if status.reachable else "running, not answering"
    if status.reachable and status.state == ACTIVE and not forced:
        raise StepFailed(
            server.name,
            f"{server.name} on {server.host} was not stopped: its stop script exited "
            f"{code} and it is still {ACTIVE}, so the product refused to stop an ACTIVE "
            f"whose stripe has no PASSIVE-STANDBY mirror (it said: {said}); make its "
            "stripe healthy (`bm-upgrade status`), then rerun",
        )
    raise StepFailed(
        server.name,
        f"the stop script of {server.name} on {server.host} exited {code} and "
        f"{server.name} still runs ({state}; it said: {said}); check its management "
        f"port {server.management_port}, then rerun",
    )


def _first_line(output: str, exit_code: int) -> str:
    return next(
        (line.strip() for line in output.splitlines() if line.strip()), f"exit code {exit_code}"
    )


def start_server(ctx: StepContext, server: Server, rec: StepRecorder) -> None:
    """Launch the server detached, only once its kit root holds the license key; does not
    wait for it (see :meth:`~bm_upgrade.procedure.waits.Watch.wait_state`). An inventory
    ``start_command`` must return once the server is launched (``systemctl start ...``), not
    run it in the foreground.

    Raises:
        StepFailed: no license key in the kit root (nothing was started).
    """
    conn = ctx.pool.get(server.host)
    kit_root = server.kit_root
    license_path = kit_root.license
    log_path = server.console_log_path
    timeout = ctx.options.timeouts.start_s
    if server.start_command:
        output = _operators_start(ctx, server, license_path, timeout)
    else:
        command = detached(
            script_argv(server, "start-tc-server.sh", "-f", server.tc_config, "-n", server.name),
            log_path,
            cwd=kit_root.parent,
        )
        output = start_licensed(conn, command, license_path, timeout=timeout)
    if output is None:
        raise StepFailed(
            server.name,
            f"{server.name} was not started: {license_path} is "
            f"missing on {server.host}, and a server starts only once its kit "
            "root holds the license key; stage the kit again, then rerun",
        )
    if server.start_command:
        rec.done(f"ran the start command of {server.name}")
    else:
        rec.done(
            f"started {server.name} detached (pid {detached_pid(conn, output)}, console {log_path})"
        )


def _operators_start(
    ctx: StepContext, server: Server, license_path: str, timeout: float
) -> str | None:
    """The inventory's own ``start_command`` of ``server``, license-guarded: the command and
    its output go to the step's log only; a failure names the server, host and exit code.

    Raises:
        StepFailed: it exited non-zero, did not finish, or the host could not be reached.
    """
    conn = ctx.pool.get(server.host)
    ctx.log.info("%s: running its start command: %s", server.name, server.start_command)
    what = f"the start command of {server.name} on {server.host}"
    try:
        command = java_export(server) + str(server.start_command)
        return start_licensed(conn, command, license_path, timeout=timeout)
    except CommandFailed as exc:
        ctx.log.info(
            "%s: its start command exited %d; stdout: %s; stderr: %s",
            server.name,
            exc.exit_code,
            exc.stdout.strip()[-2000:],
            exc.stderr.strip()[-2000:],
        )
        failure = f"{what} exited {exc.exit_code}"
    except CommandTimeout:
        failure = f"{what} did not finish within {timeout:g} s"
    except RemoteError as exc:
        failure = f"{what} could not be run ({type(exc).__name__}: the connection failed)"
    # No exception chained: the connection's errors quote the command line.
    raise StepFailed(
        server.name,
        f"{failure}; {server.name} may not be running; its output "
        "and the command are in this step's log: fix the command, then rerun",
    )


def start_licensed(
    conn: Runner, command: str, license_path: str, timeout: float | None = None
) -> str | None:
    """Run a start ``command`` only if ``license_path`` is a non-empty file, in one command;
    returns its output, or None when the license key is missing (nothing was run).

    Raises:
        RemoteError: the start command failed.
    """
    guard = f"if ! test -s {quote(license_path)}; then {echo_mark('no-license')}; exit 0; fi; "
    result = conn.run(guard + command, timeout=timeout)
    if "no-license" in split_marked(result.stdout):
        return None
    return result.stdout


def detached_pid(conn: Runner, output: str) -> int:
    """The pid a :func:`~bm_upgrade.remote.quoting.detached` command printed last.

    Raises:
        CommandFailed: it printed no pid.
    """
    pid = printed_pid(output)
    if pid is None:
        raise CommandFailed(
            conn.host, "start", 0, output, f"expected a pid on stdout, got {output!r}"
        )
    return pid
