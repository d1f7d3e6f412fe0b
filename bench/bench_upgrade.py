"""Upgrade wall time against the lower bound the sandbox's timing implies (a figure, not a
test)::

    .venv/bin/python bench/bench_upgrade.py [--parallel 1 4] [--failback]

For each ``parallel_stripes`` value it starts the sandbox of ``bench/upgrade.yaml``, runs the
upgrade job 4.2.0 -> 4.2.1 through Dagster (clients writing), and prints the wall time, the
lower bound, their ratio, and each Dagster step's time next to its share of the bound (a
stripe's ``upgrade_mirrors_*`` and ``failover_*`` steps apart).

Lower bound: the critical path of starts, syncs and elections, from the topology's timing.
A server restarted while its stripe has an active boots (``start_s``), finds its data dirty,
moves it aside and restarts itself (exit 11: ``start_s`` again, docs/terracotta.md, persistence),
then syncs (``sync_s``); a non-persistent one boots once. A stripe needs its mirror restarted
and synced, then a failover (``election_s``) and its old active restarted and synced, plus the
same again for a failback; stripes overlap up to ``parallel_stripes``; then the orchestrators
restart (``start_s``) and the replicas resync (``sync_s``). Everything else (SSH commands,
probes, Dagster's own bookkeeping, client restarts, each process's interpreter start-up) is
cost above the bound. The Dagster instance is created before the clock starts, as an
operator's DAGSTER_HOME exists before a maintenance run.
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

from bm_upgrade.defs.launch import ensure_instance_yaml, instance, run_upgrade
from bm_upgrade.inventory_checks import FAILOVER_NODE_PREFIX, MIRRORS_NODE_PREFIX
from bm_upgrade.procedure.kit import CACHE_DIR_ENV
from bm_upgrade.sandbox import cluster

HERE = Path(__file__).parent


def restart_bound(topology: dict) -> float:
    """One server restarted and synced while its stripe has an active (see the module)."""
    t = topology["timing"]
    return (2 * t["start_s"] if topology.get("persistent", True) else t["start_s"]) + t["sync_s"]


def failover_bound(topology: dict, failback: bool) -> float:
    """A stripe's failover step: an election and the old active restarted and synced (twice
    with a failback)."""
    return (topology["timing"]["election_s"] + restart_bound(topology)) * (2 if failback else 1)


def stripe_bound(topology: dict, failback: bool) -> float:
    """One stripe's share of the bound: its mirror, then its failover."""
    return restart_bound(topology) + failover_bound(topology, failback)


def wan_bound(topology: dict) -> float:
    t = topology["timing"]
    wan = any(r.get("orchestrators") for r in topology["regions"])
    return (t["start_s"] + t["sync_s"]) if wan else 0.0


def lower_bound(topology: dict, parallel: int, failback: bool) -> float:
    stripes = sum(r["stripes"] for r in topology["regions"])
    return math.ceil(stripes / parallel) * stripe_bound(topology, failback) + wan_bound(topology)


def share_of(step_key: str, topology: dict, failback: bool) -> float:
    """A Dagster step's own part of the bound (stripe steps: as if alone)."""
    if step_key == "wan_cycle":
        return wan_bound(topology)
    if step_key.startswith(MIRRORS_NODE_PREFIX):
        return restart_bound(topology)
    if step_key.startswith(FAILOVER_NODE_PREFIX):
        return failover_bound(topology, failback)
    return 0.0


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
        inst = instance()
        inst.get_runs(limit=1)  # the instance's storage exists before the clock starts
        started = time.monotonic()
        outcome = run_upgrade(inventory_path)
        wall = time.monotonic() - started
        if not outcome.success:
            print(f"parallel_stripes={parallel}: run failed: {outcome.failure}")
            return
        bound = lower_bound(topology, parallel, failback)
        lost = cluster.verify(directory)["lost"]
        wrapper = "compiled" if (directory / "ssh" / "cmdwrap").exists() else "python"
        print(
            f"parallel_stripes={parallel} failback={failback}: wall {wall:.1f} s, lower "
            f"bound {bound:.1f} s, ratio {wall / bound:.2f}x; lost writes {lost} "
            f"(sandbox command wrapper: {wrapper})"
        )
        stats = sorted(inst.get_run_step_stats(outcome.run_id), key=lambda s: s.start_time or 0.0)
        print(f"  {'step':32s} {'s':>6s} {'bound s':>8s}")
        for step in stats:
            took = (step.end_time or 0.0) - (step.start_time or 0.0)
            print(
                f"  {step.step_key:32s} {took:6.2f} "
                f"{share_of(step.step_key, topology, failback):8.1f}"
            )
        print(
            f"  {len(stats)} Dagster steps; {(wall - bound) / max(1, len(stats)):.2f} s per "
            "step beyond the bound"
        )
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
