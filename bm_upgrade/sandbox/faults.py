"""Fault injection for tests and rehearsals: ``bm-upgrade sandbox fault --dir DIR KIND TARGET``.

A fault is a file ``DIR/faults/<kind>@<target>.json`` that the kit's programs consult
(``tccommon.fault``), or an action on a process taken here. Every injection and clearing is
journaled as ``fault`` {kind, target, action: "inject"|"clear", ...}. The kinds:

=================  ==============================  ========================================
kind               target                          effect
=================  ==============================  ========================================
no-sync            server name                     the server joins as a mirror but never
                                                   leaves PASSIVE-UNINITIALIZED (clearing it
                                                   lets the waiting mirror sync at once)
crash-on-start     kit version or server /         servers (and orchestrators) of that
                   orchestrator name               version / name exit 2 at start (FATAL)
host-down          host address or node name       the host's sshd (listener and sessions)
                                                   is SIGSTOPped: connections hang until
                                                   the tool's timeout; clear SIGCONTs it
kill               server or orchestrator name     kill -9 now (nothing to clear)
expired-license    ``license`` (DIR's key), a      the key file is replaced by a validly
                   node name or a host address     signed expired key; clear restores it
slow-stop          server or orchestrator name     a requested stop (REST, stop script,
                                                   SIGTERM) takes ``seconds`` longer
=================  ==============================  ========================================
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bm_upgrade.sandbox import journal, license, processes
from bm_upgrade.sandbox.fault_targets import (
    FaultError,
    host_of,
    kill,
    license_path,
    need,
    nodes,
    rewrite,
    sandbox,
    sshd_pids,
)

__all__ = [
    "DEFAULT_SLOW_STOP_S",
    "KINDS",
    "FaultError",
    "active",
    "clear",
    "fault_file",
    "inject",
    "injected",
    "resume_hosts",
]

KINDS = ("no-sync", "crash-on-start", "host-down", "kill", "expired-license", "slow-stop")
DEFAULT_SLOW_STOP_S = 5.0
_TARGET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(\.\d+)*$")


def fault_file(directory: Path, kind: str, target: str) -> Path:
    """Where the fault ``kind`` on ``target`` is recorded."""
    return directory / "faults" / f"{kind}@{target}.json"


def active(directory: Path) -> list[dict[str, Any]]:
    """Every fault in force, as recorded (kind, target, and the kind's own fields)."""
    found = []
    for path in sorted((directory / "faults").glob("*@*.json")):
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return found


def inject(directory: Path, kind: str, target: str, *, seconds: float | None = None) -> str:
    """Inject ``kind`` on ``target``; returns one sentence saying what was done.

    Raises:
        FaultError: unknown kind or target, or the target is not in a state to take it.
    """
    directory = directory.resolve()
    info = sandbox(directory)
    if kind not in KINDS:
        raise FaultError(f"unknown fault kind {kind!r}; use one of {', '.join(KINDS)}")
    if not _TARGET_RE.match(target):
        raise FaultError(f"{target!r} is not a node name, host address or version")
    record: dict[str, Any] = {"kind": kind, "target": target}
    if kind == "kill":
        message = kill(directory, info, target)
        journal.append(
            directory / "journal.jsonl", "fault", kind=kind, target=target, action="inject"
        )
        return message
    if kind == "no-sync":
        need(target, nodes(info, ("servers",)), "a server name")
        message = f"server {target} will stay PASSIVE-UNINITIALIZED when it joins an active"
    elif kind == "crash-on-start":
        if not _VERSION_RE.match(target):
            need(
                target,
                nodes(info, ("servers", "orchestrators")),
                "a kit version (e.g. 4.2.1) or a server / orchestrator name",
            )
        message = f"servers and orchestrators of {target} will exit 2 at start"
    elif kind == "slow-stop":
        need(target, nodes(info, ("servers", "orchestrators")), "a server or orchestrator name")
        record["seconds"] = DEFAULT_SLOW_STOP_S if seconds is None else float(seconds)
        message = f"{target} will take {record['seconds']:g} s more to stop"
    elif kind == "host-down":
        host = host_of(info, target)
        record["host"] = host
        record["pids"] = sshd_pids(directory, host)
        for pid in record["pids"]:
            os.kill(pid, signal.SIGSTOP)
        message = f"sshd of host {host} stopped answering (SIGSTOP, pids {record['pids']})"
    else:  # expired-license
        key = license_path(directory, info, target)
        record["path"] = str(key)
        previous = fault_file(directory, kind, target)
        try:  # injecting twice keeps the first original
            record["original"] = json.loads(previous.read_text("utf-8"))["original"]
        except (OSError, ValueError, KeyError):
            record["original"] = key.read_text(encoding="utf-8")
        rewrite(key, license.render_license(expiry=datetime.date(2015, 1, 1)))
        message = f"license key {key} is now expired (2015-01-01)"
    path = fault_file(directory, kind, target)
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    path.chmod(0o644)
    journal.append(
        directory / "journal.jsonl",
        "fault",
        kind=kind,
        target=target,
        action="inject",
        **{k: v for k, v in record.items() if k in ("seconds", "host", "path")},
    )
    return message


def clear(directory: Path, target: str | None = None) -> list[str]:
    """Clear every fault (on ``target`` only, when given); returns one sentence per fault."""
    directory = directory.resolve()
    sandbox(directory)
    messages = []
    for record in active(directory):
        kind, name = str(record.get("kind")), str(record.get("target"))
        if target is not None and target not in (name, record.get("host")):
            continue
        if kind == "host-down":
            for pid in record.get("pids", []):
                if processes.pid_alive(int(pid)) and processes.belongs_to(int(pid), directory):
                    os.kill(int(pid), signal.SIGCONT)
        elif kind == "expired-license" and "original" in record:
            rewrite(Path(record["path"]), str(record["original"]))
        fault_file(directory, kind, name).unlink(missing_ok=True)
        journal.append(directory / "journal.jsonl", "fault", kind=kind, target=name, action="clear")
        messages.append(f"cleared {kind} on {name}")
    return messages


@contextlib.contextmanager
def injected(
    directory: Path, kind: str, target: str, *, seconds: float | None = None
) -> Iterator[str]:
    """:func:`inject` for the duration of a ``with`` block (yields its sentence), then
    :func:`clear` on ``target``, whatever the block did."""
    message = inject(directory, kind, target, seconds=seconds)
    try:
        yield message
    finally:
        clear(directory, target)


def resume_hosts(directory: Path) -> None:
    """SIGCONT every sshd a host-down fault stopped (so `down` can stop it quickly)."""
    for record in active(directory):
        if record.get("kind") == "host-down":
            for pid in record.get("pids", []):
                if processes.pid_alive(int(pid)):
                    os.kill(int(pid), signal.SIGCONT)
