"""`sandbox down`: every process of a sandbox stopped by PID, then anything still running from
under DIR; the address block given back.

A recorded pid is signalled only while it still belongs to the sandbox (pids are recycled;
see :mod:`bm_upgrade.sandbox.processes`).
"""

from __future__ import annotations

from pathlib import Path

from bm_upgrade.sandbox import blocks, faults, processes
from bm_upgrade.sandbox.cluster.launch import SandboxError


def recorded_pids(directory: Path) -> list[int]:
    """Every pid the sandbox recorded (DIR/run/*.pid, each host's sshd pid file)."""
    pids: list[int] = []
    for pid_file in [*directory.glob("run/*.pid"), *directory.glob("hosts/*/run/*.pid")]:
        try:
            pids.append(int(pid_file.read_text(encoding="ascii").strip()))
        except (OSError, ValueError):
            continue
    return pids


def running_pids(directory: Path) -> list[int]:
    """Recorded pids still alive, plus live processes under ``directory``."""
    # A recorded pid counts only while it is still ours: pids are recycled.
    alive = {pid for pid in recorded_pids(directory) if processes.belongs_to(pid, directory)}
    return sorted(alive | set(processes.processes_mentioning(directory)))


def down(directory: Path, timeout_s: float = 10.0) -> list[int]:
    """Stop every process of the sandbox in ``directory``; idempotent. Returns the pids seen."""
    directory = directory.resolve()
    seen: set[int] = set()
    faults.resume_hosts(directory)  # a SIGSTOPped sshd would ignore SIGTERM
    seen |= set(running_pids(directory))  # for the count: the sshd sweep below stops most
    # sshd first: no new commands start while the rest stops.
    for pid_file in directory.glob("hosts/*/run/sshd.pid"):
        try:
            pid = int(pid_file.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            continue
        seen.add(pid)
        processes.stop_process_tree(pid, timeout_s=timeout_s, root=directory)
    for _ in range(3):
        pids = set(running_pids(directory))
        pids |= {child for pid in pids for child in processes.children_of(pid)}
        if not pids:
            break
        seen |= pids
        processes.stop_pids(sorted(pids), timeout_s=timeout_s)
    for pid_file in [*directory.glob("run/*.pid"), *directory.glob("hosts/*/run/*.pid")]:
        pid_file.unlink(missing_ok=True)
    leftover = running_pids(directory)
    if leftover:
        raise SandboxError(
            f"processes {leftover} under {directory} would not stop; kill them by hand"
        )
    blocks.release_block(directory)
    return sorted(seen)
