"""The procedure's log lines in a step's Dagster log, without slowing the procedure down.

The procedure logs to a plain Python logger (:data:`PROCEDURE_LOG`); an instance that manages
bm_upgrade's loggers (deploy/dagster.yaml, ``managed_python_loggers``) shows each line in the
step's log, handed over by :func:`relayed_logs` from a background thread.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from logging.handlers import QueueHandler, QueueListener

import dagster as dg

PROCEDURE_LOG = logging.getLogger("bm_upgrade.procedure")
"""Where the procedure's progress goes: a managed Python logger (deploy/dagster.yaml), so
each line shows in the step's log in the UI, through :func:`relayed_logs`."""


@contextmanager
def relayed_logs(name: str = "bm_upgrade") -> Iterator[None]:
    """Hand the procedure's log lines to Dagster from a background thread, in order.

    Dagster stores each captured line as an event in its event log storage before the
    logging call returns (a database write per line with the default SQLite storage), spent
    between noticing a state (a mirror PASSIVE-STANDBY) and acting on it. Inside this block
    the handlers Dagster attached to the ``name`` logger for the current step are fed through
    a queue by a listener thread instead; leaving the block drains the queue, so every line is
    stored, in order, with its own time, before the step reports its outcome.
    """
    logger = logging.getLogger(name)
    handlers = list(logger.handlers)
    if not handlers:
        yield
        return
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = QueueListener(lines, *handlers, respect_handler_level=True)
    relay = QueueHandler(lines)
    for handler in handlers:
        logger.removeHandler(handler)
    logger.addHandler(relay)
    listener.start()
    try:
        yield
    finally:
        logger.removeHandler(relay)
        listener.stop()
        for handler in handlers:
            logger.addHandler(handler)


def procedure_log(context: dg.OpExecutionContext) -> logging.Logger:
    """:data:`PROCEDURE_LOG` when the instance captures bm_upgrade's Python loggers (so the
    lines are relayed), else the step's own Dagster logger (an instance configured without
    deploy/dagster.yaml's ``managed_python_loggers`` still shows the progress)."""
    if "bm_upgrade" in context.instance.managed_python_loggers:
        return PROCEDURE_LOG
    return context.log
