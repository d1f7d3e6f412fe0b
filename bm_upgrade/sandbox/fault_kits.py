"""Faults on kits and the files around them (kinds of :data:`bm_upgrade.sandbox.faults.KINDS`):

- ``corrupt-staged-kit``: bytes flipped in every kit tarball lying on a host (what the tool
  staged there), as a disk might do between staging and unpacking;
- ``mislabelled-kit``: the kit the sandbox serves under a version's name is replaced by the
  next maintenance version's kit, and the inventory's sha256 follows (an operator who
  checksummed the wrong file): its ``version.sh`` reports another version than its label;
- ``disk-full``: ``tar`` on a host runs out of room when it extracts (a ``tar`` in the host's
  ``fault-bin`` folder, first on its SSH sessions' PATH: :func:`login_path`).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bm_upgrade.sandbox import kits
from bm_upgrade.sandbox.fault_targets import FaultError, Injection, host_of, rewrite

FAULT_BIN = "fault-bin"
"""A host's folder of stand-ins for system tools, first on its SSH sessions' PATH."""
LOGIN_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"
"""The PATH OpenSSH gives a login that is not root."""


def login_path(host_root: Path) -> str:
    """The PATH of a host's SSH sessions: its ``fault-bin`` folder, then the usual one."""
    return f"{host_root / FAULT_BIN}:{LOGIN_PATH}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- corrupt-staged-kit


def inject_corrupt_staged_kit(job: Injection) -> str:
    host = host_of(job.info, job.target)
    root = job.directory / "hosts" / host
    tarballs = sorted(p for p in root.rglob("bigmemory-max-*.tar.gz") if p.is_file())
    if not tarballs:
        raise FaultError(
            f"host {host} holds no kit tarball (bigmemory-max-*.tar.gz under {root}); "
            "stage one first (a run stages the kit before its first stop)"
        )
    flipped = []
    for path in tarballs:
        size = path.stat().st_size
        offset = size // 2
        with path.open("r+b") as stream:
            stream.seek(offset)
            original = stream.read(16)
            stream.seek(offset)
            stream.write(bytes(b ^ 0xFF for b in original))
        flipped.append(
            {
                "path": str(path),
                "offset": offset,
                "original": original.hex(),
                "sha256": _sha256(path),
            }
        )
    job.record["host"] = host
    job.record["files"] = flipped
    names = ", ".join(str(f["path"]) for f in flipped)
    return f"flipped 16 bytes in the middle of {names} on host {host}"


def clear_corrupt_staged_kit(directory: Path, record: dict[str, Any]) -> None:
    """Put the bytes back in each file that is still the corrupted one (a file staged again
    since is left alone)."""
    for entry in record.get("files", []):
        path = Path(entry["path"])
        if path.is_file() and _sha256(path) == entry["sha256"]:
            with path.open("r+b") as stream:
                stream.seek(int(entry["offset"]))
                stream.write(bytes.fromhex(entry["original"]))


# ---------------------------------------------------------------- mislabelled-kit


def _served_kit(directory: Path, version: str) -> Path:
    tarball = directory / "kits" / f"bigmemory-max-{version}.tar.gz"
    if not tarball.is_file():
        served = sorted(p.name for p in (directory / "kits").glob("bigmemory-max-*.tar.gz"))
        raise FaultError(
            f"the sandbox serves no kit {version} ({tarball} is missing; served: "
            f"{', '.join(served) or 'none'})"
        )
    return tarball


def _put_kit(directory: Path, label: str, version: str) -> str:
    """Make the kit served as ``label`` the kit of ``version`` (in place: same owner);
    returns its sha256 and writes it to the kit's ``.sha256`` file."""
    tarball = _served_kit(directory, label)
    with tempfile.TemporaryDirectory() as tmp:
        built = kits.build_kit(version, Path(tmp))
        with tarball.open("wb") as stream, built.open("rb") as source:
            shutil.copyfileobj(source, stream)
    digest = kits.sha256_of(tarball)
    rewrite(tarball.with_name(tarball.name + ".sha256"), f"{digest}  {tarball.name}\n")
    return digest


def _swap_in_inventory(directory: Path, old: str, new: str) -> None:
    inventory = directory / "inventory.yaml"
    text = inventory.read_text(encoding="utf-8")
    if old in text:
        rewrite(inventory, text.replace(old, new))


def inject_mislabelled_kit(job: Injection) -> str:
    label = job.target
    tarball = _served_kit(job.directory, label)
    if (job.directory / "faults" / f"{job.kind}@{label}.json").is_file():
        raise FaultError(f"kit {label} is already mislabelled; clear it first")
    parts = label.split(".")
    if len(parts) < 3 or not parts[2].isdigit():
        raise FaultError(f"{label!r} is not a kit version such as 4.2.1")
    reports = ".".join([*parts[:2], str(int(parts[2]) + 1), *parts[3:]])
    original = kits.sha256_of(tarball)
    digest = _put_kit(job.directory, label, reports)
    _swap_in_inventory(job.directory, original, digest)
    job.record.update({"label": label, "reports": reports, "original": original, "sha256": digest})
    return (
        f"the kit served as {label} is now {reports}'s (its version.sh prints {reports}); "
        f"the inventory's sha256 for it is {digest}"
    )


def clear_mislabelled_kit(directory: Path, record: dict[str, Any]) -> None:
    """Serve the true kit again under its label and put its sha256 back in the inventory."""
    if "label" not in record:
        return
    _put_kit(directory, str(record["label"]), str(record["label"]))
    _swap_in_inventory(directory, str(record["sha256"]), str(record["original"]))


# ---------------------------------------------------------------- disk-full

_FULL_TAR = """#!/bin/sh
# Sandbox fault disk-full: the host runs out of room while tar extracts.
PATH={path}
export PATH
extract=
for arg in "$@"; do
  case "$arg" in
    --extract|--get) extract=1 ;;
    --*) ;;
    -*x*) extract=1 ;;
  esac
done
if [ -z "$extract" ]; then
  exec tar "$@"
fi
tar "$@" 2>/dev/null
echo "tar: server/lib/tcserver.py: Cannot write: No space left on device" >&2
echo "tar: Exiting with failure status due to previous errors" >&2
exit 2
"""


def inject_disk_full(job: Injection) -> str:
    host = host_of(job.info, job.target)
    folder = job.directory / "hosts" / host / FAULT_BIN
    folder.mkdir(mode=0o755, exist_ok=True)
    shim = folder / "tar"
    shim.write_text(_FULL_TAR.format(path=LOGIN_PATH), encoding="utf-8")
    shim.chmod(0o755)
    job.record["host"] = host
    job.record["path"] = str(shim)
    return f"tar on host {host} now fails with 'No space left on device' when it extracts"


def clear_disk_full(directory: Path, record: dict[str, Any]) -> None:
    Path(record["path"]).unlink(missing_ok=True)
