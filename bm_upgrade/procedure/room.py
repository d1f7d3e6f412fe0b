"""Disk room for the kit, checked once the kit's size is known (after the fetch) and before
anything is stopped: for every host when the kit is staged, and again for one kit root right
before its unpack (a re-execution from a failed stripe step does not stage again).

What a host needs, per filesystem:

- the staged tarball, less what of it is already there;
- one unpacked kit (the tar stream's length) per kit root swapped while its previous kit still
  takes its place. With ``keep_previous_kit`` every previous kit stays, so each kit root of the
  host still to be swapped needs room for a whole new kit; without it each previous kit is
  removed right after its swap, so only the kit roots swapped at the same time do (stripes
  side by side up to ``parallel_stripes``; a host's orchestrators all at once).

A check that cannot read a number fails: it never counts as passed.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory, KitRoot, Orchestrator, Server
from bm_upgrade.plan import PlanOptions
from bm_upgrade.probes import Runner
from bm_upgrade.remote.quoting import echo_mark, quote, split_marked

_CHUNK = 1 << 20


def unpacked_size(tarball: Path) -> int:
    """The kit's size once unpacked, in bytes: the length of its tar stream (every file plus
    tar's headers), read through rather than from gzip's ISIZE, which wraps at 4 GiB. A file
    that is not gzip counts as its own size."""
    with tarball.open("rb") as raw:
        if raw.read(2) != b"\x1f\x8b":
            return tarball.stat().st_size
    total = 0
    with gzip.open(tarball, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            total += len(chunk)
    return total


@dataclass(frozen=True)
class Need:
    """Bytes to be written under ``folder`` and what they are, in words."""

    folder: str
    bytes: int
    what: str


@dataclass(frozen=True)
class Free:
    """A folder's filesystem (its mount point) and the bytes free there."""

    mount: str
    bytes: int


def kits_needed(
    servers: int, orchestrators: int, *, keep_previous: bool, parallel_stripes: int
) -> int:
    """How many new kits a filesystem holds at once beside their previous kits."""
    if keep_previous:
        return servers + orchestrators
    # Servers and orchestrators are never swapped at the same time (orchestrators last).
    return max(min(servers, max(1, parallel_stripes)), orchestrators)


def free_space(
    conn: Runner, folders: list[str], before: str = ""
) -> tuple[dict[str, Free | str], list[str]]:
    """Per folder, its filesystem and free bytes, or why they cannot be read; and the output
    lines of the ``before`` script run first in the same command."""
    script = "; ".join(
        [before] * bool(before)
        + [
            # A folder not made yet (a work folder's parent): its nearest existing ancestor.
            f'{echo_mark(str(i))}; d={quote(f)}; while [ ! -e "$d" ]; do '
            'd=$(dirname -- "$d"); done; df -Pk -- "$d" 2>&1 | tail -n 1'
            for i, f in enumerate(folders)
        ]
    )
    sections = split_marked(conn.run(script, timeout=30.0, check=False).stdout)
    found: dict[str, Free | str] = {}
    for i, folder in enumerate(folders):
        line = " ".join(sections.get(str(i), [])) or "no output"
        fields = line.split()
        if len(fields) >= 6 and fields[3].isdigit():
            found[folder] = Free(" ".join(fields[5:]), int(fields[3]) * 1024)
        else:
            found[folder] = f"cannot read the free space of {folder} ({line})"
    return found, sections[""]


def shortages(host: str, needs: list[Need], free: Mapping[str, Free | str]) -> list[str]:
    """One sentence per filesystem of ``host`` without room for what goes there (empty: all
    fit; a folder whose free space is unknown is a shortage)."""
    problems: list[str] = []
    by_mount: dict[str, tuple[Free, list[Need]]] = {}
    for need in needs:
        where = free.get(need.folder, f"cannot read the free space of {need.folder}")
        if isinstance(where, str):
            problems.append(f"{host}: {where}")
            continue
        by_mount.setdefault(where.mount, (where, []))[1].append(need)
    for room, group in by_mount.values():
        total = sum(n.bytes for n in group)
        if total > room.bytes:
            folders = ", ".join(dict.fromkeys(n.folder for n in group))
            what = " + ".join(f"{n.what} in {n.folder}" for n in group if n.bytes)
            problems.append(
                f"{host}: {folders} ({room.mount}) has {_size(room.bytes)} free, "
                f"the kit needs {_size(total)} ({what})"
            )
    return problems


