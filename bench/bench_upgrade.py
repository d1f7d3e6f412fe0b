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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import breakdown
import stalls
import yaml
from dagster import DagsterInstance

from bm_upgrade.defs.launch import ensure_instance_yaml, instance, run_upgrade
from bm_upgrade.defs.prediction import predict
from bm_upgrade.inventory import load_inventory
from bm_upgrade.inventory_checks import FAILOVER_NODE_PREFIX, MIRRORS_NODE_PREFIX
from bm_upgrade.plan import PlanOptions
from bm_upgrade.plan.estimate import Prediction, minutes, phase_of
from bm_upgrade.procedure.kit import CACHE_DIR_ENV
from bm_upgrade.remote import HostPool
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
) -> dict[str, Any]:
    """Run the job until ``runs`` have run (alternating the target), each predicted from the
    runs before it; print each prediction against the run's duration; return the figures."""
    targets = ["4.2.1", "4.2.0"]
    while len(done) < runs:
        target = targets[len(done) % 2]
        before = predict(inst, load_inventory(inventory_path), options(inventory_path, target))
        outcome = run_upgrade(inventory_path, target=target)
        if not outcome.success:
            print(f"  run {len(done) + 1} (to {target}) failed: {outcome.failure}")
            return {"failed": f"run {len(done) + 1}: {outcome.failure}"}
        done.append((before, outcome.run_id))
    print(f"  predicted duration, each run from the runs before it ({len(done)} runs):")
    print(f"  {'run':>4s} {'predicted s':>12s} {'actual s':>9s} {'error':>7s}  basis")
    errors = []
    rows = []
    for number, (predicted, run_id) in enumerate(done, start=1):
        actual = actual_s(inst, run_id)
        error = 100 * (predicted.total_s - actual) / actual
        if predicted.from_history:
            errors.append(abs(error))
        rows.append(
            {"predicted_s": round(predicted.total_s, 2), "actual_s": round(actual, 2)}
            | {"error_pct": round(error, 1), "from_history": predicted.from_history}
        )
        print(
            f"  {number:>4d} {predicted.total_s:>12.1f} {actual:>9.1f} {error:>+6.0f}%  "
            f"{predicted.basis}"
        )
    figures: dict[str, Any] = {"runs": rows}
    if errors:
        figures["mean_error_pct"] = round(sum(errors) / len(errors), 1)
        figures["max_error_pct"] = round(max(errors), 1)
        print(
            f"  prediction error from past runs: mean {figures['mean_error_pct']:.0f}%, "
            f"largest {figures['max_error_pct']:.0f}%"
        )
    last, run_id = done[-1]
    by_phase = actual_phases(inst, run_id)
    print(
        f"  last run by phase, predicted / actual s ({minutes(last.total_s)} predicted): "
        + ", ".join(f"{k} {v:.1f} / {by_phase.get(k, 0.0):.1f}" for k, v in last.phases.items())
    )
    return figures


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


