"""The kit swap of one stopped server (or orchestrator): its kit root replaced by the staged
target kit, keeping what the operator changed inside the old one.

:func:`install_kit`, in order, each part skipped when already done:

1. look at the kit root (its own ``server/bin/version.sh``) and the staged files
   (:mod:`~bm_upgrade.procedure.kit_look`); a kit root that exists but did not print a 4.x
   version is refused: the tool moves or deletes only what it has proven to be a kit root (a
   wrong ``install_dir``, a data folder inside a kit root are left alone);
2. check the staged tarball's sha256 against the inventory's, then unpack it into the node's
   own work folder (``<parent>/.bm-upgrade-work/<node name>/``) and check its ``version.sh``
   prints the target (:mod:`~bm_upgrade.procedure.kit_unpack`); a failed unpack removes the
   work folder, and the old kit is untouched;
3. optionally delete the server's ``dirty-objectdb-backup/dirty-objectdb-*`` folders;
4. carry what the operator changed inside the old kit into the new one (:data:`CARRIED`, and
   the inventory's tc-config when it lives inside the kit) and put the staged license key in
   the new kit root, so the new kit root holds the license before it can ever be started;
5. in the swap's own command, refuse a kit root that another process uses
   (:mod:`~bm_upgrade.procedure.kit_users`: a management console, a shell sitting in the
   folder, a tool left running), removing the unpacked kit and moving nothing; else
   move the old kit root aside to ``<parent>/.bm-upgrade-previous/<name>-<version>`` (removed
   afterwards when the policy does not keep it), move the new one in its place and read its
   ``version.sh`` back.

Every path comes from the node's :class:`~bm_upgrade.inventory.KitRoot`. The old kit is moved
only when it exists, so a rerun after an interruption between the two moves never deletes the
only copy of the previous kit; such a rerun carries the operator's files from the newest kept
previous kit of that kit root instead. Three commands in all (the look, the check + unpack,
the swap), where a host's login can cost far more. Every value in a command is quoted.
"""

from __future__ import annotations

import posixpath

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import KitRoot, Orchestrator, Server
from bm_upgrade.inventory.scripts import script_argv
from bm_upgrade.probes import Runner, parse_version
from bm_upgrade.procedure.kit_look import (
    NOT_A_KIT,
    KitLook,
    kit_root_guard,
    look_at_kit,
    not_a_kit,
    proven_kit,
)
from bm_upgrade.procedure.kit_unpack import unpack_kit
from bm_upgrade.procedure.kit_users import IN_USE, kit_in_use, parse_users, users_script
from bm_upgrade.procedure.records import StepRecorder
from bm_upgrade.procedure.room import check_unpack_room
from bm_upgrade.remote.quoting import echo_mark, quote, shell, split_marked

__all__ = [
    "CARRIED",
    "NOT_A_KIT",
    "carried_paths",
    "delete_dirty_backups",
    "install_kit",
    "kit_root_guard",
    "not_a_kit",
]

CARRIED = ("tc-config.xml", "server/tc-config.xml", "server/bin/setenv.sh")
"""Files an operator may have changed inside a kit root (docs/terracotta.md, Kits)."""


def carried_paths(node: Server | Orchestrator) -> list[str]:
    """Paths relative to the kit root to carry into a new kit (the inventory's tc-config, or
    an orchestrator's wan.xml, too, when it lives inside the kit root)."""
    paths = list(CARRIED)
    config = node.tc_config if isinstance(node, Server) else node.wan_xml
    inside = node.kit_root.relative(config)
    if inside and inside not in paths:
        paths.append(inside)
    return paths


def delete_dirty_backups(conn: Runner, server: Server, rec: StepRecorder) -> None:
    """Remove the server's dirty-objectdb backups (the guide's optional housekeeping)."""
    parent = posixpath.join(server.data_dir.rstrip("/"), "dirty-objectdb-backup")
    # The glob stays outside the quotes so the shell expands it; the folder is quoted.
    pattern = f"{quote(parent)}/dirty-objectdb-*"
    listing = conn.run(
        f'for d in {pattern}; do if [ -d "$d" ]; then echo "$d"; fi; done', check=False
    )
    found = [line for line in listing.stdout.splitlines() if line.strip()]
    if not found:
        rec.saw("no dirty-objectdb backups")
        return
    conn.run(f"rm -rf -- {pattern}")
    rec.done(f"deleted {len(found)} dirty-objectdb backup(s) under {parent}")


