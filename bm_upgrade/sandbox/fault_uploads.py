"""The ``drop-upload`` fault: a host's next SFTP session loses its SSH connection mid-upload.

Injecting writes a marker into the host's folder (:data:`MARKER`, holding a byte count). The
host's command wrapper (cmdwrap) finds it when the next SFTP session starts, takes it (renames
it, so one session only) and relays that session: whole SFTP requests go through until the
next would pass the byte count, sftp-server answers each one (so the part of the file those
requests carried is written, as on a real link that broke), then the wrapper kills the sshd
process serving the connection, and the client sees the connection drop. The wrapper
journals ``fault`` {kind: drop-upload, target: host, action: fired, bytes}. Clearing removes
the marker, taken or not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bm_upgrade.sandbox.fault_targets import Injection, host_of

MARKER = ".sandbox-drop-upload"
"""The marker's name in the host's folder (cmdwrap's DROP_MARKER)."""
DEFAULT_BYTES = 512 * 1024
"""The session's requests let through before the drop: with 252 KiB SFTP writes, the first
two writes of an upload (a sandbox kit is about 0.8 MB), so a partial file is left."""


def _marker(directory: Path, host: str) -> Path:
    return directory / "hosts" / host / MARKER


def inject_drop_upload(job: Injection) -> str:
    host = host_of(job.info, job.target)
    marker = _marker(job.directory, host)
    marker.write_text(f"{DEFAULT_BYTES}\n", encoding="ascii")
    marker.chmod(0o644)
    job.record.update(host=host, bytes=DEFAULT_BYTES)
    return (
        f"the next SFTP session to host {host} will lose its SSH connection after "
        f"{DEFAULT_BYTES} bytes of requests"
    )


def clear_drop_upload(directory: Path, record: dict[str, Any]) -> None:
    marker = _marker(directory, str(record["host"]))
    for path in (marker, marker.with_name(marker.name + ".fired")):
        path.unlink(missing_ok=True)
