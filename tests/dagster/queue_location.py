"""A code location for the run-queue test: one job that holds until a gate file appears."""

import time
from pathlib import Path

import dagster as dg


@dg.op
def hold(context: dg.OpExecutionContext) -> None:
    gate = Path(context.run.tags["gate"])
    deadline = time.monotonic() + 120
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


@dg.job(executor_def=dg.in_process_executor)
def held() -> None:
    hold()


defs = dg.Definitions(jobs=[held])
