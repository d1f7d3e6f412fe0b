"""The client steps: stop the application, swap its Terracotta jars for the target kit's,
start it, confirm it runs on the new jars.

Clients are touched only after every server of every region runs the target and every stripe
has one ACTIVE plus PASSIVE-STANDBY mirrors (docs/safety.md rule 5): :func:`upgrade_clients` checks
that itself before the first stop, whatever the caller did before.

Each client first looks at its real state (``status_command``, the Terracotta jars in
``lib_dir``) and does only what is missing, so a rerun skips finished clients. The jars come
from the target kit staged on the client's host and are checked before the client is stopped;
the swap puts the new jars in before it takes the old ones out and reads ``lib_dir`` back
(:mod:`bm_upgrade.procedure.jarswap`).

The steps reach hosts only through the context's
:class:`~bm_upgrade.procedure.waits.Hosts`, so tests/unit/test_client_branches.py drives
these branches with a scripted fake host.

The operator's own start, stop and status commands may carry anything (paths, tokens): they
appear only in the step's log, never in a failure's text or a step's record, which name the
client, its host and the exit code instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import Literal

from bm_upgrade.errors import CommandTimeout, RemoteError, StepFailed
from bm_upgrade.inventory import Client
from bm_upgrade.probes import ClientStatus, Runner, probe_client
from bm_upgrade.procedure.jarswap import SwapFailed, prepare_swap, swap_jars
from bm_upgrade.procedure.observe import require_servers_ready
from bm_upgrade.procedure.records import StepRecord, StepRecorder, skipped
from bm_upgrade.procedure.servers import StepContext
from bm_upgrade.procedure.side_by_side import side_by_side
from bm_upgrade.procedure.waits import Poll
from bm_upgrade.window import CLIENT

HOSTS_AT_ONCE = 8
"""Client hosts of one batch worked on at once (one thread each; a host's clients go one
after another)."""


def _jars(status: ClientStatus) -> str:
    return ", ".join(status.jars) or "no Terracotta jar"


def run_client_command(
    ctx: StepContext, conn: Runner, client: Client, which: Literal["start", "stop"]
) -> None:
    """Run the client's own start or stop command; the command goes to the log only.

    Raises:
        StepFailed: it exited non-zero, did not finish, or the host could not be reached
            (the message names the client, host and exit code, not the command).
    """
    command = client.start_command if which == "start" else client.stop_command
    what = f"{which} command of client {client.name} on host {client.host}"
    ctx.log.info("client %s: running its %s command: %s", client.name, which, command)
    timeout = ctx.options.timeouts.client_s
    try:
        result = conn.run(command, timeout=timeout, check=False)
    except CommandTimeout:
        failure = f"the {what} did not finish within {timeout:g} s"
    except RemoteError as exc:
        failure = f"the {what} could not be run ({type(exc).__name__}: the connection failed)"
    else:
        if result.exit_code == 0:
            return
        ctx.log.info(
            "client %s: its %s command exited %d; stdout: %s; stderr: %s",
            client.name,
            which,
            result.exit_code,
            result.stdout.strip()[-2000:],
            result.stderr.strip()[-2000:],
        )
        failure = f"the {what} exited {result.exit_code}"
    # No exception chained: the connection's errors quote the command line.
    raise StepFailed(
        client.name,
        f"{failure}; its output and the command are in this "
        "step's log: fix the application or the command, then rerun",
    )


def _wait_client(
    ctx: StepContext, conn: Runner, client: Client, *, running: bool, version: str | None = None
) -> ClientStatus:
    timeout = ctx.options.timeouts.client_s

    def check() -> Poll[ClientStatus]:
        status = probe_client(conn, client)
        jars_ok = version is None or status.jar_version == version
        if status.running is None:  # no status_command: the jars read back are all we know
            if jars_ok:
                return Poll(status, "no status_command")
            return Poll(
                now=f"jars {_jars(status)}",
                hopeless=f"{client.lib_dir} holds {_jars(status)}, not the {version} jars",
            )
        now = f"{'running' if status.running else 'stopped'} on {_jars(status)}"
        return Poll(status, now) if status.running is running and jars_ok else Poll(now=now)

    wanted = "running" if running else "stopped"
    outcome = ctx.wait(check, f"{client.name} {wanted}", timeout, ctx.poll_s)
    return outcome.value_or_fail(
        client.name,
        f"{client.name} on {client.host} is not {wanted} after {timeout:g} s",
        "check the application's own log, fix it, then rerun",
    )


def _after_failed_swap(
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
        _wait_client(ctx, conn, client, running=True)
    except StepFailed as again:
        return StepFailed(
            client.name, f"{exc}; starting client {client.name} again on them failed too: {again}"
        )
    return StepFailed(
        client.name,
        f"{exc}; client {client.name} was started again on them; fix the cause and rerun",
    )


def _reason(exc: RemoteError) -> str:
    """A failure of the tool's own commands in a few words (never a whole script)."""
    if isinstance(exc, CommandTimeout):
        return f"a command did not finish within {exc.timeout_s:g} s"
    exit_code = getattr(exc, "exit_code", None)
    return f"a command exited {exit_code}" if exit_code is not None else type(exc).__name__


