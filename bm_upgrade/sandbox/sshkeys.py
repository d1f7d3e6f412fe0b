"""Keys of the sandbox's SSH layer: the client key the tool logs in with, each host's key,
and the known_hosts file that lists them."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bm_upgrade.sandbox.logins import SshdError


class ListedHost(Protocol):
    """A host that can say its own known_hosts line (an sshd handle)."""

    def known_hosts_line(self) -> str: ...


@dataclass(frozen=True)
class ClientKey:
    """An ed25519 key pair the tool logs in with."""

    private: Path
    public: Path
    public_line: str


def keygen(path: Path, comment: str) -> None:
    """Write a new ed25519 key pair (no passphrase) to ``path`` and ``path.pub``, replacing
    any there; raises SshdError when ssh-keygen fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".pub")):
        stale.unlink(missing_ok=True)
    result = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SshdError(f"ssh-keygen failed for {path}: {result.stderr.strip()}")


def create_client_key(path: Path, comment: str = "bm_upgrade-sandbox") -> ClientKey:
    """Create an ed25519 key pair without passphrase at ``path`` and ``path.pub``."""
    keygen(path, comment)
    public = path.with_name(path.name + ".pub")
    return ClientKey(
        private=path, public=public, public_line=public.read_text(encoding="utf-8").strip()
    )


def known_hosts_line(address: str, port: int, host_key_pub: str) -> str:
    """``addr key`` for port 22, ``[addr]:port key`` otherwise (what ssh and paramiko look up)."""
    name = address if port == 22 else f"[{address}]:{port}"
    key_type, key_b64 = host_key_pub.split()[:2]
    return f"{name} {key_type} {key_b64}"


def write_known_hosts(path: Path, hosts: Iterable[ListedHost | tuple[str, int, str]]) -> Path:
    """Write a known_hosts file for ``hosts`` (handles or ``(address, port, host_key_pub)``)."""
    lines = []
    for host in hosts:
        lines.append(
            known_hosts_line(*host) if isinstance(host, tuple) else host.known_hosts_line()
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    path.chmod(0o644)
    return path
