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

The file is read whole at every check. A line that cannot be read (not a host key entry, bad
base64, a broken key) stops every connection with :class:`KnownHostsError` naming the line,
rather than being skipped: the skipped line might have been the host's key.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import paramiko
from paramiko.hostkeys import HostKeys
from paramiko.pkey import UnknownKeyType

from bm_upgrade.errors import HostKeyRejected, KnownHostsError

log = logging.getLogger(__name__)

# trust-hosts may record several hosts at once; one writer at a time.
_RECORD_LOCK = threading.Lock()

# known_hosts names the RSA key type "ssh-rsa"; servers sign with SHA-2 under these names
# (OpenSSH 8.8+ refuses the SHA-1 "ssh-rsa" signature).
_ALGORITHMS = {"ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]}

Status = Literal["known", "unknown", "changed", "revoked"]


def known_hosts_name(host: str, port: int) -> str:
    """The name a host is filed under in known_hosts (``[host]:port`` off port 22)."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint, as ``ssh-keygen -l`` shows it."""
    return key.fingerprint


def describe(key: paramiko.PKey) -> str:
    """``ssh-ed25519 SHA256:...``: the key's type and fingerprint."""
    return f"{key.get_name()} {fingerprint(key)}"


@dataclass(frozen=True)
class _Entry:
    patterns: tuple[str, ...]
    key: paramiko.PKey
    revoked: bool

    def matches(self, name: str) -> bool:
        """OpenSSH's rules: hashed names, ``*``/``?`` wildcards, ``!`` negations."""
        hit = False
        for written in self.patterns:
            negated = written.startswith("!")
            pattern = written[1:] if negated else written
            if pattern.startswith("|1|"):
                found = HostKeys.hash_host(name, pattern) == pattern
            elif "*" in pattern or "?" in pattern:
                regex = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")
                found = re.fullmatch(regex, name.lower()) is not None
            else:
                found = pattern.lower() == name.lower()
            if found and negated:
                return False
            hit = hit or found
        return hit


class KnownHosts:
    """The entries of one known_hosts file (a missing file has none)."""

    def __init__(self, path: Path, entries: list[_Entry]) -> None:
        self.path = path
        self._entries = entries

    @classmethod
    def load(cls, path: Path) -> KnownHosts:
        """Read ``path``.

        Raises:
            KnownHostsError: the file cannot be read, or a line is not a host key entry.
        """
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls(path, [])
        except OSError as exc:
            raise KnownHostsError(
                f"cannot read known_hosts file {path} ({exc.strerror}); "
                "check its permissions, or set ssh.known_hosts to another "
                "file"
            ) from None
        entries = []
        for number, raw in enumerate(data.split(b"\n"), 1):
            entry = _parse(path, number, raw)
            if entry is not None:
                entries.append(entry)
        return cls(path, entries)

    def keys_for(self, name: str) -> list[paramiko.PKey]:
        """The keys recorded for ``name`` (revoked ones left out)."""
        return [e.key for e in self._entries if not e.revoked and e.matches(name)]

    def revoked(self, key: paramiko.PKey) -> bool:
        """``key`` is marked ``@revoked`` (for any host: a revoked key is revoked)."""
        return any(e.revoked and e.key == key for e in self._entries)


def _parse(path: Path, number: int, raw: bytes) -> _Entry | None:
    """One line of known_hosts: an entry, or None for blank lines, comments, CA lines and key
    types paramiko cannot use."""

    def corrupt(why: str) -> KnownHostsError:
        return KnownHostsError(
            f"known_hosts file {path} line {number} is not a host key entry ({why}); fix or "
            f"delete that line (sed -i '{number}d' {path}), or remove the host's entries with "
            f"ssh-keygen -R HOST -f {path}, then record the host again with bm-upgrade "
            "trust-hosts"
        )

    try:
        line = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise corrupt("it is not UTF-8 text") from None
    if not line or line.startswith("#"):
        return None
    fields = line.split()
    marker = fields.pop(0) if fields[0].startswith("@") else None
    if marker not in (None, "@revoked", "@cert-authority"):
        raise corrupt(f"unknown marker {marker}")
    if len(fields) < 3:
        raise corrupt("expected: host names, key type, base64 key")
    names, key_type, blob = fields[:3]
    if marker == "@cert-authority":
        return None  # host certificates are not used here
    try:
        data = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        raise corrupt("the key is not valid base64") from None
    try:
        key = paramiko.PKey.from_type_string(key_type, data)
    except UnknownKeyType:
        log.debug("%s line %d: key type %s is not supported; line ignored", path, number, key_type)
        return None
    except Exception as exc:  # paramiko and cryptography raise many types for a bad blob
        raise corrupt(f"the {key_type} key cannot be decoded: {exc}") from None
    if key.get_name() != key_type and not key_type.startswith(key.get_name()):
        raise corrupt(f"the key is a {key.get_name()} key, not {key_type}")
    return _Entry(tuple(names.split(",")), key, marker == "@revoked")


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
        return fingerprint(self.key)


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