def describe(host: str, needs: list[Need], free: Mapping[str, Free | str]) -> str:
    """What the check saw on ``host``, for the log: free and needed bytes per filesystem."""
    seen: dict[str, list[int]] = {}
    for need in needs:
        where = free.get(need.folder)
        if isinstance(where, Free):
            seen.setdefault(where.mount, [where.bytes, 0])[1] += need.bytes
    return f"{host}: " + "; ".join(
        f"{mount}: {_size(f)} free, {_size(n)} needed" for mount, (f, n) in seen.items()
    )


def room_needs(
    inventory: Inventory,
    host: str,
    folder: str,
    *,
    tarball_missing: int,
    unpacked: int,
    options: PlanOptions | None,
    pending: Collection[str] | None,
) -> list[Need]:
    """What staging and the kit swaps will write on ``host`` : the missing
    part of the tarball in ``folder``, and the new kits beside the kit roots of the nodes in
    ``pending`` (None: every node) still to be swapped."""
    needs = [Need(folder, tarball_missing, f"the staged tarball ({tarball_missing} bytes)")]

    def parents(nodes: Iterable[Server | Orchestrator]) -> Counter[str]:
        """How many of ``nodes`` still to swap on ``host`` have their kit root in each
        folder."""
        return Counter(
            node.kit_root.parent
            for node in nodes
            if node.host == host and (pending is None or node.name in pending)
        )

    servers = parents(server for _, _, server in inventory.servers())
    orchestrators = parents(orch for _, orch in inventory.orchestrators())
    keep = options.keep_previous_kit if options is not None else True
    parallel = options.parallel_stripes if options is not None else 1
    for parent in dict.fromkeys([*servers, *orchestrators]):
        count = kits_needed(
            servers[parent], orchestrators[parent], keep_previous=keep, parallel_stripes=parallel
        )
        kept = "the previous kits kept" if keep else "each previous kit removed after its swap"
        needs.append(
            Need(parent, count * unpacked, f"{count} unpacked kit(s) of {unpacked} bytes, {kept}")
        )
    return needs


def check_unpack_room(
    conn: Runner, node: str, kit_root: KitRoot, staged_kit: str, unpacked_bytes: int | None = None
) -> str:
    """Right before a kit root's unpack: its parent folder (where the work folder is) has
    room for the unpacked kit; returns what it saw, in words (for the step's record). One
    command.

    Args:
        unpacked_bytes: the kit's unpacked size (``StagedKit.unpacked_bytes``); when unknown,
            the staged tarball's gzip ISIZE (its last four bytes), but never less than the
            tarball itself.

    Raises:
        StepFailed: no room, or the free space cannot be read (nothing was changed).
    """
    parent = kit_root.parent
    isize = (
        f"wc -c < {quote(staged_kit)}; tail -c 4 -- {quote(staged_kit)} | od -An -tu1"
        if unpacked_bytes is None
        else ""
    )
    free, before = free_space(conn, [parent], before=isize)
    if unpacked_bytes is None:
        unpacked_bytes = _isize(before)
    if unpacked_bytes is None:
        raise StepFailed(
            node,
            f"cannot read the size of the staged kit {staged_kit} on "
            f"{conn.host}, so the disk room for {node}'s unpack is not known; "
            "nothing was changed; run the kit staging step again, then rerun",
        )
    needs = [Need(parent, unpacked_bytes, f"the unpacked kit of {node}")]
    short = shortages(conn.host, needs, free)
    if short:
        raise StepFailed(
            node,
            f"not enough disk room to unpack the kit for {node}: "
            f"{short[0]}; nothing was changed; free space there (old kits in "
            ".bm-upgrade-previous, dirty-objectdb backups), then rerun",
        )
    return describe(conn.host, needs, free)


def _isize(lines: list[str]) -> int | None:
    """The unpacked size from ``wc -c`` and ``od`` of a gzip file's last four bytes."""
    words = " ".join(lines).split()
    if len(words) != 5 or not all(w.isdigit() for w in words):
        return None
    size, tail = int(words[0]), bytes(int(w) for w in words[1:])
    return max(size, int.from_bytes(tail, "little"))


def _size(count: int) -> str:
    return f"{count} bytes ({count / (1 << 20):.1f} MiB)"
