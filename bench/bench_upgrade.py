"""Upgrade wall time against the lower bound the sandbox's timing implies (a figure, not a
test)::

    .venv/bin/python bench/bench_upgrade.py [--parallel 1 4] [--failback]

For each ``parallel_stripes`` value it starts the sandbox of ``bench/upgrade.yaml``, runs the
upgrade job 4.2.0 -> 4.2.1 through Dagster (clients writing), and prints the wall time, the
lower bound, their ratio, the Dagster steps' count and the mean cost per step beyond the
procedure's own waiting.

Lower bound: the critical path of starts, syncs and elections. A stripe needs its mirror
restarted and synced (start + sync), then a failover (election) and its old active restarted
and synced (start + sync), plus the same again for a failback; stripes overlap up to
``parallel_stripes``; then the orchestrators restart and the replicas resync (start + sync).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from bm_upgrade.defs.launch import ensure_instance_yaml, run_upgrade
from bm_upgrade.procedure.kit import CACHE_DIR_ENV
from bm_upgrade.sandbox import cluster

HERE = Path(__file__).parent


def lower_bound(topology: dict, parallel: int, failback: bool) -> float:
    t = topology["timing"]
    start, election, sync = t["start_s"], t["election_s"], t["sync_s"]
    stripe = (start + sync) + (election + start + sync)
    if failback:
        stripe += election + start + sync
    stripes = sum(r["stripes"] for r in topology["regions"])
    wan = any(r.get("orchestrators") for r in topology["regions"])
    return math.ceil(stripes / parallel) * stripe + ((start + sync) if wan else 0.0)


def one(parallel: int, failback: bool) -> None:
    topology_path = HERE / "upgrade.yaml"
    topology = yaml.safe_load(topology_path.read_text())
    base = Path(tempfile.mkdtemp(prefix="bm-upgrade-bench-"))
    base.chmod(0o711)
    os.environ["DAGSTER_HOME"] = str(base / "dagster")
    os.environ[CACHE_DIR_ENV] = str(base / "kits")
    ensure_instance_yaml(base / "dagster")
    directory = base / "sb"
    try:
        inventory_path = cluster.up(topology_path, directory)
        data = yaml.safe_load(inventory_path.read_text())
        data["policy"].update(parallel_stripes=parallel, failback=failback)
        inventory_path.write_text(yaml.safe_dump(data, sort_keys=False))
        started = time.monotonic()
        outcome = run_upgrade(inventory_path)
        wall = time.monotonic() - started
        if not outcome.success:
            print(f"parallel_stripes={parallel}: run failed: {outcome.failure}")
            return
        from dagster import DagsterInstance

        instance = DagsterInstance.get()
        stats = instance.get_run_stats(outcome.run_id)
        steps = stats.steps_succeeded
        bound = lower_bound(topology, parallel, failback)
        lost = cluster.verify(directory)["lost"]
        print(f"parallel_stripes={parallel} failback={failback}: wall {wall:.1f} s, lower "
              f"bound {bound:.1f} s, ratio {wall / bound:.2f}x; {steps} Dagster steps, "
              f"{(wall - bound) / steps:.2f} s per step beyond the bound; lost writes {lost}")
    finally:
        cluster.down(directory)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--failback", action="store_true")
    args = parser.parse_args()
    for parallel in args.parallel:
        one(parallel, args.failback)


if __name__ == "__main__":
    main()
