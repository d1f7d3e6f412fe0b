"""The kit: fetch it into a local cache (resuming, sha256-checked), then stage it, with the
license key, on every host that needs it, before anything is stopped.

Staging puts ``<kit file>`` and ``terracotta-license.key`` in ``.bm-upgrade-staging/`` next to
the host's install folder (``<parent of install_dir>/.bm-upgrade-staging/``), once per host;
the upgrade steps unpack from there.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bm_upgrade.errors import TransferFailed
from bm_upgrade.inventory import Inventory, Kit
from bm_upgrade.license import LICENSE_FILE_NAME
from bm_upgrade.remote import Connection, HostPool
from bm_upgrade.remote.transfer import file_sha256

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/bm-upgrade/kits")
CACHE_DIR_ENV = "BM_UPGRADE_KIT_CACHE"


def kit_cache_dir(cache_dir: Path | None = None) -> Path:
    """Where fetched kits are kept: ``cache_dir``, else $BM_UPGRADE_KIT_CACHE, else
    ~/.cache/bm-upgrade/kits."""
    return (cache_dir or Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)).expanduser()
STAGING_DIR_NAME = ".bm-upgrade-staging"
_CHUNK = 1 << 20


def kit_file_name(kit: Kit) -> str:
    """The kit's file name, from its URL (``bigmemory-max-<version>.tar.gz`` if it has none)."""
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlparse(kit.url).path))
    return name or f"bigmemory-max-{kit.version}.tar.gz"


def _source_host(url: str) -> str:
    return urllib.parse.urlparse(url).hostname or "localhost"


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
                log.info("fetching %s: %d%% (%d of %d bytes)", self.name,
                         int(self.next_step * 100), self.done, self.total)
                self.next_step += 0.1
        elif time.monotonic() - self.last_log > 10:
            log.info("fetching %s: %d bytes", self.name, self.done)
            self.last_log = time.monotonic()


def _download(url: str, part: Path, timeout: float) -> None:
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (scheme checked)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
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
            log.info("%s does not resume downloads; fetching %s from the start", url,
                     part.name)
        start = offset if resumed else 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        if resumed:
            log.info("resuming %s at byte %d", url, offset)
        progress = _Progress(part.name.removesuffix(".part"), total, start)
        with part.open("ab" if resumed else "wb") as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                progress.add(len(chunk))


def fetch_kit(kit: Kit, cache_dir: Path | None = None, timeout: float = 60.0) -> Path:
    """The kit in the local cache, fetched (or resumed) from its URL when missing.

    Raises:
        TransferFailed: the URL cannot be read, or the file's sha256 differs from the
            inventory's (the bad file is removed).
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
    try:
        if kit.url.startswith("file://"):
            src = Path(urllib.request.url2pathname(urllib.parse.urlparse(kit.url).path))
            shutil.copyfile(src, part)
        else:
            _download(kit.url, part, timeout)
    except (OSError, urllib.error.URLError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise TransferFailed(source, f"cannot fetch kit {kit.version} from {kit.url} "
                             f"({reason}); check kits[].url and that it can be reached "
                             "(rerun to resume a partial download)") from exc
    got = file_sha256(part)
    if got != expected:
        part.unlink()
        raise TransferFailed(source, f"kit {kit.version} from {kit.url} has sha256 {got}, but "
                             f"the inventory says {expected}; check kits[].sha256 against "
                             "the vendor's checksum, or the URL")
    part.rename(dest)
    log.info("kit %s fetched to %s", kit.version, dest)
    return dest


# -- staging --------------------------------------------------------------------------------
@dataclass(frozen=True)
class StagedKit:
    """Where a host holds the staged kit and license key."""

    host: str
    kit_path: str
    license_path: str
    kit_action: str


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


def stage_kit(pool: HostPool, inventory: Inventory, kit: Kit, kit_path: Path,
              license_path: Path) -> dict[str, StagedKit]:
    """Upload the kit and the license key to every host that needs them, once per host.

    Identical files already there are skipped; partial ones are resumed.

    Raises:
        RemoteError: the first host that failed (the others are listed in its notes).
    """
    targets = staging_targets(inventory)
    license_file = license_path.expanduser()

    def one(conn: Connection) -> StagedKit:
        folder = targets[conn.host]
        kit_result = conn.upload(kit_path, posixpath.join(folder, kit_file_name(kit)),
                                 kit.sha256)
        lic_result = conn.upload(license_file, posixpath.join(folder, LICENSE_FILE_NAME))
        return StagedKit(conn.host, kit_result.path, lic_result.path, kit_result.action)

    return pool.fan_out(targets, one).values()
