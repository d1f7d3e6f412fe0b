"""The client steps: stop the application, swap its Terracotta jars for the target kit's,
start it, confirm it runs on the new jars.

Clients are touched only after every server of every region runs the target and every stripe
has one ACTIVE plus PASSIVE-STANDBY mirrors (safety rule 5): :func:`upgrade_clients` checks
that itself before the first stop, whatever the caller did before.

Each client first looks at its real state (``status_command``, the toolkit jar in
``lib_dir``) and does only what is missing, so a rerun skips finished clients. The jars come
from the target kit staged on the client's host (``apis/ehcache/lib/ehcache-ee-*.jar`` and
``apis/toolkit/lib/terracotta-toolkit-runtime-ee-*.jar``).
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Sequence

from bm_upgrade.errors import BmUpgradeError, RemoteError, StepFailed
from bm_upgrade.inventory import Client
from bm_upgrade.probes import ClientStatus, probe_client
from bm_upgrade.procedure.observe import require_servers_ready
from bm_upgrade.procedure.records import StepRecord, StepRecorder, skipped
from bm_upgrade.procedure.servers import ServerOps
from bm_upgrade.procedure.waits import Poll, wait_for
from bm_upgrade.remote import Connection, quote
from bm_upgrade.window import CLIENT

JAR_GLOBS = ("ehcache-ee-*.jar", "terracotta-toolkit-runtime-ee-*.jar")
KIT_JAR_PATTERNS = ("*/apis/ehcache/lib/ehcache-ee-*.jar",
                    "*/apis/toolkit/lib/terracotta-toolkit-runtime-ee-*.jar")


def _replace_jars(ctx: ServerOps, conn: Connection, client: Client) -> str:
    """Swap the client's Terracotta jars for the staged target kit's; returns what it did."""
    kit_path, _ = ctx.staged_paths(client.host)
    lib = client.lib_dir.rstrip("/")
    scratch = posixpath.join(posixpath.dirname(kit_path), f"jars-{client.name}")
    patterns = " ".join(quote(p) for p in KIT_JAR_PATTERNS)
    old = " ".join(f"{quote(lib)}/{glob}" for glob in JAR_GLOBS)
    script = (
        f"set -e; rm -rf {quote(scratch)}; mkdir -p {quote(scratch)}; "
        f"tar -xzf {quote(kit_path)} -C {quote(scratch)} --wildcards {patterns}; "
        f"rm -f {old}; "
        f"find {quote(scratch)} -name '*.jar' -exec cp -p {{}} {quote(lib)}/ ';'; "
        f"rm -rf {quote(scratch)}; ls -1 -- {quote(lib)}"
    )
    listing = conn.run(script, timeout=ctx.inventory.policy.timeouts.client_s).stdout
    jars = [line for line in listing.splitlines()
            if line.startswith(("ehcache-ee-", "terracotta-toolkit-runtime-ee-"))]
    return f"replaced the jars in {lib} with {', '.join(jars)}"


def _wait_client(ctx: ServerOps, conn: Connection, client: Client, *, running: bool,
                 version: str | None = None) -> ClientStatus:
    timeout = ctx.inventory.policy.timeouts.client_s

    def check() -> Poll[ClientStatus]:
        status = probe_client(conn, client)
        if status.running is None:  # no status_command: trust the command's exit code
            return Poll(status, "no status_command")
        matches = status.running is running and (version is None
                                                 or status.jar_version == version)
        now = f"{'running' if status.running else 'stopped'} on {status.jar_version}"
        return Poll(status, now) if matches else Poll(now=now)

    wanted = "running" if running else "stopped"
    outcome = wait_for(check, what=f"{client.name} {wanted}", timeout_s=timeout, log=ctx.log,
                       poll_s=ctx.poll_s)
    if outcome.value is None:
        raise StepFailed(client.name, f"{client.name} on {client.host} is not {wanted}"
                         f" after {timeout:g} s ({outcome.why_not(timeout)}); check the "
                         "application's own log, fix it, then rerun")
    return outcome.value


def upgrade_client(ctx: ServerOps, client: Client) -> list[StepRecord]:
    """Upgrade one client, doing only what its real state still needs."""
    conn = ctx.pool.get(client.host)
    status = probe_client(conn, client)
    found = f"{client.name} {'running' if status.running else 'stopped'} on " \
            f"{status.jar_version or 'unknown jars'}"
    if status.running is not False and status.jar_version == ctx.target:
        return [skipped(client.name, "upgrade", found, f"already runs on the {ctx.target} jars")]
    records: list[StepRecord] = []
    try:
        if status.running is not False:
            ctx.before_disruptive(client.name, f"stop of client {client.name}", CLIENT)
            rec = StepRecorder(client.name, "stop")
            rec.saw(found)
            conn.run(client.stop_command, timeout=ctx.inventory.policy.timeouts.client_s)
            rec.done(f"ran {client.stop_command!r}")
            _wait_client(ctx, conn, client, running=False)
            records.append(rec.record())
        if status.jar_version != ctx.target:
            rec = StepRecorder(client.name, "replace-jars")
            rec.saw(f"jars of {status.jar_version}")
            rec.done(_replace_jars(ctx, conn, client))
            records.append(rec.record())
        rec = StepRecorder(client.name, "start")
        started = time.time()
        conn.run(client.start_command, timeout=ctx.inventory.policy.timeouts.client_s)
        rec.done(f"ran {client.start_command!r}")
        final = _wait_client(ctx, conn, client, running=True, version=ctx.target)
        rec.done(f"runs on the {final.jar_version or ctx.target} jars after "
                 f"{time.time() - started:.1f} s")
        records.append(rec.record())
    except RemoteError as exc:
        raise StepFailed(client.name, f"upgrading client {client.name} failed talking to "
                         f"{exc.host} ({exc}); fix the connection and rerun: finished steps "
                         "are skipped") from exc
    for record in records:
        ctx.log.info("%s", record.summary())
    return records


def upgrade_clients(ctx: ServerOps, batch: Sequence[Client]) -> list[StepRecord]:
    """Upgrade one batch of clients side by side, after checking the servers are ready.

    Raises:
        StepFailed: the servers are not ready (nothing touched), or a client failed (the
            others of the batch finished their steps; the error names every failed one).
    """
    require_servers_ready(ctx.inventory, ctx.pool, ctx.target, "clients")
    by_host: dict[str, list[Client]] = {}
    for client in batch:
        by_host.setdefault(client.host, []).append(client)

    def one_host(conn: Connection) -> list[StepRecord]:
        out: list[StepRecord] = []
        for client in by_host[conn.host]:
            out += upgrade_client(ctx, client)
        return out

    result = ctx.pool.fan_out(by_host, one_host)
    records = [r for recs in result.results.values() for r in recs]
    if result.errors:
        first: BmUpgradeError = next(iter(result.errors.values()))
        for host, exc in result.errors.items():
            if exc is not first:
                first.add_note(f"also failed on {host}: {exc}")
        raise first
    return records
