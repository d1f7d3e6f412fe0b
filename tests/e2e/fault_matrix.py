"""What every row of the README's fault matrix proves at its end (issue 14), in one call.

:func:`assert_fault_row` checks the four things every fault row must show:

1. the safety rules held on the sandbox's journal (:func:`tests.e2e.journal_check.violations`,
   what really happened on the hosts) between the row's start and now;
2. ``sandbox verify`` finds 0 acknowledged writes lost;
3. every stripe is served: exactly one ACTIVE-COORDINATOR per stripe, read from the
   sandbox's own REST stat (not the tool's probes), waited for a bounded time;
4. the failure, when the row expects one, is one sentence (one line, no traceback) that names
   the node(s) and the way out.

:func:`inject_when` injects a fault the moment the journal shows an event (a watcher thread),
for rows whose fault must strike mid-run.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from bm_upgrade.sandbox import faults, security
from bm_upgrade.sandbox.protocol import server_stat
from tests.e2e.conftest import E2ESandbox
from tests.e2e.journal_check import violations

ACTIVE = "ACTIVE-COORDINATOR"


def stripe_states(sb: E2ESandbox) -> dict[str, dict[str, str]]:
    """``region/stripe`` -> server -> state, from each server's REST stat (``down`` when it
    does not answer)."""
    found: dict[str, dict[str, str]] = {}
    for name, server in sb.info["servers"].items():
        auth = security.auth_for(sb.directory, str(server["region"]))
        stat = server_stat(server["host"], server["management_port"], auth=auth)
        key = f"{server['region']}/{server['stripe']}"
        found.setdefault(key, {})[name] = str(stat["state"]) if stat else "down"
    return found


def unserved(sb: E2ESandbox) -> dict[str, dict[str, str]]:
    """The stripes without exactly one ACTIVE, with their servers' states."""
    return {
        key: states
        for key, states in stripe_states(sb).items()
        if list(states.values()).count(ACTIVE) != 1
    }


def wait_served(sb: E2ESandbox, timeout_s: float = 20.0) -> dict[str, dict[str, str]]:
    """Wait until every stripe has one ACTIVE; returns the stripes still without one."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = unserved(sb)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def assert_fault_row(
    sb: E2ESandbox,
    *,
    target: str,
    since: float,
    failure: str | None = None,
    names: Iterable[str] = (),
    way_out: Iterable[str] = (),
    crash_expected: Iterable[str] = (),
) -> None:
    """The four checks of a fault row (see the module), from ``since`` (when the row began).

    Args:
        target: the version the row's runs upgraded to (the journal checker's rule 5).
        failure: the run's failure (``RunOutcome.failure``), when the row expects one.
        names: what the failure must name (nodes, hosts).
        way_out: phrases of which the failure must contain at least one (what to do next).
        crash_expected: servers the row made exit 2 at start on purpose (not a rule 4 break).
    """
    found = violations(
        sb.journal_path,
        sb.inventory,
        target,
        since=since,
        until=time.time(),
        crash_expected=crash_expected,
    )
    assert found == [], found
    assert wait_served(sb) == {}, "a stripe is not served by one ACTIVE"
    verified = sb.verify()
    assert verified["lost"] == 0, verified
    assert verified["acked"] > 0, "no acknowledged write to check"
    if failure is None:
        return
    assert "\n" not in failure.strip() and "Traceback" not in failure, failure
    for name in names:
        assert name in failure, f"{name!r} not named in: {failure}"
    outs = list(way_out)
    if outs:
        assert any(w in failure for w in outs), f"no way out ({outs}) in: {failure}"


@contextmanager
def inject_when(
    sb: E2ESandbox,
    matches: Callable[[dict[str, Any]], bool],
    kind: str,
    target: str,
    *,
    since: float | None = None,
    timeout_s: float = 300.0,
) -> Iterator[list[str]]:
    """Inject ``kind`` on ``target`` as soon as an event journaled from now on (and at or
    after ``since``) ``matches``, from a watcher thread, for the ``with`` block; yields the
    list the injection's sentence is appended to (empty: the event never came). The fault is
    cleared on leaving (a ``kill`` leaves nothing to clear)."""
    start = time.time() if since is None else since
    said: list[str] = []
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        with sb.journal_path.open("rb") as stream:
            stream.seek(0, 2)  # events from now on (the journal only grows)
            pending = b""
            while not done.is_set() and time.monotonic() < deadline:
                pending += stream.read()
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    event = json.loads(line) if line.strip() else {}
                    if event and float(event["t"]) >= start and matches(event):
                        said.append(faults.inject(sb.directory, kind, target))
                        return
                time.sleep(0.01)

    thread = threading.Thread(target=watch, name=f"inject-{kind}", daemon=True)
    thread.start()
    try:
        yield said
    finally:
        done.set()
        thread.join(timeout=10)
        if faults.KINDS[kind].recorded:
            faults.clear(sb.directory, target)
