"""Upload throughput of bm_upgrade's SSH layer against OpenSSH ``scp`` (a figure, not a test).

Starts one real sshd on a loopback address (the sandbox's, so it needs the same rights as the
sandbox), makes a file of random bytes, and uploads it the ways compared below, best of N::

    .venv/bin/python bench/bench_upload.py [--size-mb 256] [--repeat 3]

- ``bm_upgrade upload``: :meth:`Connection.upload` end to end (mkdir, skip check, transfer,
  ``sha256sum`` on the host, rename), the kit's sha256 given as the inventory gives it;
- ``bm_upgrade transfer only``: the same SFTP writes without the checks;
- ``paramiko sftp.put``: paramiko's defaults (32 KiB requests, aes128-ctr), for reference;
- ``scp``: OpenSSH's client (SFTP protocol since 9.0), same key, host and file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko

from bm_upgrade.inventory import SshSettings
from bm_upgrade.remote import Connection
from bm_upgrade.remote.transfer import _send, file_sha256
from bm_upgrade.sandbox import blocks, logins, sshd, sshkeys

UPLOAD = "bm_upgrade upload (verified)"


def best_of(repeat: int, action: Callable[[], None], before: Callable[[], None]) -> float:
    times = []
    for _ in range(repeat):
        before()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def start_host(
    base: Path, address: str
) -> tuple[sshd.SshdHandle, SshSettings, sshkeys.ClientKey, Path]:
    """One sandbox sshd at ``address`` whose login user may write ``base/work``."""
    user = logins.login_user()
    key = sshkeys.create_client_key(base / "client" / "id_ed25519")
    root, work = base / "host", base / "work"
    for folder in (root, work):
        folder.mkdir(parents=True)
        logins.give_to_user(folder, user)
    logins.grant_traverse(work)
    handle = sshd.start_sshd(
        address, logins.default_port(), root, authorized_key=key.public_line, login_user=user
    )
    known = sshkeys.write_known_hosts(base / "client" / "known_hosts", [handle])
    settings = SshSettings(
        user=user,
        port=handle.port,
        key_file=str(key.private),
        known_hosts=str(known),
        use_agent=False,
    )
    return handle, settings, key, known


def measure(size_mb: int = 256, repeat: int = 3) -> dict[str, Any]:
    """Print the comparison of the module docstring; return seconds and MiB/s per way."""
    base = Path(tempfile.mkdtemp(prefix="bm-upgrade-bench-"))
    owner = base / "block"
    block = blocks.reserve_block(owner)
    handle: sshd.SshdHandle | None = None
    try:
        handle, settings, key, known = start_host(base, f"{block}.1")
        address, user = handle.address, handle.login_user

        payload = base / "kit.tar.gz"
        with payload.open("wb") as fh:
            for _ in range(size_mb):
                fh.write(os.urandom(1 << 20))
        sha = file_sha256(payload)
        mib = payload.stat().st_size / (1 << 20)
        dest = base / "work" / "kit.tar.gz"

        def clean() -> None:
            for path in (dest, Path(str(dest) + ".part")):
                path.unlink(missing_ok=True)

        results: dict[str, float] = {}
        with Connection(address, settings) as conn:
            conn.open()
            results[UPLOAD] = best_of(repeat, lambda: conn.upload(payload, str(dest), sha), clean)
            sftp = conn.sftp()
            results["bm_upgrade transfer only"] = best_of(
                repeat, lambda: _send(sftp, payload, str(dest), 0) and None, clean
            )
            cipher = conn.transport.remote_cipher

        plain = paramiko.SSHClient()
        plain.load_host_keys(str(known))
        plain.set_missing_host_key_policy(paramiko.RejectPolicy())
        plain.connect(
            address,
            handle.port,
            username=user,
            key_filename=str(key.private),
            allow_agent=False,
            look_for_keys=False,
        )
        plain_sftp = plain.open_sftp()
        results["paramiko sftp.put (defaults)"] = best_of(
            repeat, lambda: plain_sftp.put(str(payload), str(dest)) and None, clean
        )
        plain.close()

        scp = [
            shutil.which("scp") or "scp",
            "-q",
            "-i",
            str(key.private),
            "-P",
            str(handle.port),
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            str(payload),
            f"{user}@{address}:{dest}",
        ]
        results["OpenSSH scp"] = best_of(
            repeat, lambda: subprocess.run(scp, check=True) and None, clean
        )

        print(f"{mib:.0f} MiB over loopback, best of {repeat}; bm_upgrade cipher {cipher}")
        reference = mib / results["OpenSSH scp"]
        for name, seconds in results.items():
            rate = mib / seconds
            print(f"  {name:<32} {seconds:6.2f} s  {rate:7.1f} MiB/s  {rate / reference:5.2f}x scp")
        return {
            "size_mib": round(mib, 1),
            "ways": {
                name: {"s": round(seconds, 3), "mib_s": round(mib / seconds, 1)}
                for name, seconds in results.items()
            },
            "upload_vs_scp": round(results["OpenSSH scp"] / results[UPLOAD], 3),
        }
    finally:
        if handle is not None:
            handle.stop()
        blocks.release_block(owner)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    measure(args.size_mb, args.repeat)


if __name__ == "__main__":
    main()
