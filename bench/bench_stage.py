"""Staging a kit to 8 hosts: bm_upgrade's SSH layer against 8 OpenSSH ``scp`` processes side by
side (a figure, not a test)::

    .venv/bin/python bench/bench_stage.py [--hosts 8] [--size-mb 96] [--repeat 2]

Starts ``--hosts`` sandbox sshd on loopback addresses of one block (the sandbox's rights are
needed), makes one file of random bytes (a kit's size), and sends it to every host, best of
``--repeat``, from nothing (no connection open, no copy there):

- ``bm_upgrade``: what ``stage_kit`` does (procedure/kit/staging.py): a fresh
  :class:`HostPool` fans :meth:`Connection.upload` out to the hosts (connect, mkdir, transfer,
  ``sha256sum`` on the host against the kit's checksum, rename), up to the pool's
  ``max_parallel`` (8) at once, threads of one process;
- ``scp``: one OpenSSH ``scp`` process per host, all started together, same key and file.

The issue's goal: scp time / bm_upgrade time >= 1.0.
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

from bm_upgrade.inventory import SshSettings
from bm_upgrade.remote import HostPool
from bm_upgrade.remote.transfer import file_sha256
from bm_upgrade.sandbox import blocks, logins, sshd, sshkeys


def best_of(repeat: int, action: Callable[[], None], before: Callable[[], None]) -> float:
    times = []
    for _ in range(repeat):
        before()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(hosts: int = 8, size_mb: int = 96, repeat: int = 2) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="bm-upgrade-bench-stage-"))
    base.chmod(0o711)
    owner = base / "block"
    block = blocks.reserve_block(owner)
    handles: list[sshd.SshdHandle] = []
    try:
        user = logins.login_user()
        key = sshkeys.create_client_key(base / "client" / "id_ed25519")
        work: dict[str, Path] = {}
        for i in range(hosts):
            address = f"{block}.{i + 1}"
            root, folder = base / "hosts" / address, base / "work" / address
            for path in (root, folder):
                path.mkdir(parents=True)
                logins.give_to_user(path, user)
            logins.grant_traverse(folder)
            handles.append(
                sshd.start_sshd(
                    address,
                    logins.default_port(),
                    root,
                    authorized_key=key.public_line,
                    login_user=user,
                )
            )
            work[address] = folder
        known = sshkeys.write_known_hosts(base / "client" / "known_hosts", handles)
        port = handles[0].port
        settings = SshSettings(
            user=user, port=port, key_file=str(key.private), known_hosts=str(known), use_agent=False
        )
        payload = base / "kit.tar.gz"
        with payload.open("wb") as fh:
            for _ in range(size_mb):
                fh.write(os.urandom(1 << 20))
        sha = file_sha256(payload)

        def clean() -> None:
            for folder in work.values():
                for path in folder.iterdir():
                    path.unlink()

        def tool() -> None:
            with HostPool(settings) as pool:
                staged = pool.fan_out(
                    work,
                    lambda conn: conn.upload(payload, str(work[conn.host] / payload.name), sha),
                )
                staged.values()  # raises the first host's error, if any

        def scp() -> None:
            children = [
                subprocess.Popen(
                    [
                        shutil.which("scp") or "scp",
                        "-q",
                        "-i",
                        str(key.private),
                        "-P",
                        str(port),
                        "-o",
                        f"UserKnownHostsFile={known}",
                        "-o",
                        "StrictHostKeyChecking=yes",
                        "-o",
                        "BatchMode=yes",
                        str(payload),
                        f"{user}@{address}:{folder / payload.name}",
                    ]
                )
                for address, folder in work.items()
            ]
            codes = [child.wait() for child in children]
            if any(codes):
                raise RuntimeError(f"scp exit codes {codes}")

        tool_s = best_of(repeat, tool, clean)
        scp_s = best_of(repeat, scp, clean)
        ratio = scp_s / tool_s
        total = size_mb * hosts
        print(
            f"staging {size_mb} MiB to {hosts} hosts (best of {repeat}): bm_upgrade "
            f"{tool_s:.2f} s ({total / tool_s:.0f} MiB/s in all), {hosts} scp side by side "
            f"{scp_s:.2f} s ({total / scp_s:.0f} MiB/s); scp / bm_upgrade {ratio:.2f} (goal 1.0)"
        )
        return {
            "hosts": hosts,
            "size_mib": size_mb,
            "tool_s": round(tool_s, 2),
            "scp_s": round(scp_s, 2),
            "ratio": round(ratio, 3),
        }
    finally:
        for handle in handles:
            handle.stop()
        blocks.release_block(owner)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--size-mb", type=int, default=96)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    measure(args.hosts, args.size_mb, args.repeat)


if __name__ == "__main__":
    main()