def one_command_ms(inventory_path: Path) -> float:
    """Median cost of one command (``true``) over an open SSH connection to a sandbox host."""
    inventory = load_inventory(inventory_path)
    host = inventory.regions[0].stripes[0].servers[0].host
    with HostPool(inventory.ssh) as pool:
        conn = pool.get(host)
        conn.run("true")
        samples = []
        for _ in range(15):
            started = time.perf_counter()
            conn.run("true")
            samples.append(time.perf_counter() - started)
    return sorted(samples)[len(samples) // 2] * 1000


@contextmanager
def bench_home(base: Path) -> Iterator[None]:
    """DAGSTER_HOME and the kit cache in ``base`` inside the block; as before after it, so the
    next bench of the same process (make bench) writes nothing into ``base``."""
    before = {name: os.environ.get(name) for name in ("DAGSTER_HOME", CACHE_DIR_ENV)}
    os.environ["DAGSTER_HOME"] = str(base / "dagster")
    os.environ[CACHE_DIR_ENV] = str(base / "kits")
    ensure_instance_yaml(base / "dagster")
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def upgrade_run(
    topology_path: Path,
    *,
    parallel: int,
    failback: bool,
    runs: int,
    label: str,
) -> dict[str, Any]:
    """Start the sandbox of ``topology_path``, run the upgrade to 4.2.1 with ``parallel``
    stripes side by side, print its detail and return its figures: wall, bound, overhead,
    each step (time, its share of the bound, where its time went), lost writes, the
    clients' stalls per failover; then (``runs`` > 1) the prediction error over more runs."""
    base = Path(tempfile.mkdtemp(prefix="bm-upgrade-bench-"))
    base.chmod(0o711)
    directory = base / "sb"
    try:
        with bench_home(base):
            return measured_run(
                topology_path,
                directory,
                parallel=parallel,
                failback=failback,
                runs=runs,
                label=label,
            )
    finally:
        cluster.down(directory)
        shutil.rmtree(base, ignore_errors=True)


def measured_run(
    topology_path: Path, directory: Path, *, parallel: int, failback: bool, runs: int, label: str
) -> dict[str, Any]:
    """The body of :func:`upgrade_run`, its sandbox in ``directory``."""
    topology = yaml.safe_load(topology_path.read_text())
    figures: dict[str, Any] = {"parallel_stripes": parallel, "failback": failback}
    started = time.monotonic()
    inventory_path = cluster.up(topology_path, directory, timeout_s=240)
    figures["sandbox_up_s"] = round(time.monotonic() - started, 2)
    data = yaml.safe_load(inventory_path.read_text())
    data["policy"].update(parallel_stripes=parallel, failback=failback)
    inventory_path.write_text(yaml.safe_dump(data, sort_keys=False))
    command_ms = one_command_ms(inventory_path)
    inst = instance()
    inst.get_runs(limit=1)  # the instance's storage exists before the clock starts
    first = predict(inst, load_inventory(inventory_path), options(inventory_path, "4.2.1"))
    epoch_start = time.time()
    started = time.monotonic()
    outcome = run_upgrade(inventory_path)
    wall = time.monotonic() - started
    epoch_end = time.time()
    if not outcome.success:
        print(f"{label}: run failed: {outcome.failure}")
        figures["failed"] = outcome.failure
        return figures
    bound = lower_bound(topology, parallel, failback)
    verified = cluster.verify(directory)
    lost = verified["lost"]
    wrapper = "compiled" if (directory / "ssh" / "cmdwrap").exists() else "python"
    print(
        f"{label}: wall {wall:.1f} s, lower bound {bound:.1f} s, overhead "
        f"{wall - bound:.1f} s, ratio {wall / bound:.2f}x; acknowledged writes "
        f"{verified['acked']}, lost {lost} (sandbox command wrapper: {wrapper})"
    )
    steps = breakdown.step_costs(inst, outcome.run_id)
    for step in steps:
        step["bound_s"] = share_of(step["step"], topology, failback)
    breakdown.print_steps(steps, command_ms)
    summary = breakdown.summary(steps, wall, bound, command_ms)
    breakdown.print_summary(summary)
    election_s = float(topology["timing"]["election_s"])
    stall = stalls.stalls(directory, epoch_start, epoch_end, election_s)
    stalls.print_stalls(stall)
    figures.update(
        wall_s=round(wall, 2),
        bound_s=round(bound, 2),
        overhead_s=round(wall - bound, 2),
        ratio=round(wall / bound, 3),
        acked=verified["acked"],
        lost=lost,
        one_command_ms=round(command_ms, 1),
        steps=steps,
        where_time_goes=summary,
        stalls=stall,
    )
    if runs > 1:
        figures["prediction"] = prediction_error(
            inventory_path, inst, [(first, outcome.run_id)], runs
        )
    return figures


def measure(
    parallel_values: Iterable[int] = (1, 4), failback: bool = False, runs: int = 3
) -> dict[str, Any]:
    """The upgrade of ``bench/upgrade.yaml`` per ``parallel_stripes`` value: figures keyed
    ``p<value>``."""
    figures = {}
    for parallel in parallel_values:
        figures[f"p{parallel}"] = upgrade_run(
            HERE / "upgrade.yaml",
            parallel=parallel,
            failback=failback,
            runs=runs,
            label=f"parallel_stripes={parallel} failback={failback}",
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--failback", action="store_true")
    parser.add_argument("--runs", type=int, default=3, help="runs predicted, per parallel value")
    args = parser.parse_args()
    measure(args.parallel, args.failback, args.runs)


if __name__ == "__main__":
    main()
