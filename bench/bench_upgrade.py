"""Upgrade wall time against the lower bound the sandbox's timing implies (a figure, not a
test)::

    .venv/bin/python bench/bench_upgrade.py [--parallel 1 4] [--failback] [--runs 3]

For each ``parallel_stripes`` value it starts the sandbox of ``bench/upgrade.yaml``, runs the
upgrade job 4.2.0 -> 4.2.1 through Dagster (clients writing), and prints the wall time, the
lower bound, their ratio, and each Dagster step's time next to its share of the bound (a
stripe's ``upgrade_mirrors_*`` and ``failover_*`` steps apart).

Then the predicted duration's error: the job runs ``--runs`` times in all on the same sandbox
and Dagster instance (4.2.1, back to 4.2.0, 4.2.1, ...), each run predicted before it starts
from the runs before it (:func:`bm_upgrade.defs.prediction.predict`, what `bm-upgrade plan`
prints), and the prediction is printed next to the run's actual duration (its start to its
end in the instance) with the error in %. The first run has no past run: its prediction is
the timeouts' worst case, printed but left out of the mean error.

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
from dagster import DagsterInstance

from bm_upgrade.defs.launch import ensure_instance_yaml, instance, run_upgrade
from bm_upgrade.defs.prediction import predict
from bm_upgrade.inventory import load_inventory
from bm_upgrade.inventory_checks import FAILOVER_NODE_PREFIX, MIRRORS_NODE_PREFIX
from bm_upgrade.plan import PlanOptions
from bm_upgrade.plan.estimate import Prediction, minutes, phase_of
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


def options(inventory_path: Path, target: str) -> PlanOptions:
    return PlanOptions.from_inventory(load_inventory(inventory_path), target_version=target)


def actual_s(inst: DagsterInstance, run_id: str) -> float:
    """A run's duration as the instance has it (its start to its end)."""
    record = inst.get_run_record_by_id(run_id)
    assert record is not None and record.start_time and record.end_time
    return float(record.end_time - record.start_time)


def prediction_error(
    inventory_path: Path, inst: DagsterInstance, done: list[tuple[Prediction, str]], runs: int
) -> None:
    """Run the job until ``runs`` have run (alternating the target), each predicted from the
    runs before it; print each prediction against the run's duration."""
    targets = ["4.2.1", "4.2.0"]
    while len(done) < runs:
        target = targets[len(done) % 2]
        before = predict(inst, load_inventory(inventory_path), options(inventory_path, target))
        outcome = run_upgrade(inventory_path, target=target)
        if not outcome.success:
            print(f"  run {len(done) + 1} (to {target}) failed: {outcome.failure}")
            return
        done.append((before, outcome.run_id))
    print(f"  predicted duration, each run from the runs before it ({len(done)} runs):")
    print(f"  {'run':>4s} {'predicted s':>12s} {'actual s':>9s} {'error':>7s}  basis")
    errors = []
    for number, (predicted, run_id) in enumerate(done, start=1):
        actual = actual_s(inst, run_id)
        error = 100 * (predicted.total_s - actual) / actual
        if predicted.from_history:
            errors.append(abs(error))
        print(
            f"  {number:>4d} {predicted.total_s:>12.1f} {actual:>9.1f} {error:>+6.0f}%  "
            f"{predicted.basis}"
        )
    if errors:
        print(
            f"  prediction error from past runs: mean {sum(errors) / len(errors):.0f}%, "
            f"largest {max(errors):.0f}%"
        )
    last, run_id = done[-1]
    by_phase = actual_phases(inst, run_id)
    print(
        f"  last run by phase, predicted / actual s ({minutes(last.total_s)} predicted): "
        + ", ".join(f"{k} {v:.1f} / {by_phase.get(k, 0.0):.1f}" for k, v in last.phases.items())
    )


def actual_phases(inst: DagsterInstance, run_id: str) -> dict[str, float]:
    """Each phase's span in a run: from its first step's start to its last step's end."""
    spans: dict[str, tuple[float, float]] = {}
    for step in inst.get_run_step_stats(run_id):
        phase = phase_of(step.step_key)
        if phase is None or step.start_time is None or step.end_time is None:
            continue
        start, end = spans.get(phase, (step.start_time, step.end_time))
        spans[phase] = (min(start, step.start_time), max(end, step.end_time))
    return {phase: end - start for phase, (start, end) in spans.items()}


def one(parallel: int, failback: bool, runs: int) -> None:
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
        first = predict(inst, load_inventory(inventory_path), options(inventory_path, "4.2.1"))
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
        prediction_error(inventory_path, inst, [(first, outcome.run_id)], runs)
    finally:
        cluster.down(directory)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--failback", action="store_true")
    parser.add_argument("--runs", type=int, default=3, help="runs predicted, per parallel value")
    args = parser.parse_args()
    for parallel in args.parallel:
        one(parallel, args.failback, args.runs)


if __name__ == "__main__":
    main()
