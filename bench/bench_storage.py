"""Dagster's storage: event-log writes per second and the per-step overhead of a run, on
SQLite (a DAGSTER_HOME folder, `make demo`'s shape) and on PostgreSQL (`make serve`'s shape),
side by side::

    .venv/bin/python bench/bench_storage.py [--events 500] [--steps 20] [--repeat 3]

PostgreSQL is a server of the bench's own (tests/pg.py: initdb in a temporary folder, a free
loopback port, stopped by PID), so the figure includes a TCP round trip per write, as a
deployment's would. Writes are engine events of one run (each one row of the event log);
the per-step overhead is a job of ``--steps`` trivial ops run in process, divided by its
steps (what the storage adds to every step's ~6 events).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

# tests/pg.py starts the PostgreSQL server the tests use; the bench uses the same one.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.pg import postgres_server, server_programs


def _job(steps: int) -> dg.JobDefinition:
    @dg.op
    def step(previous: int) -> int:
        return previous + 1

    @dg.op
    def first() -> int:
        return 0

    @dg.job(name="bench_storage")
    def chain() -> None:
        value = first()
        for i in range(steps - 1):
            value = step.alias(f"step_{i + 1}")(value)

    return chain


@contextmanager
def sqlite_instance() -> Iterator[dg.DagsterInstance]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-storage-") as home,
        dg.DagsterInstance.from_config(home) as instance,
    ):
        yield instance


@contextmanager
def postgres_instance(url: str) -> Iterator[dg.DagsterInstance]:
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as home:
        Path(home, "dagster.yaml").write_text(
            f"storage:\n  postgres:\n    postgres_url: {url!r}\n", encoding="utf-8"
        )
        with dg.DagsterInstance.from_config(home) as instance:
            yield instance


def writes_per_s(instance: dg.DagsterInstance, events: int) -> float:
    """Engine events of one run written one by one, per second."""
    run = instance.create_run_for_job(_job(2))
    start = time.perf_counter()
    for i in range(events):
        instance.report_engine_event(f"bench event {i}", run)
    return events / (time.perf_counter() - start)


def step_overhead_ms(instance: dg.DagsterInstance, steps: int) -> float:
    """Wall time per step of a job of ``steps`` trivial ops, run in process."""
    job = _job(steps)
    start = time.perf_counter()
    result = job.execute_in_process(instance=instance)
    elapsed = time.perf_counter() - start
    assert result.success
    return elapsed * 1000.0 / steps


def measure(
    open_instance: Callable[[], AbstractContextManager[dg.DagsterInstance]],
    events: int,
    steps: int,
    repeat: int,
) -> tuple[float, float]:
    """Median writes per second and median ms per step over ``repeat`` fresh instances."""
    rates, overheads = [], []
    for _ in range(repeat):
        with open_instance() as instance:
            step_overhead_ms(instance, 3)  # warm-up: the storage's tables and caches
            rates.append(writes_per_s(instance, events))
            overheads.append(step_overhead_ms(instance, steps))
    return statistics.median(rates), statistics.median(overheads)


def run(events: int = 500, steps: int = 20, repeat: int = 3) -> dict[str, Any]:
    """Print the table; return writes per second and ms per step per storage."""
    programs = server_programs()
    if programs is None:
        print("bench_storage: PostgreSQL's server programs are missing (make setup installs")
        print("them as root); SQLite only")
    results = {"SQLite": measure(sqlite_instance, events, steps, repeat)}
    if programs is not None:
        with postgres_server(programs) as server:
            url = server.create_database("bench")
            results["PostgreSQL"] = measure(lambda: postgres_instance(url), events, steps, repeat)
    print(
        f"storage ({events} event writes, a job of {steps} in-process steps, median of {repeat}):"
    )
    print(f"  {'':<12} {'writes/s':>10} {'ms/step':>9}")
    for name, (rate, per_step) in results.items():
        print(f"  {name:<12} {rate:>10.0f} {per_step:>9.1f}")
    if "PostgreSQL" in results:
        sqlite, postgres = results["SQLite"], results["PostgreSQL"]
        print(
            f"  PostgreSQL / SQLite: writes {postgres[0] / sqlite[0]:.2f}x, "
            f"step overhead {postgres[1] / sqlite[1]:.2f}x"
        )
    return {
        name: {"writes_per_s": round(rate, 1), "ms_per_step": round(per_step, 2)}
        for name, (rate, per_step) in results.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    run(args.events, args.steps, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
