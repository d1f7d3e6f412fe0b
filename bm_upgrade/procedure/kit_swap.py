"""The kit swap of one stopped server (or orchestrator): its kit root replaced by the staged
target kit, keeping what the operator changed inside the old one.

:func:`install_kit`, in order, each part skipped when already done:

1. look at the kit root (its own ``server/bin/version.sh``) and the staged files; a kit root
   that exists but did not print a 4.x version is refused: the tool moves or deletes only
   what it has proven to be a kit root (a wrong ``install_dir``, a data folder inside a kit
   root are left alone);
2. check the staged tarball's sha256 against the inventory's (a staged kit may have lain
   there for days), then unpack it into the server's own work folder
   (``<parent>/.bm-upgrade-work/<server name>/``) and check its ``version.sh`` prints the
   target; a failed unpack removes the work folder, and the old kit is untouched;
3. optionally delete the server's ``dirty-objectdb-backup/dirty-objectdb-*`` folders;
4. carry what the operator changed inside the old kit into the new one (:data:`CARRIED`, and
   the inventory's tc-config when it lives inside the kit) and put the staged license key in
   the new kit root, so the new kit root holds the license before it can ever be started;
5. move the old kit root aside to ``<parent>/.bm-upgrade-previous/<name>-<version>`` (removed
   afterwards when the policy does not keep it), move the new one in its place and read its
   ``version.sh`` back.

The old kit is moved only when it exists, so a rerun after an interruption between the two
moves never deletes the only copy of the previous kit; such a rerun carries the operator's
files from the newest kept previous kit of that kit root instead. Three commands in all (the
look, the check + unpack, the swap), each a few ms on an open connection, where a host's login
can cost far more. Every value in a command is quoted.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Orchestrator, Server
from bm_upgrade.license import LICENSE_FILE_NAME
from bm_upgrade.probes import Runner, parse_version
from bm_upgrade.procedure.records import StepRecorder
from bm_upgrade.procedure.room import check_unpack_room
from bm_upgrade.remote.quoting import echo_mark, quote, shell, split_marked

WORK_DIR_NAME = ".bm-upgrade-work"
PREVIOUS_DIR_NAME = ".bm-upgrade-previous"
CARRIED = ("tc-config.xml", "server/tc-config.xml", "server/bin/setenv.sh")
"""Files an operator may have changed inside a kit root (docs/terracotta.md, Kits)."""

NOT_A_KIT = "not-a-kit"
"""The marker :func:`kit_root_guard` prints when it ends a command."""


def proven_kit(version: str | None) -> bool:
    """``version`` (what a kit root's own ``version.sh`` printed) proves a 4.x kit root."""
    return version is not None and version.split(".")[0] == "4"


def kit_root_guard(install_dir: str) -> str:
    """A command prefix that ends the command at once (exit 0, printing the marker
    :data:`NOT_A_KIT`, then what ``version.sh`` printed) unless the kit root's own
    ``server/bin/version.sh`` prints a 4.x version; costs no command of its own."""
    script = quote(posixpath.join(install_dir.rstrip("/") or "/", "server/bin/version.sh"))
    return (
        f'bm_kit=$({script} 2>/dev/null); case "$bm_kit" in '
        "*'Terracotta Enterprise 4.'[0-9]*) ;; "
        f"*) {echo_mark(NOT_A_KIT)}; printf '%s\\n' \"$bm_kit\"; exit 0;; esac; "
    )


def not_a_kit(server: Server | Orchestrator, printed: list[str], done: str) -> StepFailed:
    """The refusal for a kit root that did not prove to be a 4.x kit (``done``: what was left
    as it was, in words)."""
    said = parse_version("\n".join(printed)) or (" | ".join(printed)[:120] or "nothing")
    root = server.install_dir.rstrip("/") or "/"
    return StepFailed(
        server.name,
        f"{root}, the kit root of {server.name} on {server.host}, "
        f"is not a BigMemory Max 4.x kit (its server/bin/version.sh printed "
        f"{said}), and the tool swaps only a kit root it has proven; {done}; set "
        f"install_dir of {server.name} in the inventory to its kit root (or "
        "make that version.sh run), then rerun",
    )


@dataclass(frozen=True)
class KitSwap:
    """Where the kit swap of one server happens on its host."""

    install_dir: str
    work_dir: str
    previous_dir: str

    @classmethod
    def for_server(cls, server: Server | Orchestrator) -> KitSwap:
        root = server.install_dir.rstrip("/") or "/"
        parent = posixpath.dirname(root) or "/"
        # One work folder per server: two servers never share scratch space, even should
        # they (wrongly) share a kit root.
        return cls(
            install_dir=root,
            work_dir=posixpath.join(parent, WORK_DIR_NAME, server.name),
            previous_dir=posixpath.join(parent, PREVIOUS_DIR_NAME),
        )

    def previous_kit(self, version: str | None) -> str:
        """Where the old kit root goes (``<parent>/.bm-upgrade-previous/<name>-<version>``)."""
        base = posixpath.basename(self.install_dir)
        return posixpath.join(self.previous_dir, f"{base}-{version or 'unknown'}")

    def newest_previous(self, listing: list[str]) -> str | None:
        """The first of ``listing`` (paths, newest first) that is a previous kit of this kit
        root (``<name>-<version>`` or ``<name>-unknown`` in :attr:`previous_dir`)."""
        base = re.escape(posixpath.basename(self.install_dir))
        name = re.compile(rf"^{base}-(?:\d+(?:\.\d+)+|unknown)$")
        return next(
            (
                path
                for path in listing
                if posixpath.dirname(path) == self.previous_dir
                and name.match(posixpath.basename(path))
            ),
            None,
        )


def carried_paths(server: Server | Orchestrator) -> list[str]:
    """Paths relative to the kit root to carry into a new kit (the inventory's tc-config, or
    an orchestrator's wan.xml, too, when it lives inside the kit root)."""
    paths = list(CARRIED)
    root = server.install_dir.rstrip("/") + "/"
    config = server.tc_config if isinstance(server, Server) else server.wan_xml
    if config.startswith(root):
        rel = config[len(root) :]
        if rel and rel not in paths:
            paths.append(rel)
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


@dataclass(frozen=True)
class KitLook:
    """What one command saw of a server's kit before the swap.

    Attributes:
        printed: what the kit root's ``version.sh`` printed (non-blank lines).
        previous: when the kit root is missing, the kept previous kits of this kit root
            and anything else named like them, newest first.
    """

    printed: list[str]
    root_exists: bool
    root_license: bool
    staged_kit: bool
    staged_license: bool
    previous: list[str]

    @property
    def current(self) -> str | None:
        """The version the kit root's ``version.sh`` printed, if any."""
        return parse_version("\n".join(self.printed))


def look_at_kit(conn: Runner, swap: KitSwap, staged_kit: str, staged_license: str) -> KitLook:
    """The kit root's version, which of the kit root, its license and the staged files exist,
    and, when the kit root is missing, the previous kits kept beside it, in one command."""
    tests = {
        "root_exists": ["test", "-e", swap.install_dir],
        "root_license": ["test", "-s", posixpath.join(swap.install_dir, LICENSE_FILE_NAME)],
        "staged_kit": ["test", "-s", staged_kit],
        "staged_license": ["test", "-s", staged_license],
    }
    base = posixpath.basename(swap.install_dir)
    # Newest first by status change time, which a move (rename) sets.
    previous = (
        f"test -e {quote(swap.install_dir)} || {{ {echo_mark('previous')}; "
        f"ls -1dtc -- {quote(swap.previous_dir)}/{quote(base)}-* 2>/dev/null; }}"
    )
    script = (
        "; ".join(
            [
                echo_mark("version"),
                shell([posixpath.join(swap.install_dir, "server/bin/version.sh")]) + " 2>/dev/null",
            ]
            + [f"{shell(argv)} && {echo_mark(name)}" for name, argv in tests.items()]
            + [previous]
        )
        + "; true"
    )
    sections = split_marked(conn.run(script, check=False).stdout)
    return KitLook(
        printed=sections.get("version", []),
        previous=sections.get("previous", []),
        **{name: name in sections for name in tests},
    )


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
        StepFailed: the kit root exists but is not a proven 4.x kit, the staged kit or license
            is missing, the kit root's folder has no room for the unpacked kit, the staged
            kit's sha256 differs, the unpack failed, or the kit is not
            the target (in each case the old kit root is untouched), or the installed kit
            does not read back as the target.
        RemoteError: a command failed (the old kit root is untouched unless the swap ran).
    """
    swap = KitSwap.for_server(server)
    look = look_at_kit(conn, swap, staged_kit, staged_license)
    dirty = server if delete_backups and isinstance(server, Server) else None
    if look.current == target:
        rec.saw(f"the kit root already holds {target}")
        if not look.root_license:
            _require_staged_license(server, look, staged_license)
            conn.run(" && ".join(_license_into(staged_license, swap.install_dir)))
            rec.done(f"put the license key in {swap.install_dir}")
        if dirty is not None:
            delete_dirty_backups(conn, dirty, rec)
        return
    carry_from = _carry_source(server, swap, look, rec)
    if not look.staged_kit:
        raise StepFailed(
            server.name,
            f"the {target} kit is not staged on {server.host} "
            f"({staged_kit} is missing), so {server.name} cannot be installed; "
            "run the kit staging step again, then rerun",
        )
    _require_staged_license(server, look, staged_license)
    rec.saw(check_unpack_room(conn, server.name, swap.install_dir, staged_kit, unpacked_bytes))
    new_root = _unpack(
        conn, server, staged_kit, swap, target=target, kit_sha256=kit_sha256, timeout_s=timeout_s
    )
    if dirty is not None:
        delete_dirty_backups(conn, dirty, rec)
    aside = swap.previous_kit(look.current)
    moved = aside if look.root_exists else None
    script = _swap_script(
        swap,
        new_root,
        carried_paths(server),
        staged_license,
        carry_from=carry_from,
        aside=moved,
        keep_previous=keep_previous,
    )
    sections = split_marked(conn.run(script, timeout=timeout_s).stdout)
    if sections[""]:
        source = (
            "the old kit"
            if look.root_exists
            else f"the kept previous kit {carry_from} (the kit root was missing)"
        )
        rec.done(f"carried {', '.join(sections[''])} from {source}")
    rec.done("put the staged license key in the new kit root")
    rec.done(f"unpacked {target} into {swap.install_dir}")
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
            f"after the install, version.sh in {swap.install_dir} on "
            f"{server.host} prints {installed or 'nothing'}, not {target}; check "
            "the kit tarball, then rerun",
        )


def _carry_source(
    server: Server | Orchestrator, swap: KitSwap, look: KitLook, rec: StepRecorder
) -> str | None:
    """Where the operator's files come from: the kit root, once it proved to be a 4.x kit,
    or, when it is missing, the newest kept previous kit of it (None: there is none).

    Raises:
        StepFailed: the kit root exists but is not a proven 4.x kit (nothing was touched).
    """
    if look.root_exists:
        if not proven_kit(look.current):
            raise not_a_kit(server, look.printed, "it was neither moved nor deleted")
        rec.saw(f"the kit root holds {look.current}")
        return swap.install_dir
    newest = swap.newest_previous(look.previous)
    rec.saw(
        f"the kit root {swap.install_dir} is missing (an interrupted swap, or a new kit "
        "root); "
        + (
            f"the newest kept previous kit is {newest}"
            if newest
            else "no previous kit of it is kept"
        )
    )
    return newest


def _license_into(staged_license: str, kit_root: str) -> list[str]:
    """Commands that copy the staged license key into ``kit_root``, readable like the kit's
    other product files (0644): the staged copy is private (0600), but the server may run as
    another user than the SSH login (a service unit), and must read its license."""
    target = posixpath.join(kit_root, LICENSE_FILE_NAME)
    return [shell(["cp", "--", staged_license, target]), shell(["chmod", "0644", "--", target])]


def _swap_script(
    swap: KitSwap,
    new_root: str,
    paths: list[str],
    staged_license: str,
    *,
    carry_from: str | None,
    aside: str | None,
    keep_previous: bool,
) -> str:
    """One command: carry the operator's files from ``carry_from`` (printing each), put the
    license key in ``new_root``, move the old kit root to ``aside`` (when it exists) and the
    new one in its place, remove the old one unless kept, then (marker ``installed``) read
    the installed kit's ``version.sh``."""
    steps = [] if carry_from is None else [_carry_script(carry_from, new_root, paths)]
    steps += _license_into(staged_license, new_root)
    if aside is not None:
        steps += [
            shell(["mkdir", "-p", swap.previous_dir]),
            shell(["rm", "-rf", "--", aside]),
            shell(["mv", "--", swap.install_dir, aside]),
        ]
    steps += [
        shell(["mv", "--", new_root, swap.install_dir]),
        shell(["rmdir", "--", swap.work_dir]),
    ]
    if aside is not None and not keep_previous:
        steps.append(shell(["rm", "-rf", "--", aside]))
    steps += [
        echo_mark("installed"),
        shell([posixpath.join(swap.install_dir, "server/bin/version.sh")]),
    ]
    return " && ".join(steps)


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


def _unpack_script(staged_kit: str, work: str, kit_sha256: str | None) -> str:
    """Check the staged tarball's sha256 (when known), then unpack it into a fresh ``work``
    folder, removing that folder again when the unpack fails; prints the work folder's top
    entries, then (marker ``version``) the first one's ``version.sh``."""
    kit, folder = quote(staged_kit), quote(work)
    check = ""
    if kit_sha256:
        # The same command as remote.transfer's: openssl is fast, sha256sum the fallback.
        check = (
            f"if command -v openssl >/dev/null 2>&1; then "
            f"sum=$(openssl dgst -sha256 -r < {kit}); else sum=$(sha256sum < {kit}); "
            f'fi; sum=${{sum%% *}}; if [ "$sum" != {quote(kit_sha256.lower())} ]; then '
            f'{echo_mark("sha256")}; echo "$sum"; exit 0; fi; '
        )
    unpack = " && ".join(
        [
            shell(["rm", "-rf", "--", work]),
            shell(["mkdir", "-p", work]),
            shell(["tar", "-xzf", staged_kit, "-C", work]),
        ]
    )
    return (
        check + f"err=$( {{ {unpack}; }} 2>&1 ) || {{ {echo_mark('unpack-failed')}; "
        f"printf '%s\\n' \"$err\" | tail -n 3; rm -rf -- {folder} 2>/dev/null; "
        f"if [ -e {folder} ]; then {echo_mark('work-left')}; fi; exit 0; }}; "
        f"ls -A -- {folder}; {echo_mark('version')}; "
        # The single top folder's version.sh (more than one top folder is refused).
        f'for d in {folder}/*; do "$d/server/bin/version.sh" 2>/dev/null; break; done; '
        "true"
    )


def _unpack(
    conn: Runner,
    server: Server | Orchestrator,
    staged_kit: str,
    swap: KitSwap,
    *,
    target: str,
    kit_sha256: str | None,
    timeout_s: float,
) -> str:
    """Unpack into a fresh work folder; return the new kit root (its single top folder),
    once its ``version.sh`` printed ``target``.

    Raises:
        StepFailed: the staged kit's sha256 is not ``kit_sha256``, the unpack failed, or the
            kit is not one top folder holding ``target``; the old kit root is untouched and
            the work folder removed.
    """
    work = swap.work_dir
    sections = split_marked(
        conn.run(_unpack_script(staged_kit, work, kit_sha256), timeout=timeout_s).stdout
    )
    untouched = f"{server.name}'s old kit in {swap.install_dir} is untouched"
    if "sha256" in sections:
        found = (sections["sha256"] or ["(unreadable)"])[0]
        raise StepFailed(
            server.name,
            f"the staged kit {staged_kit} on {server.host} has "
            f"sha256 {found}, not the inventory's {kit_sha256} for {target}: it "
            f"changed after it was staged; nothing was unpacked and {untouched}; "
            "rerun to stage it again",
        )
    if "unpack-failed" in sections:
        said = " | ".join(sections["unpack-failed"]) or "no message"
        removed = (
            f"the partial work folder {work} could not be removed (remove it by hand)"
            if "work-left" in sections
            else f"the partial work folder {work} was removed"
        )
        raise StepFailed(
            server.name,
            f"unpacking {staged_kit} on {server.host} failed "
            f"({said}); {removed} and {untouched}; make room on {server.host} "
            "(or stage the kit again), then rerun",
        )
    tops = sections[""]
    version = parse_version("\n".join(sections.get("version", [])))
    if len(tops) == 1 and version == target:
        return posixpath.join(work, tops[0])
    conn.run(["rm", "-rf", "--", work], check=False)
    if len(tops) != 1:
        raise StepFailed(
            server.name,
            f"{staged_kit} on {server.host} does not hold one top "
            f"folder (found {tops}); it is not a BigMemory Max kit; the work "
            f"folder was removed and {untouched}; check kits[].url, then rerun",
        )
    raise StepFailed(
        server.name,
        f"the staged kit {staged_kit} on {server.host} is "
        f"{version or 'not a readable kit'}, not {target}; the work folder was "
        f"removed and {untouched}; check kits[] in the inventory and stage the "
        "kit again, then rerun",
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
