"""A client's own commands, the waits on its state, and the way back when a step fails.

Every failure of a client step ends with the client in a safe state, read back, and one
sentence naming the client and the way out (docs/safety.md rule 8):

- a stop command that fails or hangs (it runs under the client timeout): the jars were not
  touched; the client is found still running on them, or, when it stopped all the same,
  started again on them (:func:`after_failed_stop`);
- a failed jar swap: the client is started again on the complete set ``lib_dir`` holds, never
  on an incomplete one (:func:`after_failed_swap`);
- a client that does not start on the new jars: the jars the swap kept are put back and the
  client is started on them (:func:`after_failed_start`).

The operator's own start, stop and status commands may carry anything (paths, tokens): they
appear only in the step's log, never in a failure's text, which names the client, its host
and the exit code instead.
"""

from __future__ import annotations

import time
from typing import Literal

from bm_upgrade.errors import CommandTimeout, RemoteError, StepFailed
from bm_upgrade.inventory import Client
from bm_upgrade.probes import ClientStatus, Runner, jar_set_version, probe_client
from bm_upgrade.procedure.jarswap import SwapFailed, restore_jars
from bm_upgrade.procedure.servers import StepContext
from bm_upgrade.procedure.waits import Poll, WaitOutcome

IN_THE_LOG = "its output and the command are in this step's log"
SETTLE_S = 1.0
"""A client seen running after its start is looked at once more this much later: an
application that fails its start-up (it cannot load the new jars) has exited by then, and is
not taken for started."""


def jars_text(status: ClientStatus) -> str:
    return ", ".join(status.jars) or "no Terracotta jar"


def its_jars(status: ClientStatus) -> str:
    """``its 4.2.0 jars``, or what ``lib_dir`` holds when that is no complete set."""
    return f"its {status.jar_version} jars" if status.jar_version else jars_text(status)


def command_failure(
    ctx: StepContext, conn: Runner, client: Client, which: Literal["start", "stop"]
) -> str | None:
    """Run the client's own start or stop command (under the client timeout; the command
    goes to the log only): None when it exited 0, else what went wrong, naming the client,
    its host and the exit code."""
    command = client.start_command if which == "start" else client.stop_command
    what = f"{which} command of client {client.name} on host {client.host}"
    ctx.log.info("client %s: running its %s command: %s", client.name, which, command)
    timeout = ctx.options.timeouts.client_s
    try:
        result = conn.run(command, timeout=timeout, check=False)
    except CommandTimeout:
        return f"the {what} did not finish within {timeout:g} s"
    except RemoteError as exc:
        return f"the {what} could not be run ({type(exc).__name__}: the connection failed)"
    if result.exit_code == 0:
        return None
    ctx.log.info(
        "client %s: its %s command exited %d; stdout: %s; stderr: %s",
        client.name,
        which,
        result.exit_code,
        result.stdout.strip()[-2000:],
        result.stderr.strip()[-2000:],
    )
    return f"the {what} exited {result.exit_code}"


def run_client_command(
    ctx: StepContext, conn: Runner, client: Client, which: Literal["start", "stop"]
) -> None:
    """:func:`command_failure`, raising it.

    Raises:
        StepFailed: the command exited non-zero, did not finish, or the host could not be
            reached (the message names the client, host and exit code, not the command).
    """
    failure = command_failure(ctx, conn, client, which)
    if failure is not None:
        # No exception chained: the connection's errors quote the command line.
        raise StepFailed(
            client.name, f"{failure}; {IN_THE_LOG}: fix the application or the command, then rerun"
        )


def wait_outcome(
    ctx: StepContext, conn: Runner, client: Client, *, running: bool, version: str | None = None
) -> WaitOutcome[ClientStatus]:
    """Wait (the client timeout) until the client runs (on ``version``'s jars) or is stopped."""

    def check() -> Poll[ClientStatus]:
        status = probe_client(conn, client)
        jars_ok = version is None or status.jar_version == version
        if status.running is None:  # no status_command: the jars read back are all we know
            if jars_ok:
                return Poll(status, "no status_command")
            return Poll(
                now=f"jars {jars_text(status)}",
                hopeless=f"{client.lib_dir} holds {jars_text(status)}, not the {version} jars",
            )
        now = f"{'running' if status.running else 'stopped'} on {jars_text(status)}"
        return Poll(status, now) if status.running is running and jars_ok else Poll(now=now)

    wanted = "running" if running else "stopped"
    timeout = ctx.options.timeouts.client_s
    return ctx.wait(check, f"{client.name} {wanted}", timeout, ctx.poll_s)


def wait_client(
    ctx: StepContext, conn: Runner, client: Client, *, running: bool, version: str | None = None
) -> ClientStatus:
    """:func:`wait_outcome`, failing the step in one sentence when it did not happen."""
    outcome = wait_outcome(ctx, conn, client, running=running, version=version)
    wanted = "running" if running else "stopped"
    return outcome.value_or_fail(
        client.name,
        f"{client.name} on {client.host} is not {wanted} after {ctx.options.timeouts.client_s:g} s",
        "check the application's own log, fix it, then rerun",
    )


