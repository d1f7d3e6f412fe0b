"""The kit: fetch it into a local cache (resuming, sha256-checked), then stage it, with the
license key, on every host that needs it, before anything is stopped.

Staging puts ``<kit file>`` and ``terracotta-license.key`` in ``.bm-upgrade-staging/`` next to
the host's install folder (``<parent of install_dir>/.bm-upgrade-staging/``), once per host;
the upgrade steps unpack from there. The folder is private to the login user (0700, the key
0600); staging first checks every host has disk room for the kit (procedure/room.py), and a
successful run removes the staging folders again (:func:`clean_staging`).

A kit URL may carry ``user:token@`` (sent as HTTP basic authentication, never in the request
line) or a signed query string: every message and log line shows it redacted (redact.py).
"""

from __future__ import annotations

import base64
import http.client
import logging
import os
import posixpath
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from bm_upgrade.errors import StepFailed, TransferFailed
from bm_upgrade.inventory import Inventory, Kit
from bm_upgrade.license import LICENSE_FILE_NAME
from bm_upgrade.plan import PlanOptions
from bm_upgrade.procedure.room import (
    Need,
    describe,
    free_space,
    room_needs,
    shortages,
    unpacked_size,
)
from bm_upgrade.redact import redact_text, redact_url
from bm_upgrade.remote import Connection, HostPool
from bm_upgrade.remote.quoting import quote, shell
from bm_upgrade.remote.transfer import file_sha256

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/bm-upgrade/kits")
CACHE_DIR_ENV = "BM_UPGRADE_KIT_CACHE"
STAGING_DIR_NAME = ".bm-upgrade-staging"
_CHUNK = 1 << 20


def kit_cache_dir(cache_dir: Path | None = None) -> Path:
    """Where fetched kits are kept: ``cache_dir``, else $BM_UPGRADE_KIT_CACHE, else
    ~/.cache/bm-upgrade/kits."""
    return (cache_dir or Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)).expanduser()


def kit_file_name(kit: Kit) -> str:
    """The kit's file name, from its URL (``bigmemory-max-<version>.tar.gz`` if it has none)."""
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlparse(kit.url).path))
    return name or f"bigmemory-max-{kit.version}.tar.gz"


def _source_host(url: str) -> str:
    try:
        return urllib.parse.urlparse(url).hostname or "localhost"
    except ValueError:
        return "the kit's host"


def _request(url: str, headers: dict[str, str]) -> urllib.request.Request:
    """A GET of ``url`` whose ``user:token@`` (urllib would take it for the host) becomes a
    basic authentication header."""
    parts = urllib.parse.urlsplit(url)
    if "@" in parts.netloc:
        userinfo, host = parts.netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
        headers = {
            **headers,
            "Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii"),
        }
        url = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return urllib.request.Request(url, headers=headers)  # noqa: S310 (scheme checked)


# -- fetch ----------------------------------------------------------------------------------
class _Progress:
    """Logs a download's progress every 10 % (or every 10 s when the size is unknown)."""

    def __init__(self, name: str, total: int | None, start: int) -> None:
        self.name, self.total, self.done = name, total, start
        self.next_step = 0.1
        self.last_log = time.monotonic()

    def add(self, count: int) -> None:
        self.done += count
        if self.total:
            while self.done / self.total >= self.next_step:
                log.info(
                    "fetching %s: %d%% (%d of %d bytes)",
                    self.name,
                    int(self.next_step * 100),
                    self.done,
                    self.total,
                )
                self.next_step += 0.1
        elif time.monotonic() - self.last_log > 10:
            log.info("fetching %s: %d bytes", self.name, self.done)
            self.last_log = time.monotonic()


def _download(url: str, part: Path, timeout: float) -> None:
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    shown = redact_url(url)
    try:
        response = urllib.request.urlopen(_request(url, headers), timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # The partial file is not a prefix the server can continue: start over.
            part.unlink()
            _download(url, part, timeout)
            return
        raise
    with response:
        resumed = offset > 0 and response.status == 206
        if offset and not resumed:
            log.info("%s does not resume downloads; fetching %s from the start", shown, part.name)
        start = offset if resumed else 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        if resumed:
            log.info("resuming %s at byte %d", shown, offset)
        progress = _Progress(part.name.removesuffix(".part"), total, start)
        with part.open("ab" if resumed else "wb") as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                progress.add(len(chunk))


def fetch_kit(kit: Kit, cache_dir: Path | None = None, timeout: float = 60.0) -> Path:
    """The kit in the local cache, fetched (or resumed) from its URL when missing.

    Raises:
        TransferFailed: the URL cannot be read, or the file's sha256 differs from the
            inventory's (the bad file is removed). The message shows the URL redacted.
    """
    cache = kit_cache_dir(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / kit_file_name(kit)
    expected = kit.sha256.lower()
    if dest.exists():
        if file_sha256(dest) == expected:
            log.info("kit %s already in the cache at %s", kit.version, dest)
            return dest
        log.warning("cached %s does not match its sha256; fetching it again", dest)
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    source = _source_host(kit.url)
    shown = redact_url(kit.url)
    try:
        if kit.url.startswith("file://"):
            src = Path(urllib.request.url2pathname(urllib.parse.urlparse(kit.url).path))
            shutil.copyfile(src, part)
        else:
            _download(kit.url, part, timeout)
    except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as exc:
        # http.client and urllib quote pieces of the URL in their errors (a port, a path, the
        # whole URL): the reason is shown with every secret part of the URL taken out.
        reason = redact_text(str(getattr(exc, "reason", None) or exc), kit.url)
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # its response's socket: the error itself is not passed on
        raise TransferFailed(
            source,
            f"cannot fetch kit {kit.version} from {shown} "
            f"({type(exc).__name__}: {reason}); check kits[].url and that "
            "it can be reached (rerun to resume a partial download)",
        ) from None  # the cause's text holds the URL: not chained
    got = file_sha256(part)
    if got != expected:
        part.unlink()
        raise TransferFailed(
            source,
            f"kit {kit.version} from {shown} has sha256 {got}, but "
            f"the inventory says {expected}; check kits[].sha256 against "
            "the vendor's checksum, or the URL",
        )
    part.rename(dest)
    log.info("kit %s fetched to %s", kit.version, dest)
    return dest


# -- staging --------------------------------------------------------------------------------
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


def staging_dir(install_dir: str) -> str:
    """``<parent of install_dir>/.bm-upgrade-staging``."""
    return posixpath.join(posixpath.dirname(install_dir.rstrip("/")) or "/", STAGING_DIR_NAME)


def staging_targets(inventory: Inventory) -> dict[str, str]:
    """Host -> staging folder, for every host with a server, orchestrator or client.

    A host's first install folder (servers, then orchestrators, then clients' lib folders)
    decides where its one staged copy goes.
    """
    targets: dict[str, str] = {}
    for _, _, server in inventory.servers():
        targets.setdefault(server.host, staging_dir(server.install_dir))
    for region in inventory.regions:
        for orch in region.orchestrators:
            targets.setdefault(orch.host, staging_dir(orch.install_dir))
    for region in inventory.regions:
        for client in region.clients:
            targets.setdefault(client.host, staging_dir(client.lib_dir))
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