def upgrade_client(ctx: StepContext, client: Client) -> list[StepRecord]:
    """Upgrade one client, doing only what its real state still needs."""
    conn = ctx.pool.get(client.host)
    timeout = ctx.options.timeouts.client_s
    status = probe_client(conn, client)
    if not status.reachable:
        raise StepFailed(
            client.name,
            f"cannot read the state of client {client.name}: "
            f"{status.error}; fix it and rerun: nothing was changed",
        )
    found = f"{client.name} {'running' if status.running else 'stopped'} on {_jars(status)}"
    if status.running is not False and status.jar_version == ctx.target:
        return [skipped(client.name, "upgrade", found, f"already runs on the {ctx.target} jars")]
    if status.running and status.jar_version is None:
        raise StepFailed(
            client.name,
            f"client {client.name} on host {client.host} runs, but "
            f"{client.lib_dir} holds {_jars(status)}, not one ehcache-ee jar and "
            "one toolkit runtime jar; check lib_dir in the inventory: nothing was "
            "changed",
        )
    was_running = status.running is not False
    records: list[StepRecord] = []
    try:
        if was_running:
            ctx.before_disruptive(client.name, f"stop of client {client.name}", CLIENT)
        swap = None
        if status.jar_version != ctx.target:
            # The kit's jars are checked before the client is stopped.
            try:
                swap = prepare_swap(
                    conn, client, ctx.staged_paths(client.host)[0], ctx.target, timeout
                )
            except SwapFailed as exc:
                raise StepFailed(client.name, str(exc)) from exc
        if was_running:
            rec = StepRecorder(client.name, "stop")
            rec.saw(found)
            run_client_command(ctx, conn, client, "stop")
            rec.done("ran its stop command")
            _wait_client(ctx, conn, client, running=False)
            records.append(rec.record())
        if swap is not None:
            rec = StepRecorder(client.name, "replace-jars")
            rec.saw(f"jars {_jars(status)}")
            try:
                rec.done(swap_jars(conn, swap, timeout, ctx.log))
            except SwapFailed as exc:
                raise _after_failed_swap(ctx, conn, client, exc, was_running=was_running) from exc
            records.append(rec.record())
        rec = StepRecorder(client.name, "start")
        started = time.time()
        run_client_command(ctx, conn, client, "start")
        rec.done("ran its start command")
        final = _wait_client(ctx, conn, client, running=True, version=ctx.target)
        confirmed = (
            "runs on"
            if final.running
            else "started (no status_command to confirm it runs); lib_dir holds"
        )
        rec.done(f"{confirmed} the {final.jar_version} jars after {time.time() - started:.1f} s")
        records.append(rec.record())
    except RemoteError as exc:
        raise StepFailed.talking_to(
            client.name,
            f"upgrading client {client.name}",
            exc,
            "fix the connection and rerun: finished steps are skipped",
            why=_reason(exc),
        ) from exc
    for record in records:
        ctx.log.info("%s", record.summary())
    return records


def upgrade_clients(ctx: StepContext, batch: Sequence[Client]) -> list[StepRecord]:
    """Upgrade one batch of clients, after checking the servers are ready (docs/safety.md
    rule 5); the clients of different hosts side by side, those of one host one after
    another.

    Raises:
        StepFailed: the servers are not ready (nothing touched), or a client failed (the
            others of the batch finished their steps; the error names every failed one).
    """
    require_servers_ready(ctx.inventory, ctx.pool, ctx.target, "clients")
    by_host: dict[str, list[Client]] = {}
    for client in batch:
        by_host.setdefault(client.host, []).append(client)

    def one_host(clients: list[Client]) -> list[StepRecord]:
        return [record for client in clients for record in upgrade_client(ctx, client)]

    work = {host: partial(one_host, clients) for host, clients in by_host.items()}
    done = side_by_side(work, at_most=HOSTS_AT_ONCE).values()
    return [record for records in done.values() for record in records]
