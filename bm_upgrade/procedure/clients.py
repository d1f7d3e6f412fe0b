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

A failed stop, swap or start ends with the client running on a complete set of jars where
it can (the old ones when it does not start on the new ones), read back, and one sentence
naming it (:mod:`bm_upgrade.procedure.client_actions`). The operator's own start, stop and
status commands may carry anything (paths, tokens): they appear only in the step's log, never
in a failure's text or a step's record, which name the client, its host and the exit code
instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial

from bm_upgrade.errors import CommandTimeout, RemoteError, StepFailed
from bm_upgrade.inventory import Client
from bm_upgrade.probes import Runner, probe_client
from bm_upgrade.procedure.client_actions import (
    after_failed_start,
    after_failed_stop,
    after_failed_swap,
    command_failure,
    jars_text,
    start_failure,
    wait_client,
)
from bm_upgrade.procedure.jarswap import SwapFailed, kept_dir, prepare_swap, swap_jars
from bm_upgrade.procedure.observe import require_servers_ready
from bm_upgrade.procedure.records import StepRecord, StepRecorder, skipped
from bm_upgrade.procedure.servers import StepContext
from bm_upgrade.procedure.side_by_side import side_by_side
from bm_upgrade.window import CLIENT

HOSTS_AT_ONCE = 8
"""Client hosts of one batch worked on at once (one thread each; a host's clients go one
after another)."""


def _reason(exc: RemoteError) -> str:
    """A failure of the tool's own commands in a few words (never a whole script)."""
    if isinstance(exc, CommandTimeout):
        return f"a command did not finish within {exc.timeout_s:g} s"
    exit_code = getattr(exc, "exit_code", None)
    return f"a command exited {exit_code}" if exit_code is not None else type(exc).__name__


def _stop(ctx: StepContext, conn: Runner, client: Client, found: str) -> StepRecord:
    """Stop the client; a failed or hung stop command ends the step with nothing changed,
    the client read back (:func:`~bm_upgrade.procedure.client_actions.after_failed_stop`)."""
    rec = StepRecorder(client.name, "stop")
    rec.saw(found)
    failure = command_failure(ctx, conn, client, "stop")
    if failure is not None:
        raise after_failed_stop(ctx, conn, client, failure)
    rec.done("ran its stop command")
    wait_client(ctx, conn, client, running=False)
    return rec.record()


def _start(ctx: StepContext, conn: Runner, client: Client) -> StepRecord:
    """Start the client on the target's jars; when it does not run on them, the jars the
    swap kept are put back and it is started on those
    (:func:`~bm_upgrade.procedure.client_actions.after_failed_start`)."""
    rec = StepRecorder(client.name, "start")
    started = time.time()
    failure, final = start_failure(ctx, conn, client, ctx.target)
    if final is None:
        kept = kept_dir(ctx.staged_paths(client.host)[0], client)
        raise after_failed_start(ctx, conn, client, str(failure), kept)
    rec.done("ran its start command")
    confirmed = (
        "runs on"
        if final.running
        else "started (no status_command to confirm it runs); lib_dir holds"
    )
    rec.done(f"{confirmed} the {final.jar_version} jars after {time.time() - started:.1f} s")
    return rec.record()


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
    found = f"{client.name} {'running' if status.running else 'stopped'} on {jars_text(status)}"
    if status.running is not False and status.jar_version == ctx.target:
        return [skipped(client.name, "upgrade", found, f"already runs on the {ctx.target} jars")]
    if status.running and status.jar_version is None:
        raise StepFailed(
            client.name,
            f"client {client.name} on host {client.host} runs, but "
            f"{client.lib_dir} holds {jars_text(status)}, not one ehcache-ee jar and "
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
            records.append(_stop(ctx, conn, client, found))
        if swap is not None:
            rec = StepRecorder(client.name, "replace-jars")
            rec.saw(f"jars {jars_text(status)}")
            try:
                rec.done(swap_jars(conn, swap, timeout, ctx.log))
            except SwapFailed as exc:
                raise after_failed_swap(ctx, conn, client, exc, was_running=was_running) from exc
            records.append(rec.record())
        records.append(_start(ctx, conn, client))
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
