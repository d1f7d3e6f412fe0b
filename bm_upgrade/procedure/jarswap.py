"""Swap a client's Terracotta jars for the staged target kit's: new jars in before old out.

1. :func:`prepare_swap`, before the client is stopped: unpack the kit's two client jars
   (``apis/ehcache/lib/ehcache-ee-*.jar``, ``apis/toolkit/lib/terracotta-toolkit-runtime-ee-
   *.jar``) into a scratch folder next to the staged kit and list them and ``lib_dir``. A kit
   without exactly one of each, of the target version, is refused with nothing changed.
2. :func:`swap_jars`, once the client is stopped: copy each new jar into ``lib_dir`` under a
   temporary name (``.bm-upgrade-new-<jar>.part``: not ``*.jar``, so an application that
   loads every jar of its folder never sees a half-copied one), rename it to its own name,
   check both are files, and only then move the old Terracotta jars (the names seen in
   step 1; the application's own jars are never touched) into a folder beside the staged kit
   (:func:`kept_dir`). Every step runs under ``set -e``: any failed copy ends the command
   before an old jar is moved. Then read back: ``lib_dir`` must hold exactly the kit's two
   jars (docs/safety.md rule 10), whatever the exit code said.
3. On a failure or a wrong read-back, :func:`_recover` leaves a complete set: the new one
   when both new jars are in place and the old ones could be removed, else the old one (the
   new jars that were not there before are removed, the kept ones moved back).
   :class:`SwapFailed` says which set ``lib_dir`` holds now, or that it holds neither (the
   client must then not be started).
4. When the client does not start on the new jars, :func:`restore_jars` puts the kept jars
   back (in first, the new ones out), reads ``lib_dir`` back and removes the kept folder.

Three SSH commands on success (prepare, swap, and nothing more: the swap lists ``lib_dir``
itself), one more on a failure.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from typing import Literal

from bm_upgrade.errors import BmUpgradeError, CommandFailed, CommandTimeout, RemoteError
from bm_upgrade.inventory import Client
from bm_upgrade.probes import Runner, jar_set_version, terracotta_jars
from bm_upgrade.remote.quoting import echo_mark, quote, split_marked

KIT_JAR_PATTERNS = (
    "*/apis/ehcache/lib/ehcache-ee-*.jar",
    "*/apis/toolkit/lib/terracotta-toolkit-runtime-ee-*.jar",
)
TEMP_PREFIX = ".bm-upgrade-new-"
TEMP_SUFFIX = ".part"
KEPT_PREFIX = "previous-jars-"

JarSet = Literal["new", "old", "neither"]


class SwapFailed(BmUpgradeError):
    """The jar swap failed; ``holds`` says which complete set ``lib_dir`` holds now.

    Attributes:
        holds: ``new`` (the target's jars, complete), ``old`` (the jars it had before,
            complete) or ``neither`` (no complete set: the client must not be started).
        listing: the Terracotta jars read back from ``lib_dir`` (None: not read back).
    """

    def __init__(self, message: str, holds: JarSet, listing: list[str] | None) -> None:
        self.holds = holds
        self.listing = listing
        super().__init__(message)


@dataclass(frozen=True)
class JarSwap:
    """What one swap works with, as seen by :func:`prepare_swap`.

    Attributes:
        client: the client.
        lib: its ``lib_dir`` without a trailing slash.
        scratch: the folder holding the unpacked kit jars.
        kit_jars: jar name -> its path under ``scratch``.
        old: the Terracotta jars in ``lib_dir`` before the swap.
        kept: where the swap moves them (:func:`kept_dir`).
    """

    client: Client
    lib: str
    scratch: str
    kit_jars: dict[str, str]
    old: tuple[str, ...]
    kept: str

    @property
    def new(self) -> tuple[str, ...]:
        return tuple(self.kit_jars)

    def in_lib(self, name: str) -> str:
        return quote(posixpath.join(self.lib, name))

    def temp(self, name: str) -> str:
        return self.in_lib(f"{TEMP_PREFIX}{name}{TEMP_SUFFIX}")

    def where(self) -> str:
        return f"client {self.client.name} on host {self.client.host} ({self.lib})"

    def kept_jar(self, name: str) -> str:
        return quote(posixpath.join(self.kept, name))


def kept_dir(kit_path: str, client: Client) -> str:
    """Where a swap keeps the client's earlier Terracotta jars: beside the staged kit (the
    tool's own folder, removed after a successful run), the way back when the client does not
    start on the new ones."""
    return posixpath.join(posixpath.dirname(kit_path), f"{KEPT_PREFIX}{client.name}")


def _reason(exc: RemoteError) -> str:
    """Why a command of ours failed, in a few words (never the whole script)."""
    if isinstance(exc, CommandFailed):
        tail = exc.stderr.strip().splitlines()[-1:] or ["no stderr"]
        return f"exited {exc.exit_code}: {tail[0]}"
    if isinstance(exc, CommandTimeout):
        return f"did not finish within {exc.timeout_s:g} s"
    return f"the connection failed ({type(exc).__name__})"


def prepare_swap(
    conn: Runner, client: Client, kit_path: str, target: str, timeout: float
) -> JarSwap:
    """Unpack the staged kit's client jars next to it and check them and ``lib_dir``.

    Changes nothing the client uses (only the scratch folder).

    Raises:
        SwapFailed: the kit does not hold exactly one ehcache-ee jar and one toolkit jar of
            ``target``, or ``lib_dir`` holds a folder named like one of them (``holds`` is
            ``old``: nothing was changed).
        RemoteError: the host could not be reached.
    """
    lib = client.lib_dir.rstrip("/") or "/"
    scratch = posixpath.join(posixpath.dirname(kit_path), f"jars-{client.name}")
    kept = kept_dir(kit_path, client)
    patterns = " ".join(quote(p) for p in KIT_JAR_PATTERNS)
    script = "; ".join(
        [
            f"rm -rf -- {quote(scratch)} {quote(kept)}",
            f"mkdir -p -- {quote(scratch)}",
            f"tar -xzf {quote(kit_path)} -C {quote(scratch)} --wildcards {patterns} 2>&1",
            echo_mark("kit"),
            f"(cd {quote(scratch)} && find . -type f -name '*.jar')",
            echo_mark("lib"),
            f"ls -1p -- {quote(lib)}",
        ]
    )
    try:
        parts = split_marked(conn.run(script, timeout=timeout, check=False).stdout)
    except RemoteError as exc:
        raise SwapFailed(
            f"unpacking the client jars of the staged kit {kit_path} on host "
            f"{client.host} {_reason(exc)}; client {client.name} was not "
            "touched: check the host and rerun",
            "old",
            [],
        ) from exc
    found = {path.rsplit("/", 1)[-1]: posixpath.normpath(path) for path in parts.get("kit", [])}
    kit_jars = {
        name: posixpath.join(scratch, path) for name, path in found.items() if terracotta_jars(name)
    }
    old = terracotta_jars("\n".join(parts.get("lib", [])))
    swap = JarSwap(client, lib, scratch, kit_jars, tuple(old), kept)
    if jar_set_version(list(kit_jars)) != target:
        said = "; ".join(parts.get("", [])[-2:])
        raise SwapFailed(
            f"the staged kit {kit_path} on host {client.host} holds "
            f"{', '.join(sorted(kit_jars)) or 'no client jar'}, not one ehcache-ee jar and "
            f"terracotta-toolkit-runtime-ee-{target}.jar{f' (tar: {said})' if said else ''}; "
            f"client {client.name} was not touched: stage the {target} kit again and rerun",
            "old",
            old,
        )
    folders = [name for name in swap.new if f"{name}/" in parts.get("lib", [])]
    if folders:
        raise SwapFailed(
            f"{lib} on host {client.host} holds a folder named {folders[0]}, where the new "
            f"jar goes; client {client.name} was not touched: move the folder away and rerun",
            "old",
            old,
        )
    return swap


def swap_jars(conn: Runner, swap: JarSwap, timeout: float, log: logging.Logger) -> str:
    """Put the new jars in, then move the old ones out (to ``swap.kept``), then read
    ``lib_dir`` back.

    Returns:
        What was done, for the step's record.

    Raises:
        SwapFailed: a command failed or the read-back differs; ``lib_dir`` was then left
            with a complete set where possible (``holds``).
    """
    removed = [name for name in swap.old if name not in swap.new]
    steps = ["set -e"]
    steps += [f"cp -p -- {quote(path)} {swap.temp(name)}" for name, path in swap.kit_jars.items()]
    steps += [f"mv -f -- {swap.temp(name)} {swap.in_lib(name)}" for name in swap.new]
    # `test` as a command of its own: set -e ignores a failure inside an && list.
    steps += [f"test -f {swap.in_lib(name)}" for name in swap.new]
    if removed:
        steps.append(f"mkdir -p -- {quote(swap.kept)}")
        steps.append(f"mv -f -- {' '.join(swap.in_lib(n) for n in removed)} {quote(swap.kept)}/")
    steps += [f"rm -rf -- {quote(swap.scratch)}", echo_mark("lib"), f"ls -1p -- {quote(swap.lib)}"]
    try:
        result = conn.run("; ".join(steps), timeout=timeout)
    except RemoteError as exc:
        failure = f"the jar swap of {swap.where()} {_reason(exc)}"
    else:
        seen = terracotta_jars("\n".join(split_marked(result.stdout).get("lib", [])))
        if sorted(seen) == sorted(swap.new):
            gone = f"; removed {', '.join(removed)}" if removed else ""
            return f"put {', '.join(swap.new)} into {swap.lib}{gone} (read back)"
        failure = (
            f"after the jar swap {swap.lib} of client {swap.client.name} on host "
            f"{swap.client.host} holds {', '.join(seen) or 'no Terracotta jar'}, not "
            f"{', '.join(swap.new)}"
        )
    log.warning("%s; putting back a complete set", failure)
    holds, jars, now = _recover(conn, swap, timeout)
    if holds == "new":
        log.warning("%s: %s after all", swap.lib, now)
        return f"put {', '.join(swap.new)} into {swap.lib} on a second try (read back)"
    raise SwapFailed(f"{failure}; {now}", holds, jars)


def _recover(conn: Runner, swap: JarSwap, timeout: float) -> tuple[JarSet, list[str] | None, str]:
    """Leave ``lib_dir`` with a complete set, new or old: which one it holds, its Terracotta
    jars and that in words, read back."""
    removed = [name for name in swap.old if name not in swap.new]
    added = [name for name in swap.new if name not in swap.old]
    forward = " && ".join(
        [f"test -f {swap.in_lib(name)}" for name in swap.new]
        + (["rm -f -- " + " ".join(swap.in_lib(n) for n in removed)] if removed else [])
    )
    back = "; ".join(
        (["rm -f -- " + " ".join(swap.in_lib(n) for n in added)] if added else [":"])
        + [
            f"if [ -f {swap.kept_jar(n)} ]; then mv -f -- {swap.kept_jar(n)} {swap.in_lib(n)}; fi"
            for n in removed
        ]
    )
    script = "; ".join(
        [
            "rm -f -- " + " ".join(swap.temp(name) for name in swap.new),
            f"if {forward}; then :; else {back}; fi",
            f"rm -rf -- {quote(swap.scratch)}",
            echo_mark("lib"),
            f"ls -1p -- {quote(swap.lib)}",
        ]
    )
    try:
        listing = conn.run(script, timeout=timeout, check=False).stdout
    except RemoteError as exc:
        return "neither", None, f"it could not be read back ({_reason(exc)})"
    jars = terracotta_jars("\n".join(split_marked(listing).get("lib", [])))
    if sorted(jars) == sorted(swap.new):
        return "new", jars, f"it holds the new jars ({', '.join(jars)})"
    if sorted(jars) == sorted(swap.old) and jar_set_version(jars) is not None:
        return "old", jars, f"it holds its old jars again ({', '.join(jars)})"
    return "neither", jars, (f"it holds {', '.join(jars) or 'no Terracotta jar'}, no complete set")


def restore_jars(conn: Runner, client: Client, kept: str, timeout: float) -> list[str] | None:
    """Put the jars a swap kept in ``kept`` back into ``lib_dir`` in place of the Terracotta
    jars there (the kept ones in first, then the others out), read ``lib_dir`` back and
    remove ``kept``. The client must be stopped.

    Returns:
        The Terracotta jars ``lib_dir`` holds now (the kept set), or None when ``kept`` holds
        no complete set (nothing was changed).

    Raises:
        SwapFailed: a command failed or the read-back is not the kept set (``holds``:
            ``old`` when ``lib_dir`` still holds a complete set of one version, else
            ``neither``).
        RemoteError: the host could not be reached for the first look.
    """
    lib = client.lib_dir.rstrip("/") or "/"
    look = [echo_mark("kept"), f"ls -1p -- {quote(kept)} 2>/dev/null", echo_mark("lib")]
    parts = split_marked(
        conn.run("; ".join([*look, f"ls -1p -- {quote(lib)}"]), timeout=timeout, check=False).stdout
    )
    back = terracotta_jars("\n".join(parts.get("kept", [])))
    if jar_set_version(back) is None:
        return None
    now = terracotta_jars("\n".join(parts.get("lib", [])))
    swap = JarSwap(client, lib, "", {}, tuple(now), kept)
    gone = [name for name in now if name not in back]
    steps = ["set -e"]
    steps += [f"cp -p -- {swap.kept_jar(name)} {swap.temp(name)}" for name in back]
    steps += [f"mv -f -- {swap.temp(name)} {swap.in_lib(name)}" for name in back]
    steps += [f"test -f {swap.in_lib(name)}" for name in back]
    steps += ["rm -f -- " + " ".join(swap.in_lib(name) for name in gone)] if gone else []
    steps += [f"rm -rf -- {quote(kept)}", echo_mark("lib"), f"ls -1p -- {quote(lib)}"]
    where = f"client {client.name} on host {client.host}"
    try:
        result = conn.run("; ".join(steps), timeout=timeout)
    except RemoteError as exc:
        holds: JarSet = "old" if jar_set_version(now) else "neither"
        raise SwapFailed(
            f"putting the kept jars back into {lib} of {where} {_reason(exc)}", holds, None
        ) from exc
    seen = terracotta_jars("\n".join(split_marked(result.stdout).get("lib", [])))
    if sorted(seen) != sorted(back):
        raise SwapFailed(
            f"after putting the kept jars back {lib} of {where} holds "
            f"{', '.join(seen) or 'no Terracotta jar'}, not {', '.join(back)}",
            "old" if jar_set_version(seen) else "neither",
            seen,
        )
    return seen
