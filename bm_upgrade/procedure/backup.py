"""A stripe's data backed up before its first server stops (the guide's preparation).

For a persistent cluster the upgrade guide asks for a backup of the data first, with the
product's Database Backup Utility (docs/terracotta.md, "Database Backup Utility"):
``tools/management-console/bin/backup-data.sh -l <url> -n <name>``, run here on the stripe's
active, which writes the backup into its ``<data-backup>`` folder. Both stripe ops call
:func:`ensure_backup` before anything else, so nothing of the stripe is stopped before its
backup exists; on a re-execution a backup this run already took (same name, read back on the
host) is not taken again, and a stripe whose upgrade has begun (a server down or on the
target: something was stopped, so its backup came first) takes none.

``policy.backup_before_upgrade``: unset means on when the active's tc-config says
``<restartable enabled="true"/>``; on for a cluster that is not restartable is refused (the
utility needs restartable mode).
"""

from __future__ import annotations

import datetime
import posixpath
from collections.abc import Mapping

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Region, Server, Stripe
from bm_upgrade.inventory.scripts import script_argv, with_script_input
from bm_upgrade.inventory_checks import url_host
from bm_upgrade.plan import ACTIVE
from bm_upgrade.probes.reads import Runner
from bm_upgrade.probes.tcconfig import TcConfig, TcConfigError, parse_tc_config, resolved_path
from bm_upgrade.procedure.context import StepContext
from bm_upgrade.procedure.records import StepRecord, StepRecorder, skipped
from bm_upgrade.procedure.seen import Seen
from bm_upgrade.procedure.tcconfig_check import read_host
from bm_upgrade.remote.quoting import shell

ACTION = "backup-data"
DEFAULT_BACKUP_DIR = "data-backup"
"""Where a server writes backups when its tc-config sets no ``<data-backup>``: beside the
tc-config (docs/terracotta.md; the guide's pages disagree, see there)."""


def backup_name(run_tag: str) -> str:
    """The name of this run's backups: ``bm-upgrade-<run tag>``, or a time stamp without one."""
    # Without a run (the procedure called directly) every call takes its own backup.
    tag = run_tag or datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S-%f")
    return f"bm-upgrade-{tag}"


def _config(ctx: StepContext, active: Server) -> TcConfig:
    text = read_host(ctx.pool.get(active.host), [active.tc_config])[active.tc_config]
    try:
        if text is None:
            raise TcConfigError("it cannot be read")
        return parse_tc_config(text)
    except TcConfigError as exc:
        raise StepFailed(
            active.name,
            f"cannot read {active.tc_config} on {active.host} before the backup ({exc}); "
            "nothing was stopped; fix the file and rerun",
        ) from None


def backup_folder(active: Server, config: TcConfig) -> str | None:
    """The active's backup folder as its tc-config sets it (None: only the server can expand
    it)."""
    seen = config.servers.get(active.name)
    value = (seen.data_backup if seen else None) or DEFAULT_BACKUP_DIR
    return resolved_path(value, active.tc_config)


def ensure_backup(
    ctx: StepContext, region: Region, stripe: Stripe, seen: Mapping[str, Seen]
) -> list[StepRecord]:
    """Back up the stripe's data on its active unless the policy, the tc-config or the
    stripe's state (``seen``, the stripe op's first look) say it is not needed; the backup's
    record (empty: none wanted).

    Raises:
        StepFailed: the policy asks for a backup of a cluster that is not restartable, the
            utility failed, or the backup is not found where it was written; nothing of the
            stripe was stopped.
    """
    wanted = ctx.options.backup_before_upgrade
    if wanted is False:
        return []
    target = ctx.options.target_version
    if any(not s.running or s.node_state.version == target for s in seen.values()):
        return []  # begun: its first stop came after its backup (or none was wanted then)
    active = next((s.server for s in seen.values() if s.status.state == ACTIVE), None)
    if active is None:
        return []  # no ACTIVE to ask: the stripe's own checks refuse before any stop
    config = _config(ctx, active)
    where = f"{region.name}/{stripe.name}"
    if not config.restartable:
        if wanted:
            raise StepFailed(
                active.name,
                f"policy.backup_before_upgrade is on but {active.tc_config} on {active.host} "
                f'has no <restartable enabled="true"/>, which the backup utility needs; '
                "nothing was stopped; turn the policy off for this cluster and rerun",
            )
        return []
    rec = StepRecorder(active.name, ACTION)
    name = backup_name(ctx.run_tag)
    folder = backup_folder(active, config)
    path = posixpath.join(folder, name) if folder else None
    conn = ctx.pool.get(active.host)
    if path and _exists(conn, path):
        return [
            skipped(
                active.name, ACTION, f"stripe {where}", f"backup {path} on {active.host} exists"
            )
        ]
    rec.saw(f"stripe {where}, active {active.name}, persistent")
    scheme = "https" if active.management_security else "http"
    url = f"{scheme}://{url_host(active.host)}:{active.management_port}"
    argv = script_argv(active, "backup-data.sh", "-l", url, "-n", name)
    command = with_script_input(shell(argv), active, "backup-data.sh")
    result = conn.run(command, timeout=ctx.options.timeouts.sync_s, check=False)
    said = (result.stdout + result.stderr).strip().splitlines()
    if result.exit_code != 0:
        raise StepFailed(
            active.name,
            f"the backup of stripe {where} on {active.name} failed (backup-data.sh exited "
            f"{result.exit_code}: {said[0] if said else 'no output'}); nothing was stopped; "
            "fix it and rerun, or turn policy.backup_before_upgrade off",
        )
    if path and not _exists(conn, path):
        raise StepFailed(
            active.name,
            f"backup-data.sh reported success but {path} is not on {active.host}; nothing "
            "was stopped; check the server's <data-backup> and rerun",
        )
    rec.done(
        f"backup {name} of stripe {where} taken on {active.name}: "
        + (f"{active.host}:{path}" if path else "in the server's <data-backup> folder")
    )
    ctx.log.info("%s", rec.did[-1])
    return [rec.record()]


def _exists(conn: Runner, path: str) -> bool:
    return conn.run(shell(["test", "-d", path]), timeout=30.0, check=False).exit_code == 0
