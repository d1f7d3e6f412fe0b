"""Would bm_upgrade's ops run side by side under the community package dagster-async-executor?
(an evaluation, not part of `make bench`; the package is not a dependency)::

    python3.11 -m venv eval-venv && eval-venv/bin/pip install -c CONSTRAINTS \\
        dagster==1.13.27 dagster-async-executor==0.0.4
    eval-venv/bin/python bench/eval_async_executor.py

(CONSTRAINTS: requirements.lock without its hashes.) Four ops of one job, each as our stripe
steps are: a plain (sync) function that waits 1 s in worker threads (``ThreadPoolExecutor``,
as ``HostPool.fan_out`` does) and logs through ``context.log``; the same ops written
``async def`` around ``anyio.to_thread``. For each, the job's wall time under
``async_executor`` and its steps' span, first start to last end (4 steps side by side
would take ~1 s, one after another ~4 s) and where
each step's stdout went (the compute log manager's capture keys: one per step, or one for the
run).
"""

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import anyio
import dagster as dg
from dagster_async_executor import async_executor

STEPS = 4


def wait_in_threads(context: dg.OpExecutionContext) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(time.sleep, [1.0, 1.0]))
    print(f"stdout of {context.op_handle}")
    context.log.info("waited 1 s in two threads")


@dg.op
def sync_step(context: dg.OpExecutionContext) -> None:
    wait_in_threads(context)


@dg.op
async def async_step(context: dg.OpExecutionContext) -> None:
    await anyio.to_thread.run_sync(wait_in_threads, context)


@dg.job(executor_def=async_executor)
def sync_ops() -> None:
    for i in range(STEPS):
        sync_step.alias(f"sync_{i}")()


@dg.job(executor_def=async_executor)
def async_ops() -> None:
    for i in range(STEPS):
        async_step.alias(f"async_{i}")()


def main() -> None:
    for job in (sync_ops, async_ops):
        with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.local_temp(home) as inst:
            started = time.perf_counter()
            result = dg.execute_job(dg.reconstructable(job), inst)
            wall = time.perf_counter() - started
            captures = [
                e.dagster_event
                for e in inst.all_logs(result.run_id)
                if e.dagster_event is not None
                and e.dagster_event.event_type_value == "LOGS_CAPTURED"
            ]
            keys = [c.event_specific_data.file_key for c in captures if c.event_specific_data]
            steps = [c.event_specific_data.step_keys for c in captures if c.event_specific_data]
            marks = [
                e.timestamp
                for e in inst.all_logs(result.run_id)
                if e.dagster_event is not None
                and e.dagster_event.event_type_value in ("STEP_START", "STEP_SUCCESS")
            ]
            span = max(marks) - min(marks)
            print(
                f"{job.name}: success {result.success}, wall {wall:.1f} s for {STEPS} steps of "
                f"1 s, first step start to last step end {span:.1f} s; {len(keys)} log "
                f"capture(s), step keys per capture {steps}"
            )


if __name__ == "__main__":
    main()