def install_kit(
    conn: Runner,
    server: Server | Orchestrator,
    *,
    target: str,
    staged_kit: str,
    staged_license: str,
    keep_previous: bool,
    delete_backups: bool,
    rec: StepRecorder,
    timeout_s: float = 300.0,
    kit_sha256: str | None = None,
    unpacked_bytes: int | None = None,
) -> None:
    """Make the (stopped) server's kit root hold the ``target`` kit and the license key.

    Args:
        kit_sha256: the inventory's sha256 of the ``target`` kit; the staged tarball is
            checked against it on the host right before it is unpacked (not checked when
            None).
        unpacked_bytes: the kit's unpacked size (``StagedKit.unpacked_bytes``) for the disk
            room check right before the unpack, which a re-execution of this step repeats
            (unknown: read from the staged tarball on the host).

    Raises:
        StepFailed: the kit root exists but is not a proven 4.x kit or is used by another
            process, the staged kit or license
            is missing, the kit root's folder has no room for the unpacked kit, the staged
            kit's sha256 differs, the unpack failed, or the kit is not
            the target (in each case the old kit root is untouched), or the installed kit
            does not read back as the target.
        RemoteError: a command failed (the old kit root is untouched unless the swap ran).
    """
    root = server.kit_root
    look = look_at_kit(conn, server, staged_kit, staged_license)
    dirty = server if delete_backups and isinstance(server, Server) else None
    if look.current == target:
        rec.saw(f"the kit root already holds {target}")
        if not look.root_license:
            _require_staged_license(server, look, staged_license)
            conn.run(" && ".join(_license_into(staged_license, root)))
            rec.done(f"put the license key in {root.path}")
        if dirty is not None:
            delete_dirty_backups(conn, dirty, rec)
        return
    carry_from = _carry_source(server, look, rec)
    if not look.staged_kit:
        raise StepFailed(
            server.name,
            f"the {target} kit is not staged on {server.host} "
            f"({staged_kit} is missing), so {server.name} cannot be installed; "
            "run the kit staging step again, then rerun",
        )
    _require_staged_license(server, look, staged_license)
    rec.saw(check_unpack_room(conn, server.name, root, staged_kit, unpacked_bytes))
    # One work folder per node: two nodes never share scratch space, even should they
    # (wrongly) share a kit root.
    work = root.work_dir(server.name)
    new_root = unpack_kit(
        conn, server, staged_kit, work, target=target, kit_sha256=kit_sha256, timeout_s=timeout_s
    )
    if dirty is not None:
        delete_dirty_backups(conn, dirty, rec)
    aside = root.previous_kit(look.current)
    moved = aside if look.root_exists else None
    script = _swap_script(
        server,
        work,
        new_root,
        carried_paths(server),
        staged_license,
        carry_from=carry_from,
        aside=moved,
        keep_previous=keep_previous,
    )
    sections = split_marked(conn.run(script, timeout=timeout_s).stdout)
    if IN_USE in sections:
        users, more = parse_users(sections[IN_USE])
        raise kit_in_use(server, users, more, f"the unpacked {target} kit was removed")
    if sections[""]:
        source = (
            "the old kit"
            if look.root_exists
            else f"the kept previous kit {carry_from} (the kit root was missing)"
        )
        rec.done(f"carried {', '.join(sections[''])} from {source}")
    rec.done("put the staged license key in the new kit root")
    rec.done(f"unpacked {target} into {root.path}")
    if moved is not None:
        rec.done(
            f"kept the previous kit ({look.current}) at {aside}"
            if keep_previous
            else f"removed the previous kit ({look.current})"
        )
    installed = parse_version("\n".join(sections.get("installed", [])))
    if installed != target:
        raise StepFailed(
            server.name,
            f"after the install, version.sh in {root.path} on "
            f"{server.host} prints {installed or 'nothing'}, not {target}; check "
            "the kit tarball, then rerun",
        )


