"""Processes of a sandbox: alive or not, their descendants, stopping them by PID.

PIDs are recycled (pid_max is 32768 on small machines, and a test run starts thousands of
processes), so nothing here signals a PID from a pid file without checking that the process
still belongs to the sandbox (:func:`belongs_to`); the caller and its ancestors are never
signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie counts as gone (PID 1 here may never reap it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return fields[0] not in ("Z", "X")


def children_of(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(parents.get(child, []))
    return found


def _ancestors() -> set[int]:
    """This process and its ancestors: never signalled, whatever a pid file says."""
    found, pid = {os.getpid()}, os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return found


def stop_pids(pids: Iterable[int], timeout_s: float = 5.0) -> None:
    """SIGTERM ``pids``, then SIGKILL whatever still runs after ``timeout_s``."""
    protected = _ancestors()
    pids = [pid for pid in pids if pid > 1 and pid not in protected]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def belongs_to(pid: int, folder: Path) -> bool:
    """True if the live process ``pid`` names a path under ``folder`` in its command line, or
    works in it.

    PIDs are recycled (pid_max is 32768 here, and a test run starts thousands of processes),
    so a pid file may name a process that is no longer ours: check before signalling it.
    """
    prefix = str(folder.resolve())
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    words = [a.decode("utf-8", "replace") for a in args]
    return (
        _under(cwd, prefix)
        or any(_under(w, prefix) or f"={prefix}/" in w or f" {prefix}/" in w for w in words)
    ) and pid_alive(pid)


def processes_mentioning(folder: Path) -> list[int]:
    """Live processes whose command line names a path under ``folder`` (or work in it).

    This process and its ancestors are left out: a `sh -c "bm-upgrade sandbox down --dir
    DIR"` that runs us names DIR too, and is not part of the sandbox.
    """
    own = _ancestors()
    return [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and int(entry) not in own and belongs_to(int(entry), folder)
    ]


def stop_process_tree(pid: int, timeout_s: float = 5.0, root: Path | None = None) -> None:
    """Stop ``pid`` and its descendants (an sshd listener, its connections and their
    commands), plus, when ``root`` is given, processes whose command line names a path under
    it (the wrapper of a session whose sshd process is already gone)."""
    # With a root, a recorded pid is taken only while it still is ours (pids are recycled).
    ours = pid_alive(pid) and (root is None or belongs_to(pid, root))
    targets = [pid, *children_of(pid)] if ours else []
    if root is not None:
        targets += processes_mentioning(root)
    if targets:
        stop_pids(sorted(set(targets)), timeout_s)