def start_failure(
    ctx: StepContext, conn: Runner, client: Client, version: str | None
) -> tuple[str | None, ClientStatus | None]:
    """Start the client and wait until it runs on ``version``'s jars and still does
    :data:`SETTLE_S` later: (None, its status), or (what went wrong, None)."""
    failure = command_failure(ctx, conn, client, "start")
    if failure is not None:
        return failure, None
    outcome = wait_outcome(ctx, conn, client, running=True, version=version)
    on = f" on the {version} jars" if version else ""
    where = f"client {client.name} on host {client.host}"
    if outcome.value is None:
        return f"{where} did not run{on} ({outcome.why_not()})", None
    if not outcome.value.running or SETTLE_S <= 0:  # no status_command: nothing to look at
        return None, outcome.value
    time.sleep(SETTLE_S)
    again = probe_client(conn, client)
    if again.running is not True or again.jar_version != outcome.value.jar_version:
        return f"{where} did not run{on} (it exited within {SETTLE_S:g} s of its start)", None
    return None, again


def after_failed_stop(ctx: StepContext, conn: Runner, client: Client, failure: str) -> StepFailed:
    """The error of a failed or hung stop command, after reading the client back: still
    running on its untouched jars, or stopped all the same and then started again on them."""
    fix = f"{IN_THE_LOG}: make the stop command work, then rerun"
    now = probe_client(conn, client)
    name = client.name
    if now.running:
        return StepFailed(
            name, f"{failure}; client {name} still runs on {its_jars(now)}, untouched; {fix}"
        )
    if now.running is None:
        return StepFailed(
            name,
            f"{failure}; the state of client {name} could not be read "
            f"({now.error or 'no status_command'}) and its jars were not touched; check it, {fix}",
        )
    again, _ = start_failure(ctx, conn, client, now.jar_version)
    if again is not None:
        return StepFailed(
            name,
            f"{failure}; client {name} had stopped all the same and starting it again on "
            f"{its_jars(now)} failed too ({again}): start it by hand, {fix}",
        )
    return StepFailed(
        name,
        f"{failure}; client {name} had stopped all the same and was started again on "
        f"{its_jars(now)}, untouched; {fix}",
    )


def after_failed_swap(
    ctx: StepContext, conn: Runner, client: Client, exc: SwapFailed, *, was_running: bool
) -> StepFailed:
    """The error of a failed swap, after starting the client again on its old jars when it
    ran before and they are complete; never on an incomplete set."""
    if exc.holds == "neither":
        return StepFailed(
            client.name,
            f"{exc}; client {client.name} was left stopped: put a "
            f"complete set of jars into {client.lib_dir} (its old ones, or the "
            f"target kit's apis/ jars), then rerun",
        )
    if not was_running:
        return StepFailed(
            client.name,
            f"{exc}; client {client.name} was left stopped as it "
            "was found; fix the cause and rerun",
        )
    try:
        run_client_command(ctx, conn, client, "start")
        wait_client(ctx, conn, client, running=True)
    except StepFailed as again:
        return StepFailed(
            client.name, f"{exc}; starting client {client.name} again on them failed too: {again}"
        )
    return StepFailed(
        client.name,
        f"{exc}; client {client.name} was started again on them; fix the cause and rerun",
    )


def after_failed_start(
    ctx: StepContext, conn: Runner, client: Client, failure: str, kept: str
) -> StepFailed:
    """The error of a client that did not start on the target's jars, after putting back the
    jars the swap kept in ``kept`` (the client stopped first if it runs after all) and
    starting it on them."""
    name, target = client.name, ctx.target
    fix = f"find in the application's own log why it does not start on the {target} jars"
    now = probe_client(conn, client)
    if now.running:
        stop = command_failure(ctx, conn, client, "stop")
        if stop is None:
            stopped = wait_outcome(ctx, conn, client, running=False)
            stop = None if stopped.ok else stopped.why_not()
        if stop is not None:
            return StepFailed(
                name,
                f"{failure}; it runs on {its_jars(now)} after all and could not be stopped to "
                f"put its earlier jars back ({stop}); {fix}, then rerun",
            )
    try:
        back = restore_jars(conn, client, kept, ctx.options.timeouts.client_s)
    except (SwapFailed, RemoteError) as exc:
        return StepFailed(
            name,
            f"{failure}; putting its earlier jars back failed ({exc}), so client {name} was "
            f"left stopped: put a complete set of jars into {client.lib_dir}, then rerun",
        )
    if back is None:
        return StepFailed(
            name,
            f"{failure}; no earlier jars of client {name} were kept, so it was left stopped "
            f"on {its_jars(now)}: {fix}, or put its earlier jars back by hand, then rerun",
        )
    version = jar_set_version(back)
    again, _ = start_failure(ctx, conn, client, version)
    if again is not None:
        return StepFailed(
            name,
            f"{failure}; its {version} jars were put back, but starting client {name} on them "
            f"failed too ({again}): it is stopped; {fix}, then rerun",
        )
    return StepFailed(
        name,
        f"{failure}; its {version} jars were put back and client {name} was started on "
        f"them; {fix}, then rerun",
    )
