"""The kit staged, with the license key, on every host that needs it, before anything is
stopped (docs/safety.md rule 1).

Staging puts ``<kit file>`` and ``terracotta-license.key`` in a host's staging folder
(:attr:`KitRoot.staging <bm_upgrade.inventory.KitRoot.staging>`, beside the host's first kit
root), once per host; the upgrade steps unpack from there. The folder is private to the login
user (0700, the key 0600); staging first checks every host has disk room for the kit
(procedure/room.py), and a successful run removes the staging folders again
(:func:`clean_staging`).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory, Kit, KitRoot, Orchestrator, Server
from bm_upgrade.inventory.kitroot import LICENSE_FILE_NAME, STAGING_DIR_NAME
from bm_upgrade.plan import PlanOptions
from bm_upgrade.procedure.kit.fetch import kit_file_name
from bm_upgrade.procedure.kit_unpack import unpack_kit
from bm_upgrade.procedure.room import (
    Need,
    describe,
    free_space,
    room_needs,
    shortages,
    unpacked_size,
)
from bm_upgrade.remote import Connection, HostPool
from bm_upgrade.remote.quoting import quote, shell

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StagedKit:
    """Where a host holds the staged kit and license key.

    Attributes:
        unpacked_bytes: the kit's size once unpacked (for the room check before an unpack).
    """

    host: str
    kit_path: str
    license_path: str
    kit_action: str
    unpacked_bytes: int | None = None


def staging_targets(inventory: Inventory) -> dict[str, str]:
    """Host -> staging folder, for every host with a server, orchestrator or client.

    A host's first node (servers, then orchestrators, then clients) decides where its one
    staged copy goes: beside its kit root, or beside a client's lib folder (a client has no
    kit root).
    """
    folders = [(s.host, s.kit_root.staging) for _, _, s in inventory.servers()]
    folders += [(o.host, o.kit_root.staging) for _, o in inventory.orchestrators()]
    folders += [(c.host, KitRoot.of(c.lib_dir).staging) for _, c in inventory.clients()]
    targets: dict[str, str] = {}
    for host, folder in folders:
        targets.setdefault(host, folder)
    return targets


def stage_kit(
    pool: HostPool,
    inventory: Inventory,
    kit: Kit,
    kit_path: Path,
    license_path: Path,
    *,
    options: PlanOptions | None = None,
    pending: Collection[str] | None = None,
    unpacked_bytes: int | None = None,
) -> dict[str, StagedKit]:
    """Check every host has disk room for the kit, then upload the kit and the license key to
    every host that needs them, once per host, into a folder only the login user can read.

    Identical files already there are skipped; partial ones are resumed.

    Args:
        options: the run's options (``keep_previous_kit``, ``parallel_stripes`` decide the room
            needed); None counts a new kit beside every kit root.
        pending: the nodes still to be swapped (None: all).
        unpacked_bytes: the kit's unpacked size (default: read from ``kit_path``).

    Raises:
        StepFailed: a host lacks disk room, or its free space cannot be read (nothing was
            uploaded anywhere), or the staged files cannot be made private.
        RemoteError: the first host that failed (the others are listed in its notes).
    """
    targets = staging_targets(inventory)
    license_file = license_path.expanduser()
    tarball = kit_path.stat().st_size
    unpacked = unpacked_size(kit_path) if unpacked_bytes is None else unpacked_bytes
    name = kit_file_name(kit)

    def look(conn: Connection) -> list[str] | str:
        folder = targets[conn.host]
        staged = posixpath.join(folder, name)
        sizes = (
            f"mkdir -p -m 700 -- {quote(folder)}; chmod 700 -- {quote(folder)}; "
            f"for f in {quote(staged)} {quote(staged + '.part')}; do "
            'echo "$(wc -c 2>/dev/null < "$f" || echo 0)"; done'
        )

        def needs_for(missing: int) -> list[Need]:
            return room_needs(
                inventory,
                conn.host,
                folder,
                tarball_missing=missing,
                unpacked=unpacked,
                options=options,
                pending=pending,
            )

        folders = list(dict.fromkeys(n.folder for n in needs_for(0)))
        free, before = free_space(conn, folders, before=sizes)
        have, part = (int(x) if x.isdigit() else 0 for x in [*before, "0", "0"][:2])
        missing = 0 if have == tarball else tarball - (part if part <= tarball else 0)
        needs = needs_for(missing)
        short = shortages(conn.host, needs, free)
        return short or describe(conn.host, needs, free)

    looked = pool.fan_out(targets, look)
    short = [p for answer in looked.values().values() if isinstance(answer, list) for p in answer]
    if short:
        raise StepFailed(
            "stage_kit",
            "disk room for the kit not confirmed: "
            + "; ".join(short)
            + "; nothing was stopped or uploaded; free space there (old kits in "
            ".bm-upgrade-previous, dirty-objectdb backups), or set "
            "keep_previous_kit false for this run, then rerun",
        )
    for answer in looked.results.values():
        log.info("disk room for kit %s: %s", kit.version, answer)

    def one(conn: Connection) -> StagedKit:
        folder = targets[conn.host]
        kit_result = conn.upload(kit_path, posixpath.join(folder, name), kit.sha256)
        lic = posixpath.join(folder, LICENSE_FILE_NAME)
        lic_result = conn.upload(license_file, lic)
        modes = conn.run(
            shell(["chmod", "700", "--", folder])
            + " && "
            + shell(["chmod", "600", "--", lic])
            + " && "
            + shell(["stat", "-c", "%a", "--", folder, lic])
        ).stdout.split()
        if modes != ["700", "600"]:
            raise StepFailed(
                conn.host,
                f"{folder} on {conn.host} has modes {modes} after "
                "chmod, not 700 for the folder and 600 for the license key; "
                "make that filesystem honour modes, then rerun",
            )
        return StagedKit(conn.host, kit_result.path, lic_result.path, kit_result.action, unpacked)

    return pool.fan_out(targets, one).values()


def prove_kit_version(
    pool: HostPool,
    inventory: Inventory,
    kit: Kit,
    staged: Mapping[str, StagedKit],
    *,
    pending: Collection[str] | None = None,
) -> None:
    """Right after staging: unpack the staged kit once, into the first node's own work
    folder (of ``pending``, the nodes still to swap; None: all; none: nothing to prove), and check
    its ``version.sh`` prints the version the inventory labels it with, before anything is
    stopped anywhere (docs/safety.md rule 1): a mislabelled kit found while installing would
    cost a mirror's stop. Once is enough: every host's copy has the same sha256. The work
    folder is removed again; the node's kit root is not touched.

    Raises:
        StepFailed: the kit is not ``kit.version`` (or not one readable kit); nothing was
            stopped.
    """
    nodes: list[Server | Orchestrator] = [s for _, _, s in inventory.servers()]
    nodes += [o for _, o in inventory.orchestrators()]
    node = next(
        (n for n in nodes if n.host in staged and (pending is None or n.name in pending)), None
    )
    if node is None:
        return
    conn = pool.get(node.host)
    work = node.kit_root.work_dir(node.name)
    try:
        unpack_kit(
            conn,
            node,
            staged[node.host].kit_path,
            work,
            target=kit.version,
            kit_sha256=kit.sha256,
            timeout_s=300.0,
        )
    except StepFailed as exc:
        raise StepFailed(
            "stage_kit", f"{exc} (checked while staging: nothing was stopped anywhere)"
        ) from exc
    conn.run(shell(["rm", "-rf", "--", work]))
    log.info("the staged kit's version.sh on %s prints %s", node.host, kit.version)


def clean_staging(pool: HostPool, inventory: Inventory) -> dict[str, str]:
    """Remove each host's staging folder (after a successful run); per host, what happened,
    in words. Only folders named ``.bm-upgrade-staging`` are removed: never a kit root, never
    the previous kits in ``.bm-upgrade-previous``. A host that fails is reported, not raised:
    the upgrade itself is done."""
    targets = {
        h: f
        for h, f in staging_targets(inventory).items()
        if posixpath.basename(f) == STAGING_DIR_NAME
    }
    done = pool.fan_out(
        targets, lambda conn: conn.run(shell(["rm", "-rf", "--", targets[conn.host]]))
    )
    said = {host: f"removed {targets[host]}" for host in done.results}
    said.update(
        {
            host: f"could not remove {targets[host]} ({exc}); remove it by hand"
            for host, exc in done.errors.items()
        }
    )
    return said
