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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bm_upgrade.sandbox import journal, license, processes

KINDS = ("no-sync", "crash-on-start", "host-down", "kill", "expired-license", "slow-stop")
DEFAULT_SLOW_STOP_S = 5.0
KIT_SUBPATH = Path("opt") / "terracotta" / "bigmemory-max"
_TARGET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(\.\d+)*$")


class FaultError(Exception):
    """The fault cannot be injected or cleared; the message names the target and the fix."""


def _sandbox(directory: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((directory / "sandbox.json").read_text("utf-8"))
    except FileNotFoundError:
        raise FaultError(
            f"{directory} holds no sandbox (no sandbox.json); give the --dir of "
            "`bm-upgrade sandbox up`"
        ) from None
    except (OSError, ValueError) as exc:
        raise FaultError(f"cannot read {directory / 'sandbox.json'}: {exc}") from None
    return data


def _nodes(info: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    nodes: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        for name, entry in (info.get(kind) or {}).items():
            nodes[name] = {**entry, "kind": kind}
    return nodes


def _hosts(info: dict[str, Any]) -> set[str]:
    return {str(e["host"]) for e in _nodes(info, ("servers", "clients", "orchestrators")).values()}


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
    info = _sandbox(directory)
    if kind not in KINDS:
        raise FaultError(f"unknown fault kind {kind!r}; use one of {', '.join(KINDS)}")
    if not _TARGET_RE.match(target):
        raise FaultError(f"{target!r} is not a node name, host address or version")
    record: dict[str, Any] = {"kind": kind, "target": target}
    if kind == "kill":
        message = _kill(directory, info, target)
        journal.append(
            directory / "journal.jsonl", "fault", kind=kind, target=target, action="inject"
        )
        return message
    if kind == "no-sync":
        _need(target, _nodes(info, ("servers",)), "a server name")
        message = f"server {target} will stay PASSIVE-UNINITIALIZED when it joins an active"
    elif kind == "crash-on-start":
        if not _VERSION_RE.match(target):
            _need(
                target,
                _nodes(info, ("servers", "orchestrators")),
                "a kit version (e.g. 4.2.1) or a server / orchestrator name",
            )
        message = f"servers and orchestrators of {target} will exit 2 at start"
    elif kind == "slow-stop":
        _need(target, _nodes(info, ("servers", "orchestrators")), "a server or orchestrator name")
        record["seconds"] = DEFAULT_SLOW_STOP_S if seconds is None else float(seconds)
        message = f"{target} will take {record['seconds']:g} s more to stop"
    elif kind == "host-down":
        host = _host_of(info, target)
        record["host"] = host
        record["pids"] = _sshd_pids(directory, host)
        for pid in record["pids"]:
            os.kill(pid, signal.SIGSTOP)
        message = f"sshd of host {host} stopped answering (SIGSTOP, pids {record['pids']})"
    else:  # expired-license
        key = _license_path(directory, info, target)
        record["path"] = str(key)
        previous = fault_file(directory, kind, target)
        try:  # injecting twice keeps the first original
            record["original"] = json.loads(previous.read_text("utf-8"))["original"]
        except (OSError, ValueError, KeyError):
            record["original"] = key.read_text(encoding="utf-8")
        _rewrite(key, license.render_license(expiry=datetime.date(2015, 1, 1)))
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
    _sandbox(directory)
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
            _rewrite(Path(record["path"]), str(record["original"]))
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


# -- helpers ------------------------------------------------------------------------------------
def _need(target: str, nodes: dict[str, dict[str, Any]], what: str) -> dict[str, Any]:
    if target not in nodes:
        known = ", ".join(sorted(nodes)) or "none"
        raise FaultError(f"{target!r} is not {what} of this sandbox (known: {known})")
    return nodes[target]


def _host_of(info: dict[str, Any], target: str) -> str:
    if target in _hosts(info):
        return target
    node = _need(
        target, _nodes(info, ("servers", "clients", "orchestrators")), "a host address or node name"
    )
    return str(node["host"])


def _sshd_pids(directory: Path, host: str) -> list[int]:
    pid_file = directory / "hosts" / host / "run" / "sshd.pid"
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        raise FaultError(
            f"host {host} has no running sshd ({pid_file} is missing); is the sandbox up?"
        ) from None
    if not (processes.pid_alive(pid) and processes.belongs_to(pid, directory)):
        raise FaultError(f"the sshd of host {host} (pid {pid}) is not running; is the sandbox up?")
    # The listener and its per-connection processes: open sessions hang too.
    return [pid, *[p for p in processes.children_of(pid) if _is_sshd(p)]]


def _is_sshd(pid: int) -> bool:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text(encoding="ascii").strip()
    except OSError:
        return False
    return comm.startswith("sshd")


def _license_path(directory: Path, info: dict[str, Any], target: str) -> Path:
    if target == "license":
        return directory / license.LICENSE_FILE_NAME
    if target in _hosts(info):
        kit = directory / "hosts" / target / KIT_SUBPATH
    else:
        node = _need(
            target,
            _nodes(info, ("servers", "orchestrators")),
            "'license', a server / orchestrator name or a host address",
        )
        kit = Path(node.get("install_dir") or directory / "hosts" / node["host"] / KIT_SUBPATH)
    key = kit / license.LICENSE_FILE_NAME
    if not key.is_file():
        raise FaultError(f"{key} does not exist; nothing to expire on {target}")
    return key


def _rewrite(path: Path, text: str) -> None:
    """Rewrite in place: the file keeps its owner (the login user)."""
    with path.open("w", encoding="utf-8") as stream:
        stream.write(text)


def _kill(directory: Path, info: dict[str, Any], target: str) -> str:
    node = _need(
        target, _nodes(info, ("servers", "orchestrators")), "a server or orchestrator name"
    )
    is_server = node["kind"] == "servers"
    pid_file = directory / "run" / f"{'server' if is_server else 'orchestrator'}-{target}.pid"
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        pid = 0
    if not pid or not (processes.pid_alive(pid) and processes.belongs_to(pid, directory)):
        raise FaultError(f"{target} is not running (no live pid in {pid_file}); nothing to kill")
    version = _version_of(pid)
    serving = None if is_server else _wan_status(node)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while processes.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    pid_file.unlink(missing_ok=True)
    # A killed process cannot journal its own end; say it for it, as it would have.
    log = directory / "journal.jsonl"
    if is_server:
        journal.append(
            log,
            "server_state",
            region=node.get("region"),
            stripe=node.get("stripe"),
            server=target,
            state="STOP-STATE",
            version=version,
        )
        journal.append(
            log, "server_process", server=target, action="exit", version=version, exit_code=137
        )
    else:
        journal.append(
            log,
            "orchestrator_state",
            orchestrator=target,
            region=node.get("region"),
            role=node.get("role"),
            state="stopped",
            version=version,
        )
        # A killed replica region's serving orchestrator leaves its replicas unserved.
        if (
            serving
            and serving.get("state") == "running"
            and node.get("region") != info.get("wan_master_region")
        ):
            for cache in serving.get("caches", []):
                if cache.get("state") != "INACTIVE":
                    journal.append(
                        log,
                        "replica_cache",
                        region=node.get("region"),
                        cache=cache.get("name"),
                        state="INACTIVE",
                    )
    return f"killed {target} (pid {pid}, kill -9)"


def _wan_status(node: dict[str, Any]) -> dict[str, Any] | None:
    from bm_upgrade.sandbox import wan

    return wan.status(str(node["host"]), int(node["port"]))


def _version_of(pid: int) -> str | None:
    """The kit version a kit program runs from (its script path names the kit root)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    for arg in args:
        path = Path(arg.decode("utf-8", "replace"))
        if path.name.endswith(".py") and path.parent.name == "lib":
            props = path.parent / "tc-version.properties"
            for line in props.read_text(encoding="utf-8").splitlines() if props.is_file() else []:
                if line.startswith("version="):
                    return line.partition("=")[2].strip()
    return None
