"""The ``host-key-change`` fault: a host's sshd gets a new host key, as after a reinstall.

The host's key pair (``hosts/<host>/etc/ssh/ssh_host_ed25519_key``) is moved aside, a new one
is generated in its place and the host's sshd is sent SIGHUP: sshd re-executes itself with the
options it was started with and reads its configuration and host keys again (same pid). The
sessions open before are ended (SIGTERM to their sshd processes), as a reinstalled host's
would be, so a client's next session connects anew and is offered the new key, which the
sandbox's known_hosts does not record. Clearing puts the old pair back and sends SIGHUP again.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

from bm_upgrade.sandbox import processes
from bm_upgrade.sandbox.fault_targets import FaultError, Injection, host_of, sshd_pids
from bm_upgrade.sandbox.logins import SshdError
from bm_upgrade.sandbox.sshd import wait_for_port
from bm_upgrade.sandbox.sshkeys import keygen

_KEY = "ssh_host_ed25519_key"
_SAVED = ".before-host-key-change"


def _ssh_dir(directory: Path, host: str) -> Path:
    return directory / "hosts" / host / "etc" / "ssh"


def _listen(ssh_dir: Path) -> tuple[str, int]:
    """The address and port the host's sshd listens on (its sshd_config)."""
    for line in (ssh_dir / "sshd_config").read_text(encoding="utf-8").splitlines():
        if line.startswith("ListenAddress "):
            address, _, port = line.split(" ", 1)[1].rpartition(":")
            return address, int(port)
    raise FaultError(f"{ssh_dir / 'sshd_config'} has no ListenAddress; is the sandbox up?")


def _reload(directory: Path, host: str, pid: int) -> None:
    """SIGHUP the host's sshd listener and wait until it accepts connections again."""
    if not (processes.pid_alive(pid) and processes.belongs_to(pid, directory)):
        raise FaultError(f"the sshd of host {host} (pid {pid}) is not running")
    os.kill(pid, signal.SIGHUP)
    address, port = _listen(_ssh_dir(directory, host))
    try:
        wait_for_port(address, port)
    except SshdError as exc:
        raise FaultError(f"the sshd of host {host} did not come back after SIGHUP: {exc}") from None


def _pair(folder: Path, suffix: str = "") -> list[tuple[Path, Path]]:
    """(the key file, its saved copy) for the private and public halves."""
    return [(folder / name, folder / (name + suffix)) for name in (_KEY, _KEY + ".pub")]


def inject_host_key_change(job: Injection) -> str:
    """Move the host's key pair aside (the first time), generate a new one, SIGHUP sshd."""
    host = host_of(job.info, job.target)
    pid, *sessions = sshd_pids(job.directory, host)
    ssh_dir = _ssh_dir(job.directory, host)
    for key, saved in _pair(ssh_dir, _SAVED):
        if not saved.exists():  # injecting twice keeps the first original
            shutil.copy2(key, saved)
    keygen(ssh_dir / _KEY, f"sandbox-host-{host}-changed")
    _reload(job.directory, host, pid)
    for session in sessions:  # children of the listener checked above: this host's own
        if processes.pid_alive(session):
            os.kill(session, signal.SIGTERM)
    job.record.update(host=host, pid=pid)
    return (
        f"sshd of host {host} now offers a new host key (pid {pid} reloaded, "
        f"{len(sessions)} open session(s) ended)"
    )


def clear_host_key_change(directory: Path, record: dict[str, Any]) -> None:
    """Put the host's original key pair back and SIGHUP its sshd."""
    host = str(record["host"])
    ssh_dir = _ssh_dir(directory, host)
    for key, saved in _pair(ssh_dir, _SAVED):
        if saved.exists():
            os.replace(saved, key)
    pid = int(record["pid"])
    if processes.pid_alive(pid) and processes.belongs_to(pid, directory):
        _reload(directory, host, pid)
