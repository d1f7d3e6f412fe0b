"""Address blocks: each sandbox on a machine gets its own 127.a.b.0/24, so two sandboxes (tests
running side by side) never share an address.

A reservation is a file ``<tmp>/bm-sandbox-address-blocks/127.a.b`` naming its owner folder,
taken under an exclusive ``flock``; the owner folder holds ``address-block`` naming the block.
A reservation whose owner folder or marker is gone is stale and reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import tempfile
from pathlib import Path

from bm_upgrade.sandbox.logins import SshdError

BLOCKS_DIR = Path(tempfile.gettempdir()) / "bm-sandbox-address-blocks"
BLOCK_MARKER = "address-block"


def reserve_block(owner: Path) -> str:
    """Reserve a loopback block ``127.a.b`` (hosts ``127.a.b.1``..``.254``) for ``owner``.

    A machine-wide folder holds one file per reserved block naming its owner folder, and the
    owner holds a marker naming its block; a reservation whose owner folder (or marker) is
    gone is stale and reused. Reserving runs under an exclusive lock, so two sandboxes (or
    test sessions) started at the same moment never get the same block. Reserving again for
    the same owner returns its block.
    """
    owner = owner.resolve()
    owner.mkdir(parents=True, exist_ok=True)
    BLOCKS_DIR.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # only its creator may chmod it
        BLOCKS_DIR.chmod(0o1777)
    marker = owner / BLOCK_MARKER
    # flock works on a read-only descriptor, so users other than its creator can lock it.
    lock_fd = os.open(BLOCKS_DIR / ".lock", os.O_RDONLY | os.O_CREAT, 0o644)
    with os.fdopen(lock_fd, "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            block = marker.read_text(encoding="ascii").strip()
            if _block_owner(block) == str(owner):
                return block
        candidates = [f"127.{a}.{b}" for a in range(100, 200) for b in range(256)]
        start = random.randrange(len(candidates))
        for block in candidates[start:] + candidates[:start]:
            reservation = BLOCKS_DIR / block
            current = _block_owner(block)
            if current is not None and _owner_holds(Path(current), block):
                continue
            try:
                reservation.unlink(missing_ok=True)
            except PermissionError:  # another user's stale reservation in the sticky folder
                continue
            reservation.write_text(str(owner) + "\n", encoding="utf-8")
            marker.write_text(block + "\n", encoding="ascii")
            return block
    raise SshdError(f"no free loopback block left in {BLOCKS_DIR}; remove stale sandboxes")


def release_block(owner: Path) -> None:
    """Give back ``owner``'s block (idempotent)."""
    owner = owner.resolve()
    marker = owner / BLOCK_MARKER
    if not marker.exists():
        return
    block = marker.read_text(encoding="ascii").strip()
    if _block_owner(block) == str(owner):
        (BLOCKS_DIR / block).unlink(missing_ok=True)
    marker.unlink(missing_ok=True)


def _block_owner(block: str) -> str | None:
    try:
        return (BLOCKS_DIR / block).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _owner_holds(owner: Path, block: str) -> bool:
    try:
        return (owner / BLOCK_MARKER).read_text(encoding="ascii").strip() == block
    except OSError:
        return False
