"""What a fault acts on: the sandbox's nodes and hosts as ``sandbox.json`` lists them, the
processes and key files behind them, the ``kill`` fault, which acts at once, and the shape
of a fault kind (:class:`Kind`, :class:`Injection`; :mod:`bm_upgrade.sandbox.faults` holds
the table of kinds and is the command's entry point)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bm_upgrade.sandbox import journal, license, processes

KIT_SUBPATH = Path("opt") / "terracotta" / "bigmemory-max"


class FaultError(Exception):
    """The fault cannot be injected or cleared; the message names the target and the fix."""


@dataclass
class Injection:
    """One injection in progress: where, on what, and the record kept while it is in force.

    An injector acts (or only checks the target, for a fault the kit's programs read), fills
    in ``record`` with what it needs to be cleared, and returns one sentence."""

    directory: Path
    info: dict[str, Any]
    kind: str
    target: str
    seconds: float | None = None
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Kind:
    """One fault kind: its target rule (in words), how it is injected and cleared.

    Attributes:
        inject: acts on the target (raises :class:`FaultError` for a wrong one); returns the
            sentence the command prints.
        clear: undoes what ``inject`` did, given the record (None: removing the fault file is
            all, e.g. a fault the kit's programs read through ``tccommon.fault``).
        recorded: False for an action taken at once that leaves nothing in force (``kill``).
        journaled: record fields journaled with the ``fault`` event.
        takes_seconds: the kind takes ``--seconds``.
    """

    name: str
    targets: str
    effect: str
    inject: Callable[[Injection], str]
    clear: Callable[[Path, dict[str, Any]], None] | None = None
    recorded: bool = True
    journaled: tuple[str, ...] = ()
    takes_seconds: bool = False


def file_only(kinds: tuple[str, ...], what: str, said: str) -> Callable[[Injection], str]:
    """An injector for a fault the kit's programs read: the target must be a node of
    ``kinds`` (``what`` in words); ``said`` is formatted with ``target``."""

    def inject(job: Injection) -> str:
        need(job.target, nodes(job.info, kinds), what)
        return said.format(target=job.target)

    return inject


def sandbox(directory: Path) -> dict[str, Any]:
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


def nodes(info: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    nodes: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        for name, entry in (info.get(kind) or {}).items():
            nodes[name] = {**entry, "kind": kind}
    return nodes


def hosts(info: dict[str, Any]) -> set[str]:
    return {str(e["host"]) for e in nodes(info, ("servers", "clients", "orchestrators")).values()}


def need(target: str, nodes: dict[str, dict[str, Any]], what: str) -> dict[str, Any]:
    if target not in nodes:
        known = ", ".join(sorted(nodes)) or "none"
        raise FaultError(f"{target!r} is not {what} of this sandbox (known: {known})")
    return nodes[target]


def host_of(info: dict[str, Any], target: str) -> str:
    if target in hosts(info):
        return target
    node = need(
        target, nodes(info, ("servers", "clients", "orchestrators")), "a host address or node name"
    )
    return str(node["host"])


def sshd_pids(directory: Path, host: str) -> list[int]:
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


def license_path(directory: Path, info: dict[str, Any], target: str) -> Path:
    if target == "license":
        return directory / license.LICENSE_FILE_NAME
    if target in hosts(info):
        kit = directory / "hosts" / target / KIT_SUBPATH
    else:
        node = need(
            target,
            nodes(info, ("servers", "orchestrators")),
            "'license', a server / orchestrator name or a host address",
        )
        kit = Path(node.get("install_dir") or directory / "hosts" / node["host"] / KIT_SUBPATH)
    key = kit / license.LICENSE_FILE_NAME
    if not key.is_file():
        raise FaultError(f"{key} does not exist; nothing to expire on {target}")
    return key


def rewrite(path: Path, text: str) -> None:
    """Rewrite in place: the file keeps its owner (the login user)."""
    with path.open("w", encoding="utf-8") as stream:
        stream.write(text)


def kill(directory: Path, info: dict[str, Any], target: str) -> str:
    node = need(target, nodes(info, ("servers", "orchestrators")), "a server or orchestrator name")
    is_server = node["kind"] == "servers"
    pid_file = directory / "run" / f"{'server' if is_server else 'orchestrator'}-{target}.pid"
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        pid = 0
    if not pid or not (processes.pid_alive(pid) and processes.belongs_to(pid, directory)):
        raise FaultError(f"{target} is not running (no live pid in {pid_file}); nothing to kill")
    version = _version_of(pid)
    serving = None if is_server else _wan_state(directory, target)
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
            fault="kill",
        )
        journal.append(
            log,
            "server_process",
            server=target,
            action="exit",
            version=version,
            exit_code=137,
            fault="kill",
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
            for cache, state in (serving.get("caches") or {}).items():
                if state != "INACTIVE":
                    journal.append(
                        log,
                        "replica_cache",
                        region=node.get("region"),
                        cache=cache,
                        state="INACTIVE",
                    )
    return f"killed {target} (pid {pid}, kill -9)"


def _wan_state(directory: Path, name: str) -> dict[str, Any] | None:
    """The orchestrator's own state file (the sandbox's view, not the product's)."""
    from bm_upgrade.sandbox import wan

    return wan.state(directory, name)


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
