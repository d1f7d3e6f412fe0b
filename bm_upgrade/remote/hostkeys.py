"""Host-key checking against a known_hosts file, the way OpenSSH and paramiko's RejectPolicy do.

An unknown key is rejected unless the inventory sets ``ssh.accept_unknown_host_keys``; then it
is recorded in the known_hosts file so the next connection checks it. A key that differs from
the recorded one is always rejected.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import paramiko

from bm_upgrade.errors import HostKeyRejected

log = logging.getLogger(__name__)

# Several hosts may record keys at once (the pool connects in parallel); one writer at a time.
_RECORD_LOCK = threading.Lock()


def known_hosts_name(host: str, port: int) -> str:
    """The name a host is filed under in known_hosts (``[host]:port`` off port 22)."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint, as ``ssh-keygen -l`` shows it."""
    return key.fingerprint


class HostKeyChecker:
    """Checks (and, when allowed, records) host keys against one known_hosts file."""

    def __init__(self, known_hosts: str | None, accept_unknown: bool) -> None:
        self.path = Path(known_hosts).expanduser() if known_hosts else None
        self.accept_unknown = accept_unknown

    def _load(self) -> paramiko.HostKeys:
        keys = paramiko.HostKeys()
        if self.path is not None and self.path.exists():
            keys.load(str(self.path))
        return keys

    def preferred_key_types(self, host: str, port: int) -> list[str]:
        """Key types already recorded for the host, so the server is asked for one of those."""
        entry = self._load().lookup(known_hosts_name(host, port))
        return list(entry.keys()) if entry else []

    def check(self, host: str, port: int, key: paramiko.PKey) -> None:
        """Accept the key, record it, or raise :class:`HostKeyRejected` saying what to do."""
        name = known_hosts_name(host, port)
        where = str(self.path) if self.path else "(no known_hosts file set)"
        entry = self._load().lookup(name)
        recorded = entry.get(key.get_name()) if entry else None
        if recorded is not None:
            if recorded == key:
                return
            raise HostKeyRejected(
                host,
                f"host key of {name} CHANGED: it offered {key.get_name()} {fingerprint(key)} but "
                f"{where} records {fingerprint(recorded)}. Someone may be intercepting the "
                "connection; if the host was reinstalled, verify the new fingerprint and remove "
                f"the old entry with: ssh-keygen -R '{name}' -f {where}",
            )
        if not self.accept_unknown:
            raise HostKeyRejected(
                host,
                f"host key of {name} ({key.get_name()} {fingerprint(key)}) is not in "
                f"known_hosts {where}; verify the fingerprint and add it (ssh-keyscan -p {port} "
                f"{host} >> {where}), or set ssh.accept_unknown_host_keys: true in the inventory "
                "to trust and record new hosts",
            )
        self._record(host, name, key)

    def _record(self, host: str, name: str, key: paramiko.PKey) -> None:
        if self.path is None:
            log.warning("accepted unknown host key of %s (%s %s); not recorded: no known_hosts "
                        "file is set", name, key.get_name(), fingerprint(key))
            return
        with _RECORD_LOCK:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(f"{name} {key.get_name()} {key.get_base64()}\n")
            except OSError as exc:
                raise HostKeyRejected(
                    host, f"cannot record the host key of {name} in {self.path} ({exc}); "
                    "check that file's permissions, or add the key by hand"
                ) from exc
        log.warning("recorded new host key of %s (%s %s) in %s", name, key.get_name(),
                    fingerprint(key), self.path)
