"""The sandbox's own figures (not a test)::

    .venv/bin/python bench/bench_sandbox.py

- `sandbox up` of bm_upgrade/sandbox/topologies/bench.yaml (2 regions x 4 stripes x 2 servers
  + 8 clients): wall time (goal: within 15 s on this 2-core machine);
- every server process's RSS (goal: under 60 MB) and CPU over one second while the clients
  write (no busy polling: a few 10 ms ticks);
- a sync: a mirror restarted by hand with the kit's scripts, PASSIVE-UNINITIALIZED to
  PASSIVE-STANDBY from the journal, against the topology's sync_s (goal: within 10 %);
- what one command costs: over SSH on an open connection (through the installed command
  wrapper), and each wrapper alone (compiled and Python) around ``true``.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bm_upgrade.inventory import load_inventory
from bm_upgrade.remote import HostPool
from bm_upgrade.sandbox import cluster, logins, processes, topology, wrapper

TOPOLOGY = topology.resolve("bench")


def cpu_ticks(pid: int) -> int:
    """User + system clock ticks (10 ms) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def server_pids(directory: Path) -> dict[str, int]:
    """Server name -> pid of its server program (the python process, not the script)."""
    found: dict[str, int] = {}
    for pid in processes.processes_mentioning(directory):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode() for a in args if a]
        if any(w.endswith("tcserver.py") for w in words) and "-n" in words:
            found[words[words.index("-n") + 1]] = pid
    return found


def median_ms(action: object, times: int = 30) -> float:
    assert callable(action)
    action()
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return sorted(samples)[len(samples) // 2] * 1000


def command_costs(directory: Path, inventory_path: Path) -> dict[str, float]:
    figures = {}
    inventory = load_inventory(inventory_path)
    host = inventory.regions[0].stripes[0].servers[0].host
    with HostPool(inventory.ssh) as pool:
        conn = pool.get(host)
        figures["ssh_command_ms"] = round(median_ms(lambda: conn.run("true")), 2)
        print(
            f"one command over SSH (`true`, open connection): "
            f"{figures['ssh_command_ms']:.1f} ms median"
        )
    folder = directory / "bench-wrappers"
    python = wrapper.wrapper_python()
    wrappers = {"python": [python, "-S", "-I", str(folder / "cmdwrap.pyc")]}
    if wrapper.install_wrapper(folder).name == "cmdwrap":
        wrappers["compiled"] = [
            str(folder / "cmdwrap"),
            "--python",
            python,
            "--pyc",
            str(folder / "cmdwrap.pyc"),
        ]
    env = {**os.environ, "SSH_ORIGINAL_COMMAND": "true"}
    root = directory / "hosts" / host
    for name, argv in wrappers.items():
        args = [
            *argv,
            "--host",
            host,
            "--journal",
            str(folder / "journal.jsonl"),
            "--scan-root",
            str(root),
        ]
        cost = median_ms(lambda args=args: subprocess.run(args, env=env, check=True))
        figures[f"wrapper_{name}_ms"] = round(cost, 2)
        print(f"command wrapper alone ({name}, journal + scans + sh): {cost:.1f} ms median")
    return figures


def sync_figures(directory: Path, inventory_path: Path) -> dict[str, Any]:
    """A mirror restarted by hand with the kit's scripts: PASSIVE-UNINITIALIZED to
    PASSIVE-STANDBY against the topology's sync_s."""
    figures: dict[str, Any] = {}
    inventory = yaml.safe_load(inventory_path.read_text())
    mirror = inventory["regions"][0]["stripes"][0]["servers"][1]
    bin_dir = Path(mirror["install_dir"]) / "server" / "bin"
    user = logins.login_user()
    since = time.time()
    run = ["runuser", "-u", user, "--"] if user != getpass.getuser() else []
    # The kit scripts need JAVA_HOME, which the inventory names (a login has none).
    run += ["env", f"JAVA_HOME={mirror['java_home']}"]
    subprocess.run(
        [
            *run,
            str(bin_dir / "stop-tc-server.sh"),
            "-f",
            mirror["tc_config"],
            "-n",
            mirror["name"],
        ],
        check=True,
        capture_output=True,
    )
    time.sleep(1.0)
    log = directory / "bench-restart.log"
    with log.open("w") as out:
        subprocess.Popen(
            [
                *run,
                "setsid",
                str(bin_dir / "start-tc-server.sh"),
                "-f",
                mirror["tc_config"],
                "-n",
                mirror["name"],
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    timing = yaml.safe_load(TOPOLOGY.read_text())["timing"]
    deadline = time.time() + 30
    uninit = standby = None
    while time.time() < deadline and standby is None:
        for line in (directory / "journal.jsonl").read_text().splitlines():
            e = json.loads(line)
            if e["t"] >= since and e["event"] == "server_state" and e["server"] == mirror["name"]:
                if e["state"] == "PASSIVE-UNINITIALIZED":
                    uninit = e["t"]
                elif e["state"] == "PASSIVE-STANDBY" and uninit:
                    standby = e["t"]
        time.sleep(0.2)
    if uninit and standby:
        took = standby - uninit
        figures["sync_s"] = round(took, 3)
        figures["sync_configured_s"] = timing["sync_s"]
        print(
            f"sync: {took:.3f} s for a configured {timing['sync_s']} s "
            f"({100 * (took / timing['sync_s'] - 1):+.1f} %; goal within 10 %)"
        )
    else:
        print("sync: the restarted mirror did not reach PASSIVE-STANDBY within 30 s")
    return figures


def measure() -> dict[str, Any]:
    """Print the figures of the module docstring and return them."""
    figures: dict[str, Any] = {}
    base = Path(tempfile.mkdtemp(prefix="bm-upgrade-bench-"))
    base.chmod(0o711)
    directory = base / "sb"
    try:
        started = time.monotonic()
        inventory_path = cluster.up(TOPOLOGY, directory)
        up_s = time.monotonic() - started
        figures["sandbox_up_s"] = round(up_s, 2)
        print(
            f"sandbox up (2 regions x 4 stripes x 2 servers + 8 clients): {up_s:.1f} s (goal 15 s)"
        )
        rss = {name: rss_mb(pid) for name, pid in server_pids(directory).items()}
        if rss:
            figures["server_rss_mb_max"] = round(max(rss.values()), 1)
            figures["server_rss_mb_mean"] = round(sum(rss.values()) / len(rss), 1)
            print(
                f"server RSS: max {max(rss.values()):.1f} MB, mean "
                f"{sum(rss.values()) / len(rss):.1f} MB over {len(rss)} servers (goal 60 MB)"
            )
            pids = server_pids(directory)
            before = {name: cpu_ticks(pid) for name, pid in pids.items()}
            time.sleep(1.0)
            used = [cpu_ticks(pid) - before[name] for name, pid in pids.items()]
            figures["server_cpu_ticks_max"] = max(used)
            print(
                f"server CPU over 1 s with clients writing: max {max(used)} ticks, mean "
                f"{sum(used) / len(used):.1f} ticks of 10 ms (no busy polling)"
            )
        figures.update(sync_figures(directory, inventory_path))
        figures.update(command_costs(directory, inventory_path))
        return figures
    finally:
        cluster.down(directory)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    measure()


if __name__ == "__main__":
    main()
