"""Fault injection for tests and rehearsals: ``bm-upgrade sandbox fault --dir DIR KIND TARGET``.

A fault is a file ``DIR/faults/<kind>@<target>.json`` that the kit's programs consult
(``tccommon.fault``), or an action taken here (on a process, a file of a host), undone by
``--clear``. Every injection and clearing is journaled as ``fault`` {kind, target, action:
"inject"|"clear", ...}. :data:`KINDS` is the table of kinds (ENGINE.md "Faults" describes
each): a kind's target rule, its injector and its clearer, so adding one is one entry.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bm_upgrade.sandbox import (
    fault_hostkeys,
    fault_kits,
    fault_uploads,
    journal,
    license,
    processes,
)
from bm_upgrade.sandbox.fault_kinds_apps import KINDS as APP_KINDS
from bm_upgrade.sandbox.fault_targets import (
    FaultError,
    Injection,
    Kind,
    file_only,
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
    "Kind",
    "active",
    "clear",
    "fault_file",
    "inject",
    "injected",
    "resume_hosts",
]

DEFAULT_SLOW_STOP_S = 5.0
_TARGET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(\.\d+)*$")
_SERVERS_OR_ORCHESTRATORS = "a server or orchestrator name"


def _version_or_node(
    said: str, kinds: tuple[str, ...] = ("servers", "orchestrators")
) -> Callable[[Injection], str]:
    """An injector for a fault on a kit version or a node name (of ``kinds``)."""
    what = " / ".join(k.rstrip("s") for k in kinds)

    def inject(job: Injection) -> str:
        if not _VERSION_RE.match(job.target):
            need(
                job.target,
                nodes(job.info, kinds),
                f"a kit version (e.g. 4.2.1) or a {what} name",
            )
        return said.format(target=job.target)

    return inject


def _inject_kill(job: Injection) -> str:
    return kill(job.directory, job.info, job.target)


def _inject_slow_stop(job: Injection) -> str:
    need(job.target, nodes(job.info, ("servers", "orchestrators")), _SERVERS_OR_ORCHESTRATORS)
    job.record["seconds"] = DEFAULT_SLOW_STOP_S if job.seconds is None else float(job.seconds)
    return f"{job.target} will take {job.record['seconds']:g} s more to stop"


def _inject_host_down(job: Injection) -> str:
    host = host_of(job.info, job.target)
    job.record["host"] = host
    job.record["pids"] = sshd_pids(job.directory, host)
    for pid in job.record["pids"]:
        os.kill(pid, signal.SIGSTOP)
    return f"sshd of host {host} stopped answering (SIGSTOP, pids {job.record['pids']})"


def _clear_host_down(directory: Path, record: dict[str, Any]) -> None:
    for pid in record.get("pids", []):
        if processes.pid_alive(int(pid)) and processes.belongs_to(int(pid), directory):
            os.kill(int(pid), signal.SIGCONT)


def _inject_expired_license(job: Injection) -> str:
    key = license_path(job.directory, job.info, job.target)
    job.record["path"] = str(key)
    previous = fault_file(job.directory, job.kind, job.target)
    try:  # injecting twice keeps the first original
        job.record["original"] = json.loads(previous.read_text("utf-8"))["original"]
    except (OSError, ValueError, KeyError):
        job.record["original"] = key.read_text(encoding="utf-8")
    rewrite(key, license.render_license(expiry=datetime.date(2015, 1, 1)))
    return f"license key {key} is now expired (2015-01-01)"


def _clear_expired_license(directory: Path, record: dict[str, Any]) -> None:
    if "original" in record:
        rewrite(Path(record["path"]), str(record["original"]))


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "no-sync",
            "server name",
            "the server joins as a mirror but never leaves PASSIVE-UNINITIALIZED (clearing "
            "it lets the waiting mirror sync at once)",
            file_only(
                ("servers",),
                "a server name",
                "server {target} will stay PASSIVE-UNINITIALIZED when it joins an active",
            ),
        ),
        Kind(
            "crash-on-start",
            "kit version or server / orchestrator name",
            "servers (and orchestrators) of that version / name exit 2 at start (FATAL)",
            _version_or_node("servers and orchestrators of {target} will exit 2 at start"),
        ),
        Kind(
            "host-down",
            "host address or node name",
            "the host's sshd (listener and sessions) is SIGSTOPped: connections hang until "
            "the tool's timeout; clear SIGCONTs it",
            _inject_host_down,
            _clear_host_down,
            journaled=("host",),
        ),
        Kind(
            "kill",
            "server or orchestrator name",
            "kill -9 now (nothing to clear)",
            _inject_kill,
            recorded=False,
        ),
        Kind(
            "expired-license",
            "``license`` (DIR's key), a node name or a host address",
            "the key file is replaced by a validly signed expired key; clear restores it",
            _inject_expired_license,
            _clear_expired_license,
            journaled=("path",),
        ),
        Kind(
            "slow-stop",
            "server or orchestrator name",
            "a requested stop (REST, stop script, SIGTERM) takes ``seconds`` longer",
            _inject_slow_stop,
            journaled=("seconds",),
            takes_seconds=True,
        ),
        Kind(
            "restart-loop",
            "kit version or server name",
            "servers of that version / name exit 11 (restart me) right after their boot, "
            "every time: the start script relaunches them forever; clear lets the next "
            "relaunch start",
            _version_or_node(
                "servers of {target} will exit 11 at every start (a restart loop)", ("servers",)
            ),
        ),
        Kind(
            "partition",
            "server name (a mirror)",
            "the stripe's active drops the mirror's group-port link and refuses its joins: "
            "the mirror leaves PASSIVE-STANDBY and waits PASSIVE-UNINITIALIZED; clear lets it "
            "join and sync again",
            file_only(
                ("servers",),
                "a server name",
                "server {target} is cut off from its active's group port",
            ),
        ),
        *APP_KINDS,  # clients and WAN orchestrators: fault_kinds_apps.py
        Kind(
            "corrupt-staged-kit",
            "host address or node name (its host)",
            "16 bytes flipped in every kit tarball lying on the host (what a run staged); "
            "clear puts them back in a file not staged again since",
            fault_kits.inject_corrupt_staged_kit,
            fault_kits.clear_corrupt_staged_kit,
            journaled=("host",),
        ),
        Kind(
            "mislabelled-kit",
            "kit version the sandbox serves",
            "the kit served under that version is the next maintenance version's (its "
            "version.sh says so) and the inventory's sha256 follows; clear serves the true "
            "kit and restores the sha256",
            fault_kits.inject_mislabelled_kit,
            fault_kits.clear_mislabelled_kit,
            journaled=("reports",),
        ),
        Kind(
            "disk-full",
            "host address or node name (its host)",
            "tar on the host fails with 'No space left on device' when it extracts (leaving "
            "what it wrote); clear removes the stand-in",
            fault_kits.inject_disk_full,
            fault_kits.clear_disk_full,
            journaled=("host",),
        ),
        Kind(
            "host-key-change",
            "host address or node name (its host)",
            "the host's sshd offers a new host key (a new pair generated, sshd reloaded by "
            "SIGHUP), as after a reinstall; clear restores the old pair and reloads",
            fault_hostkeys.inject_host_key_change,
            fault_hostkeys.clear_host_key_change,
            journaled=("host",),
        ),
        Kind(
            "drop-upload",
            "host address or node name (its host)",
            "the host's next SFTP session is cut: its first 512 KiB of requests are served, "
            "then its SSH connection drops (once); clear removes the fault, fired or not",
            fault_uploads.inject_drop_upload,
            fault_uploads.clear_drop_upload,
            journaled=("host", "bytes"),
        ),
    )
}
"""Every fault kind by name. Adding one is one entry: its target rule, an injector (for a
fault the kit's programs read, :func:`~bm_upgrade.sandbox.fault_targets.file_only`) and, when
injecting changed something, a clearer."""


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
    spec = KINDS.get(kind)
    if spec is None:
        raise FaultError(f"unknown fault kind {kind!r}; use one of {', '.join(KINDS)}")
    if not _TARGET_RE.match(target):
        raise FaultError(f"{target!r} is not a node name, host address or version")
    job = Injection(directory, info, kind, target, seconds, {"kind": kind, "target": target})
    message = spec.inject(job)
    if spec.recorded:
        path = fault_file(directory, kind, target)
        path.write_text(json.dumps(job.record) + "\n", encoding="utf-8")
        path.chmod(0o644)
    extra = {k: v for k, v in job.record.items() if k in spec.journaled}
    journal.append(
        directory / "journal.jsonl", "fault", kind=kind, target=target, action="inject", **extra
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
        spec = KINDS.get(kind)
        if spec is not None and spec.clear is not None:
            spec.clear(directory, record)
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