def _carry_source(server: Server | Orchestrator, look: KitLook, rec: StepRecorder) -> str | None:
    """Where the operator's files come from: the kit root, once it proved to be a 4.x kit,
    or, when it is missing, the newest kept previous kit of it (None: there is none).

    Raises:
        StepFailed: the kit root exists but is not a proven 4.x kit (nothing was touched).
    """
    root = server.kit_root
    if look.root_exists:
        if not proven_kit(look.current):
            raise not_a_kit(server, look.printed, "it was neither moved nor deleted")
        rec.saw(f"the kit root holds {look.current}")
        return root.path
    newest = root.newest_previous(look.previous)
    rec.saw(
        f"the kit root {root.path} is missing (an interrupted swap, or a new kit "
        "root); "
        + (
            f"the newest kept previous kit is {newest}"
            if newest
            else "no previous kit of it is kept"
        )
    )
    return newest


def _license_into(staged_license: str, kit_root: KitRoot) -> list[str]:
    """Commands that copy the staged license key into ``kit_root``, readable like the kit's
    other product files (0644): the staged copy is private (0600), but the server may run as
    another user than the SSH login (a service unit), and must read its license."""
    target = kit_root.license
    return [shell(["cp", "--", staged_license, target]), shell(["chmod", "0644", "--", target])]


def _swap_script(
    node: Server | Orchestrator,
    work: str,
    new_root: str,
    paths: list[str],
    staged_license: str,
    *,
    carry_from: str | None,
    aside: str | None,
    keep_previous: bool,
) -> str:
    """One command: first, when another process uses the kit root, print the marker
    :data:`IN_USE` and those processes, remove the work folder and stop there (nothing of the
    kit root moved); else carry the operator's files from ``carry_from`` (printing each), put
    the license key in ``new_root``, move the old kit root to ``aside`` (when it exists) and
    the new one in its place, remove the old one unless kept, then (marker ``installed``)
    read the installed kit's ``version.sh``."""
    root = node.kit_root
    # Right before the move, in the same command: nothing can start using it in between
    # but what starts within this one command.
    in_use = (
        f"bm_users=$({users_script(root.path)}); "
        f'if [ -n "$bm_users" ]; then {echo_mark(IN_USE)}; printf \'%s\\n\' "$bm_users"; '
        f"{shell(['rm', '-rf', '--', work])}; exit 0; fi; "
    )
    steps = [] if carry_from is None else [_carry_script(carry_from, new_root, paths)]
    steps += _license_into(staged_license, KitRoot.of(new_root))
    if aside is not None:
        steps += [
            shell(["mkdir", "-p", root.previous_dir]),
            shell(["rm", "-rf", "--", aside]),
            shell(["mv", "--", root.path, aside]),
        ]
    steps += [shell(["mv", "--", new_root, root.path]), shell(["rmdir", "--", work])]
    if aside is not None and not keep_previous:
        steps.append(shell(["rm", "-rf", "--", aside]))
    steps += [echo_mark("installed"), shell(script_argv(node, "version.sh"))]
    return in_use + " && ".join(steps)


def _require_staged_license(
    server: Server | Orchestrator, look: KitLook, staged_license: str
) -> None:
    if not look.staged_license:
        raise StepFailed(
            server.name,
            f"the license key is not staged on {server.host} "
            f"({staged_license} is missing), so {server.name} cannot start on "
            "its new kit; run the kit staging step again, then rerun",
        )


def _carry_script(old_root: str, new_root: str, paths: list[str]) -> str:
    """A command copying each of ``paths`` present in the old kit root into the new one and
    printing each path it copied."""
    names = " ".join(quote(p) for p in paths)
    return (
        f"{{ old={quote(old_root)}; new={quote(new_root)}; "
        f'for f in {names}; do if [ -f "$old/$f" ]; then '
        'mkdir -p "$(dirname "$new/$f")" && cp -p "$old/$f" "$new/$f" && '
        'echo "$f" || exit 1; fi; done; }'
    )
