"""A job of one op that would start new work, for tests of a pause (defs/pausing.py). Its own
module: Dagster reads an op's ``context`` annotation, which postponed annotations hide."""

import dagster as dg

from bm_upgrade.defs.pausing import stop_if_paused


@dg.op
def starts_new_work(context: dg.OpExecutionContext) -> None:
    """Pauses when its run was asked to; fails otherwise (an ordinary failure)."""
    stop_if_paused(context, "stripe east/stripe9")
    raise dg.Failure(description="boom")


@dg.job(executor_def=dg.in_process_executor)
def new_work() -> None:
    starts_new_work()
