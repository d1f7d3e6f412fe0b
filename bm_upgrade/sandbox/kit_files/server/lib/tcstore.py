"""The server's data: an in-memory map, written through to ``<data>/objectdb/`` when restartable.

``<data>/objectdb/store.jsonl`` is an append log of ``{"k", "v"}`` lines; a resync rewrites it.
``<data>/tc-server-meta.json`` (outside objectdb, so a dirty backup keeps it) remembers the
cluster epoch this server last saw and whether it was the active then: the election uses it
so that only the last active recovers a persistent stripe from disk.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any


class Store:
    """Key/value data of one server; thread-safe for one writer at a time (the caller's lock)."""

    def __init__(self, data_dir: Path, persistent: bool) -> None:
        self.data_dir = data_dir
        self.persistent = persistent
        self.objectdb = data_dir / "objectdb"
        self.meta_path = data_dir / "tc-server-meta.json"
        self.data: dict[str, str] = {}
        self.size_bytes = 0
        self._log: Any = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ meta (election)

    def read_meta(self) -> dict[str, Any]:
        """``{"epoch": int, "was_active": bool}`` from the last run (zeros when fresh)."""
        meta: dict[str, Any] = {"epoch": 0, "was_active": False}
        if not self.persistent:
            return meta
        with contextlib.suppress(OSError, ValueError):
            meta.update(json.loads(self.meta_path.read_text(encoding="utf-8")))
        return meta

    def write_meta(self, epoch: int, was_active: bool) -> None:
        """Remember the epoch and role (persistent stripes only)."""
        if not self.persistent:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"epoch": epoch, "was_active": was_active}), encoding="utf-8")
        os.replace(tmp, self.meta_path)

    # ------------------------------------------------------------ disk

    def has_disk_data(self) -> bool:
        """True when a previous run left data in objectdb (persistent only)."""
        return self.persistent and self.objectdb.is_dir() and any(self.objectdb.iterdir())

    def recover(self) -> int:
        """Load objectdb into memory (the last active restarting); returns the key count."""
        log = self.objectdb / "store.jsonl"
        if self.persistent and log.is_file():
            with log.open("r", encoding="utf-8") as stream:
                for line in stream:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a line cut by a crash: everything before it is whole
                    self._apply(str(record["k"]), str(record["v"]))
        self._open_log(truncate=False)
        return len(self.data)

    def move_to_dirty_backup(self) -> Path:
        """Move objectdb to ``dirty-objectdb-backup/dirty-objectdb-<yyyyMMddHHmmssSS>/``."""
        now = datetime.datetime.now()
        stamp = now.strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 10000:02d}"
        backup = self.data_dir / "dirty-objectdb-backup" / f"dirty-objectdb-{stamp}"
        backup.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.objectdb), str(backup))
        return backup

    def _open_log(self, truncate: bool) -> None:
        if not self.persistent:
            return
        self.objectdb.mkdir(parents=True, exist_ok=True)
        if self._log is not None:
            self._log.close()
        self._log = (self.objectdb / "store.jsonl").open("w" if truncate else "a", encoding="utf-8")

    # ------------------------------------------------------------ data

    def _apply(self, key: str, value: str) -> None:
        old = self.data.get(key)
        if old is not None:
            self.size_bytes -= len(key) + len(old)
        self.data[key] = value
        self.size_bytes += len(key) + len(value)

    def put(self, key: str, value: str) -> None:
        """Store one entry (and append it to objectdb when persistent)."""
        with self._lock:
            self._apply(key, value)
            if self._log is not None:
                self._log.write(json.dumps({"k": key, "v": value}) + "\n")
                self._log.flush()

    def replace_all(self, snapshot: dict[str, str]) -> None:
        """Replace everything with an active's snapshot (a passive's sync)."""
        with self._lock:
            self.data = {}
            self.size_bytes = 0
            for key, value in snapshot.items():
                self._apply(key, value)
            self._open_log(truncate=True)
            if self._log is not None:
                for key, value in self.data.items():
                    self._log.write(json.dumps({"k": key, "v": value}) + "\n")
                self._log.flush()

    def copy_to(self, target: Path) -> None:
        """Copy what is persisted (objectdb, the meta file) to ``target`` while writes wait
        (the Database Backup Utility, tcbackup.py)."""
        with self._lock:
            if self._log is not None:
                self._log.flush()
            target.mkdir(parents=True)
            if self.objectdb.is_dir():
                shutil.copytree(self.objectdb, target / "objectdb")
            if self.meta_path.is_file():
                shutil.copy2(self.meta_path, target / self.meta_path.name)

    def start_empty(self) -> None:
        """Begin with no data (a fresh or non-persistent server)."""
        self._open_log(truncate=True)

    def close(self) -> None:
        """Flush and close objectdb."""
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None
