"""The kit fetched into a local cache: resumed when a partial file is there, sha256-checked
against the inventory before it is used.

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
from pathlib import Path

from bm_upgrade.errors import TransferFailed
from bm_upgrade.inventory import Kit
from bm_upgrade.redact import redact_text, redact_url
from bm_upgrade.remote.transfer import file_sha256

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/bm-upgrade/kits")
CACHE_DIR_ENV = "BM_UPGRADE_KIT_CACHE"
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
