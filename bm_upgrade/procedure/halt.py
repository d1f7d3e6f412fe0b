"""Whether a run may still start new disruptive work (docs/safety.md rules 11 and 12).

A disruptive step (stopping a server, a client or the orchestrators) asks
:meth:`~bm_upgrade.procedure.servers.ServerOps.before_disruptive` first. It refuses when:

- the operator asked the run to stop (Ctrl-C or SIGTERM on ``bm-upgrade run``, or a signal
  to a step's process): :func:`request_stop` records why, process-wide, so the step in
  progress finishes what it is doing (a stopped server is restarted and confirmed) and the
  next disruptive step ends safely instead of starting;
- an earlier step of the same run failed (the ``halted`` check the Dagster layer gives the
  procedure), unless the policy lets other stripes go on;
- the maintenance window would close before the step ends.

This module is plain Python: the Dagster layer and the CLI call :func:`request_stop`.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_reasons: list[str] = []


def request_stop(reason: str) -> None:
    """Ask every step of this process to start no new disruptive work (first reason kept)."""
    with _lock:
        if not _reasons:
            _reasons.append(reason)


def stop_reason() -> str | None:
    """Why a stop was requested in this process, or None."""
    with _lock:
        return _reasons[0] if _reasons else None


def reset() -> None:
    """Forget a requested stop (a new run in the same process, tests)."""
    with _lock:
        _reasons.clear()
