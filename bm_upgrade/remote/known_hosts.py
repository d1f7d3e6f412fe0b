"""known_hosts files as OpenSSH reads them: entries, host name patterns, ``@revoked`` keys.

The file is read whole at every check. A line that cannot be read (not a host key entry, bad
base64, a broken key) stops every connection with :class:`KnownHostsError` naming the line,
rather than being skipped: the skipped line might have been the host's key. ``@cert-authority``
lines and key types paramiko cannot use are left out.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeys
from paramiko.pkey import UnknownKeyType

from bm_upgrade.errors import KnownHostsError

log = logging.getLogger(__name__)


def known_hosts_name(host: str, port: int) -> str:
    """The name a host is filed under in known_hosts (``[host]:port`` off port 22)."""
    return host if port == 22 else f"[{host}]:{port}"


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
