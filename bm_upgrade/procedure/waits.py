"""Looking at servers, once or until a state holds, with a timeout and progress in the log.

A wait calls ``check`` until it reports the value waited for, reports that waiting is
pointless (the process died), or the timeout passes. It logs each change of what it sees and,
while nothing changes, a progress line every few seconds, so an operator watching the log
knows what the run waits for and for how long. It never raises for a timeout: the caller
knows what failed and what the operator can do, and turns the outcome into one sentence.

:meth:`Watch.observe_servers` is the one look every step starts from: each server's probe
(REST or ``server-stat.sh`` per ``inventory.probe_via``); for a server that does not answer
with its version, also whether a process of it runs on its host and the kit installed in its
kit root (``version.sh``), in one SSH command per host (:mod:`bm_upgrade.procedure.seen`). A
server answering with its version is taken at its word, so with REST probes a healthy stripe
costs no SSH command at all (an SSH command costs a channel on the open connection plus
whatever the host's login does; a REST probe is one local HTTP request;
``bench/bench_sandbox.py`` prints what a command costs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory, Server, Stripe
from bm_upgrade.plan import ACTIVE
from bm_upgrade.probes import Runner, ServerStatus, probe_server_rest, probe_server_ssh
from bm_upgrade.procedure.seen import PS, Seen, look_on_host, server_pids
from bm_upgrade.procedure.status_changes import StatusTracker

T = TypeVar("T")


class Hosts(Protocol):
    """What the server steps need of the cluster's machines: a command runner per host.

    :class:`bm_upgrade.remote.HostPool` is one (its connections also start detached
    programs and upload, which the server steps do not need: a start is a command line,
    staging is the download step's); a unit test passes a scripted fake.
    """

    def get(self, host: str) -> Runner: ...


ServerProbe = Callable[[Server, float], ServerStatus]
"""A server's status from its management REST port, given a timeout
(:func:`~bm_upgrade.probes.probe_server_rest`, or a unit test's scripted answers)."""

_PROBE_TIMEOUT_S = 5.0
POLL_S = 0.05
"""Pause between looks while waiting for a server. A wait ends at most this late after the
state it waits for (a failover, a sync) is reached, and every stripe step waits several
times, so it is short; a REST probe is one small HTTP request."""
SSH_POLL_S = 0.5
"""Pause between looks when each look is an SSH command (``probe_via: ssh``)."""
ALIVE_EVERY_S = 1.0
"""While a server does not answer yet, how often its host's process list is read to tell
"still booting" from "exited" (an SSH command; an exit is found at most this late)."""


@dataclass(frozen=True)
class Poll(Generic[T]):
    """One look at the state.

    Attributes:
        value: set when the condition holds (the wait ends with it).
        now: what was seen, in words (``PASSIVE-UNINITIALIZED``, ``not answering``).
        hopeless: set (the reason) when the condition can no longer come true.
    """

    value: T | None = None
    now: str = ""
    hopeless: str | None = None


@dataclass(frozen=True)
class WaitOutcome(Generic[T]):
    """How a wait ended: ``value`` when the condition held, else ``last`` seen and why not."""

    value: T | None
    last: str
    waited_s: float
    hopeless: str | None = None
    timeout_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.value is not None

    def why_not(self, timeout_s: float | None = None) -> str:
        """Why the wait failed, in words (for the caller's one sentence)."""
        if self.hopeless:
            return self.hopeless
        timeout = self.timeout_s if timeout_s is None else timeout_s
        return f"still {self.last or 'unknown'} after {timeout:g} s"

    def value_or_fail(self, node: str, failed: str, then: str) -> T:
        """The value waited for; else the step fails on ``node`` with one sentence: what did
        not happen, why not, what to do (``then``)."""
        if self.value is None:
            raise StepFailed(node, f"{failed} ({self.why_not()}); {then}")
        return self.value


def wait_for(
    check: Callable[[], Poll[T]],
    *,
    what: str,
    timeout_s: float,
    log: logging.Logger,
    poll_s: float = 0.2,
    progress_every_s: float = 5.0,
) -> WaitOutcome[T]:
    """Poll ``check`` until it yields a value, turns hopeless, or ``timeout_s`` passes.

    Args:
        check: one look at the state; must not raise for expected states (down, starting).
        what: what is waited for, for the log (``east-s1-b PASSIVE-STANDBY``).
        timeout_s: the policy's timeout for this wait.
        log: where progress goes.
        poll_s: pause between looks.
        progress_every_s: how often an unchanged state is logged again.
    """
    start = time.monotonic()
    deadline = start + timeout_s
    last_seen: str | None = None
    last_log = start
    while True:
        poll = check()
        now = time.monotonic()
        waited = now - start
        if poll.value is not None:
            log.info("waited %.1f s for %s: done (%s)", waited, what, poll.now or "ok")
            return WaitOutcome(poll.value, poll.now, waited, None, timeout_s)
        if poll.hopeless:
            log.warning("gave up waiting for %s after %.1f s: %s", what, waited, poll.hopeless)
            return WaitOutcome(None, poll.now, waited, poll.hopeless, timeout_s)
        if poll.now != last_seen or now - last_log >= progress_every_s:
            log.info(
                "waiting for %s: %s (%.1f s of %g s)",
                what,
                poll.now or "unknown",
                waited,
                timeout_s,
            )
            last_seen, last_log = poll.now, now
        if now >= deadline:
            log.warning(
                "timed out waiting for %s after %g s (last seen: %s)",
                what,
                timeout_s,
                poll.now or "unknown",
            )
            return WaitOutcome(None, poll.now, waited, None, timeout_s)
        time.sleep(min(poll_s, max(0.0, deadline - now)))


class Watch:
    """How steps look at servers: probes (REST or ``server-stat.sh`` per
    ``inventory.probe_via``), the hosts' process lists, ``version.sh``; once or until a state.

    Args:
        inventory: the cluster.
        pool: a command runner per host (:class:`Hosts`; one SSH connection per host).
        log: where waits report progress.
        poll_s: pause between looks while waiting (see :attr:`pause`).
        probe_rest: how a server's REST port is asked (with ``probe_via: rest``).
    """

    inventory: Inventory
    pool: Hosts
    log: logging.Logger
    poll_s: float
    probe_rest: ServerProbe

    def __init__(
        self,
        inventory: Inventory,
        pool: Hosts,
        log: logging.Logger | None = None,
        poll_s: float = POLL_S,
        probe_rest: ServerProbe = probe_server_rest,
    ) -> None:
        self.inventory = inventory
        self.pool = pool
        self.log = log or logging.getLogger("bm_upgrade.procedure")
        self.poll_s = poll_s
        self.probe_rest = probe_rest

    @property
    def tracker(self) -> StatusTracker | None:
        """Where every look at a server goes, to find the changes a step sees (a step's
        context has one: :class:`~bm_upgrade.procedure.context.StepContext`); none here."""
        return None

    def _stripe_of(self, server: Server) -> str:
        for region, stripe, other in self.inventory.servers():
            if other.name == server.name:
                return f"{region.name}/{stripe.name}"
        return ""

    @property
    def pause(self) -> float:
        """The pause between probes while waiting: ``poll_s`` with REST probes (two small
        HTTP requests), at least :data:`SSH_POLL_S` when each probe is an SSH command
        running ``server-stat.sh``."""
        return self.poll_s if self.inventory.probe_via != "ssh" else max(self.poll_s, SSH_POLL_S)

    def wait(
        self, check: Callable[[], Poll[T]], what: str, timeout_s: float, poll_s: float | None = None
    ) -> WaitOutcome[T]:
        """:func:`wait_for` logging to this watch's log, pausing ``poll_s`` between looks
        (default :attr:`pause`, the pause for server probes)."""
        pause = self.pause if poll_s is None else poll_s
        return wait_for(check, what=what, timeout_s=timeout_s, log=self.log, poll_s=pause)

    def probe(self, server: Server) -> ServerStatus:
        """The server's status now."""
        if self.inventory.probe_via == "ssh":
            status = probe_server_ssh(self.pool.get(server.host), server, _PROBE_TIMEOUT_S)
        else:
            status = self.probe_rest(server, _PROBE_TIMEOUT_S)
        tracker = self.tracker
        if tracker is not None and status.reachable:
            tracker.saw(server.name, self._stripe_of(server), status.state, status.version)
        return status

    def alive(self, server: Server) -> bool:
        """A process of ``server`` runs on its host."""
        listing = self.pool.get(server.host).run(PS, timeout=30.0)
        running = bool(server_pids(listing.stdout, server))
        tracker = self.tracker
        if tracker is not None:  # asked of a server that did not answer its probe
            tracker.saw_silent(server.name, self._stripe_of(server), running)
        return running

    def observe_servers(self, servers: Iterable[Server]) -> dict[str, Seen]:
        """Each server's probe; for those not answering with their version, the process
        list and installed kit of their host, in one SSH command per host."""
        servers = list(servers)
        statuses = {server.name: self.probe(server) for server in servers}
        pending: dict[str, list[Server]] = {}
        for server in servers:
            if not (statuses[server.name].reachable and statuses[server.name].version):
                pending.setdefault(server.host, []).append(server)
        seen: dict[str, Seen] = {}
        tracker = self.tracker
        for host, on_host in pending.items():
            listing, kits = look_on_host(self.pool.get(host), on_host)
            for server in on_host:
                seen[server.name] = Seen(
                    server,
                    statuses[server.name],
                    bool(server_pids(listing, server)),
                    kits[server.name],
                )
                if tracker is not None and not statuses[server.name].reachable:
                    tracker.saw_silent(
                        server.name,
                        self._stripe_of(server),
                        seen[server.name].alive,
                        kits[server.name],
                    )
        return {
            server.name: seen.get(server.name) or Seen.answering(server, statuses[server.name])
            for server in servers
        }

    def wait_state(
        self, server: Server, states: set[str] | None, timeout_s: float
    ) -> WaitOutcome[ServerStatus]:
        """Wait until the server answers in one of ``states`` (in any state when None).

        Hopeless when its process exits, or when it turns ACTIVE while waited for in
        another state (its peer must have stopped).
        """
        # Its process list is read once it has not answered for a while (it was usually
        # just launched, or is known to run).
        alive_checked = time.monotonic()

        def check() -> Poll[ServerStatus]:
            nonlocal alive_checked
            status = self.probe(server)
            if status.reachable:
                if states is None or status.state in states:
                    return Poll(status, status.state)
                if status.state == ACTIVE:
                    return Poll(
                        now=status.state,
                        hopeless=f"{server.name} became {ACTIVE}: "
                        "another server of its stripe must have stopped",
                    )
                return Poll(now=status.state)
            if time.monotonic() - alive_checked >= ALIVE_EVERY_S:
                alive_checked = time.monotonic()
                if not self.alive(server):
                    return Poll(now="down", hopeless=f"{server.name}'s process exited")
            return Poll(now="not answering yet")

        what = f"{server.name} {' or '.join(sorted(states)) if states else 'answering'}"
        return self.wait(check, what, timeout_s)

    def wait_stopped(self, server: Server, timeout_s: float) -> WaitOutcome[bool]:
        """Wait until the server neither answers nor has a process on its host."""

        def check() -> Poll[bool]:
            status = self.probe(server)
            if status.reachable:
                return Poll(now=status.state)
            if self.alive(server):
                return Poll(now="stopping (process still running)")
            return Poll(True, "stopped")

        return self.wait(check, f"{server.name} stopped", timeout_s)

    def wait_active(self, stripe: Stripe, timeout_s: float) -> WaitOutcome[ServerStatus]:
        """Wait until some server of the stripe is ACTIVE-COORDINATOR."""

        def check() -> Poll[ServerStatus]:
            states = [self.probe(s) for s in stripe.servers]
            active = next((st for st in states if st.state == ACTIVE), None)
            return Poll(active, ", ".join(f"{st.name} {st.state}" for st in states))

        return self.wait(check, f"an {ACTIVE} in stripe {stripe.name}", timeout_s)
