"""What the check before every disruptive action costs (docs/safety.md rule 12, defs/stopping.py):
one look at the run's stop tag and its STEP_FAILURE events, on a SQLite instance whose run
has one failed step among a few hundred events::

    .venv/bin/python bench/bench_stopping.py [--looks 200]
"""

import argparse
import os
import statistics
import tempfile
import time

import dagster as dg

from bm_upgrade.defs.stopping import earlier_failure, requested_stop

FAIL_ENV = "BM_UPGRADE_BENCH_FAIL"


@dg.op
def chatty(context: dg.OpExecutionContext) -> None:
    for i in range(200):  # a stripe step logs a few hundred lines
        context.log.info("progress line %d", i)


@dg.op
def boom() -> None:
    if os.environ.get(FAIL_ENV) == "1":
        raise dg.Failure(description="tsa-w1b did not reach PASSIVE-STANDBY")


@dg.job(executor_def=dg.in_process_executor)
def steps() -> None:
    chatty()
    boom()


def measure(looks: int = 200) -> dict[str, float]:
    """Print the stop check's cost; return its median and p95 in ms."""
    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.local_temp(home) as inst:
        os.environ[FAIL_ENV] = "1"
        result = dg.execute_job(dg.reconstructable(steps), inst, raise_on_error=False)
        run_id = result.run_id
        times = []
        for _ in range(looks):
            started = time.perf_counter()
            requested_stop(inst, run_id)
            earlier_failure(inst, run_id, "chatty")
            times.append(time.perf_counter() - started)
    times.sort()
    figures = {
        "median_ms": round(statistics.median(times) * 1000, 3),
        "p95_ms": round(times[int(len(times) * 0.95) - 1] * 1000, 3),
    }
    print(
        f"stop check before a disruptive action (SQLite, {looks} looks): median "
        f"{figures['median_ms']:.2f} ms, p95 {figures['p95_ms']:.2f} ms"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--looks", type=int, default=200)
    args = parser.parse_args()
    measure(args.looks)


if __name__ == "__main__":
    main()
