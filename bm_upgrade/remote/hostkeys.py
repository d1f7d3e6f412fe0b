"""Host-key checking against a known_hosts file, the way OpenSSH does it.

- A host that known_hosts lists must show a key recorded for it. Any other key, of the
  recorded type or of another type, is a CHANGED key and always rejected: a host that only
  changed its key type looks exactly like an interceptor that holds no copy of the real key.
- A key marked ``@revoked`` is always rejected.
- A host not listed is rejected, unless ``ssh.accept_unknown_host_keys`` is set: then the
  connection goes on with a warning, and nothing is recorded.
- Keys are recorded only by ``bm-upgrade trust-hosts`` (:func:`record`), after the operator
  saw the fingerprint and said yes. Runs, reruns and the status sensor connect unattended, over
  and over; a key they recorded on first contact would turn one intercepted connection into a
  key trusted for good without anyone having looked at it. ``accept_unknown_host_keys``
  stays for labs whose hosts are rebuilt all the time: the operator knowingly gives up the
  check for the hosts that are not listed, and every connection to one says so.

Reading the file: :mod:`~bm_upgrade.remote.known_hosts`.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import paramiko

from bm_upgrade.errors import HostKeyRejected, KnownHostsError
from bm_upgrade.remote.known_hosts import KnownHosts, known_hosts_name

log = logging.getLogger(__name__)

# trust-hosts may record several hosts at once; one writer at a time.
_RECORD_LOCK = threading.Lock()

# known_hosts names the RSA key type "ssh-rsa"; servers sign with SHA-2 under these names
# (OpenSSH 8.8+ refuses the SHA-1 "ssh-rsa" signature).
_ALGORITHMS = {"ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]}

Status = Literal["known", "unknown", "changed", "revoked"]


def describe(key: paramiko.PKey) -> str:
    """``ssh-ed25519 SHA256:...``: the key's type and fingerprint."""
    return f"{key.get_name()} {key.fingerprint}"


@dataclass(frozen=True)
class HostKeyFinding:
    """What known_hosts says about the key a host showed."""

    host: str
    port: int
    key: paramiko.PKey
    status: Status
    message: str
    """For "known": empty; otherwise one sentence saying what is wrong and what to do."""

    @property
    def name(self) -> str:
        return known_hosts_name(self.host, self.port)

    @property
    def key_type(self) -> str:
        return self.key.get_name()

    @property
    def fingerprint(self) -> str:
        """OpenSSH-style ``SHA256:...``, as ``ssh-keygen -l`` shows it."""
        return self.key.fingerprint


class HostKeyChecker:
    """Checks host keys against one known_hosts file (see the module docstring)."""

    def __init__(self, known_hosts: str | None, accept_unknown: bool) -> None:
        self.path = Path(known_hosts).expanduser() if known_hosts else None
        self.accept_unknown = accept_unknown

    @property
    def where(self) -> str:
        return str(self.path) if self.path else "(no known_hosts file is set)"

    def _load(self) -> KnownHosts | None:
        return KnownHosts.load(self.path) if self.path is not None else None

    def preferred_key_types(self, host: str, port: int) -> list[str]:
        """Algorithms of the key types recorded for the host, to ask the server for those."""
        known = self._load()
        types = (
            [k.get_name() for k in known.keys_for(known_hosts_name(host, port))] if (known) else []
        )
        return list(dict.fromkeys(a for t in types for a in _ALGORITHMS.get(t, [t])))

    def examine(self, host: str, port: int, key: paramiko.PKey) -> HostKeyFinding:
        """Whether ``key`` is the host's recorded key, a new host's, or a CHANGED one.

        Raises:
            KnownHostsError: the known_hosts file cannot be read.
        """
        name = known_hosts_name(host, port)
        known = self._load()
        if known is not None and known.revoked(key):
            return HostKeyFinding(
                host,
                port,
                key,
                "revoked",
                (
                    f"host key of {name} ({describe(key)}) is marked @revoked in {self.where}; "
                    "the host must get a new key: ask its administrator, then record the new one "
                    "with bm-upgrade trust-hosts"
                ),
            )
        recorded = known.keys_for(name) if known is not None else []
        if any(r == key for r in recorded):
            return HostKeyFinding(host, port, key, "known", "")
        if recorded:
            listed = ", ".join(describe(r) for r in recorded)
            return HostKeyFinding(
                host,
                port,
                key,
                "changed",
                (
                    f"host key of {name} CHANGED: it offered {describe(key)} but {self.where} "
                    f"records {listed}. Someone may be intercepting the connection; if the host "
                    "was reinstalled, verify the new fingerprint and remove the old entry with: "
                    f"ssh-keygen -R '{name}' -f {self.where}, then record the new key with "
                    "bm-upgrade trust-hosts"
                ),
            )
        return HostKeyFinding(
            host,
            port,
            key,
            "unknown",
            (
                f"host key of {name} ({describe(key)}) is not in known_hosts {self.where}; check "
                "the fingerprint and record it with: bm-upgrade trust-hosts INVENTORY"
            ),
        )

    def check(self, host: str, port: int, key: paramiko.PKey) -> None:
        """Accept the key or raise :class:`HostKeyRejected` saying what to do; never record.

        Raises:
            HostKeyRejected: the key is CHANGED or revoked, or unknown and not accepted.
            KnownHostsError: the known_hosts file cannot be read.
        """
        finding = self.examine(host, port, key)
        if finding.status == "known":
            return
        if finding.status == "unknown" and self.accept_unknown:
            log.warning(
                "%s: host key %s NOT CHECKED: %s is not in known_hosts %s and "
                "ssh.accept_unknown_host_keys is set; nothing was recorded. Record it "
                "with bm-upgrade trust-hosts",
                host,
                describe(key),
                finding.name,
                self.where,
            )
            return
        if finding.status == "unknown":
            raise HostKeyRejected(
                host,
                finding.message + " (or set "
                "ssh.accept_unknown_host_keys: true to connect to hosts not "
                "in known_hosts, unchecked, with a warning)",
            )
        raise HostKeyRejected(host, finding.message)

    def record(self, finding: HostKeyFinding) -> None:
        """Append the finding's key to known_hosts (for ``trust-hosts`` only).

        Raises:
            KnownHostsError: no known_hosts file is set, or it cannot be written.
        """
        if self.path is None:
            raise KnownHostsError(
                "no known_hosts file is set; set ssh.known_hosts in the "
                "inventory to the file host keys are recorded in"
            )
        key = finding.key
        line = f"{finding.name} {key.get_name()} {key.get_base64()}\n"
        with _RECORD_LOCK:
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "r+b") as fh:
                    size = fh.seek(0, os.SEEK_END)
                    if size:  # a last line without its newline would swallow ours
                        fh.seek(size - 1)
                        if fh.read(1) != b"\n":
                            line = "\n" + line
                    fh.write(line.encode("ascii"))
            except OSError as exc:
                raise KnownHostsError(
                    f"cannot record the host key of {finding.name} in "
                    f"{self.path} ({exc.strerror}); check that file's "
                    "permissions, or add the key by hand"
                ) from None
        log.info("recorded host key of %s (%s) in %s", finding.name, describe(key), self.path)
