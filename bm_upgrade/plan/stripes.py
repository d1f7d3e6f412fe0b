"""One stripe's server steps: mirrors first, then the active through a controlled failover,
then an optional failback; planned against the state each step is expected to leave, each
step tagged with the segment (the stripe op) that does it."""

from __future__ import annotations

from collections.abc import Mapping

from bm_upgrade.inventory import Region, Server, Stripe
from bm_upgrade.plan.model import (
    ACTIVE,
    STANDBY,
    Action,
    Builder,
    NodeState,
    PlanOptions,
    Segment,
)


def _server_state(server: Server, stripe: Stripe, observed: Mapping[str, NodeState]) -> NodeState:
    seen = observed.get(server.name)
    if seen is not None:
        return seen
    preferred = stripe.preferred_active()
    any_active = any((observed.get(s.name) or NodeState()).state == ACTIVE for s in stripe.servers)
    assumed = ACTIVE if (server is preferred and not any_active) else STANDBY
    return NodeState(running=True, version=None, state=assumed)


class StripePlanner:
    """Plans one stripe's server steps, in strict order, on one lane.

    It keeps the state each step is expected to leave behind, so every decision is taken
    against the state at that point of the plan: that is what keeps one server down at most.
    Each rule adds its steps under its own segment (:data:`~bm_upgrade.plan.model.Segment`).
    """

    def __init__(
        self,
        b: Builder,
        region: Region,
        stripe: Stripe,
        observed: Mapping[str, NodeState],
        options: PlanOptions,
    ) -> None:
        self.b = b
        self.region = region
        self.stripe = stripe
        self.target = options.target_version
        self.options = options
        self.single = len(stripe.servers) == 1
        self.preferred = stripe.preferred_active()
        self.state = {s.name: _server_state(s, stripe, observed) for s in stripe.servers}
        self.segment: Segment | None = None

    def plan(self) -> None:
        self.segment = None
        self.bring_back_down_servers()
        self.confirm_starting_servers()
        self.segment = "mirrors"
        self.upgrade_mirrors()
        self.segment = "failover"
        self.upgrade_active()
        if self.options.failback:
            self.segment = "failback"
            self.fail_back()

    # -- rules, in the order they apply ----------------------------------------------------
    def bring_back_down_servers(self) -> None:
        """A server that is down is brought back first: never two down at once (no segment:
        whichever stripe op looks first does it)."""
        for name, seen in list(self.state.items()):
            if seen.running:
                continue
            successor = self.takeover_candidate(name)
            if self.active_name() is None and successor:
                self.add(successor, "wait-failover", f"{successor} is ACTIVE-COORDINATOR")
                self.set(successor, True, self.state[successor].version, ACTIVE)
            self.bring_back(name)

    def confirm_starting_servers(self) -> None:
        """A server on the target still starting or syncing is confirmed before going on (no
        segment, as above)."""
        for name, seen in list(self.state.items()):
            if seen.running and seen.version == self.target and seen.state not in (ACTIVE, STANDBY):
                self.confirm(name)

    def upgrade_mirrors(self) -> None:
        """Every mirror, in inventory order, before the active."""
        for name, seen in list(self.state.items()):
            if name == self.active_name():
                continue
            if seen.version == self.target:
                self.add(
                    name,
                    "upgrade",
                    f"{name} on {self.target}",
                    skip=f"already runs {self.target} and is {seen.state or 'up'}",
                )
                continue
            self.add(name, "stop", "the stop script reported success and the process exited")
            self.set(name, False, seen.version, None)
            self.bring_back(name)

    def upgrade_active(self) -> None:
        """The active, through a controlled failover to a PASSIVE-STANDBY mirror."""
        active = self.active_name()
        if active is None:
            return
        if self.state[active].version == self.target:
            self.add(
                active,
                "upgrade",
                f"{active} on {self.target}",
                skip=f"already runs {self.target} and is ACTIVE-COORDINATOR",
            )
            return
        if self.single:
            self.add(active, "stop", "stopped (downtime: this stripe has no mirror)")
            self.set(active, False, self.state[active].version, None)
        else:
            self.fail_over_from(
                active,
                "failover-stop",
                "a mirror is PASSIVE-STANDBY before the stop; the process exited",
            )
        self.bring_back(active)

    def fail_back(self) -> None:
        """Return the ACTIVE role to the stripe's preferred server."""
        current = self.active_name()
        if self.preferred is None or self.single or current is None:
            return
        name = self.preferred.name
        if current == name:
            self.add(
                name,
                "failback",
                f"{name} is ACTIVE-COORDINATOR",
                skip=f"{name} is already the ACTIVE",
            )
            return
        self.fail_over_from(
            current,
            "failback-stop",
            f"{name} is PASSIVE-STANDBY before the stop; the process exited",
        )
        self.bring_back(current)

    # -- building blocks -------------------------------------------------------------------
    def add(
        self, server: str, action: Action, waits_for: str, *, skip: str = "", detail: str = ""
    ) -> None:
        self.b.add(
            "servers",
            server,
            action,
            waits_for,
            lane=f"servers/{self.region.name}/{self.stripe.name}",
            region=self.region.name,
            stripe=self.stripe.name,
            segment=self.segment,
            skipped=bool(skip),
            reason=skip,
            detail=detail,
        )

    def set(self, name: str, running: bool, version: str | None, state: str | None) -> None:
        self.state[name] = NodeState(running, version, state)

    def active_name(self) -> str | None:
        return next((n for n, s in self.state.items() if s.running and s.state == ACTIVE), None)

    def takeover_candidate(self, excluding: str) -> str | None:
        # The real election picks any PASSIVE-STANDBY mirror; the plan predicts the preferred
        # server, else the first in inventory order, and the procedure acts on whichever
        # actually took over.
        preferred = self.preferred.name if self.preferred else None
        order = sorted(self.state, key=lambda n: n != preferred)
        return next(
            (
                n
                for n in order
                if n != excluding and self.state[n].running and self.state[n].state == STANDBY
            ),
            None,
        )

    def install_detail(self) -> str:
        note = "move the old kit aside" if self.options.keep_previous_kit else "remove the old kit"
        if self.options.delete_dirty_backups:
            note += ", delete dirty-objectdb backups"
        return note + f", unpack {self.target}, put the license in the kit root"

    def bring_back(self, name: str) -> None:
        """Steps for a server that is down: install if needed, start, confirm."""
        if self.state[name].version != self.target:
            self.add(
                name,
                "install",
                f"the kit root holds the {self.target} kit and terracotta-license.key",
                detail=self.install_detail(),
            )
        self.add(name, "start", "the start script launched the server detached")
        self.confirm(name)

    def confirm(self, name: str) -> None:
        if self.single:
            self.add(name, "confirm-active", f"{name} is ACTIVE-COORDINATOR on {self.target}")
            self.set(name, True, self.target, ACTIVE)
        else:
            self.add(
                name,
                "confirm-standby",
                f"{name} is PASSIVE-STANDBY and version.sh prints {self.target}",
            )
            self.set(name, True, self.target, STANDBY)

    def fail_over_from(self, name: str, action: Action, waits_for: str) -> None:
        self.add(name, action, waits_for)
        self.set(name, False, self.state[name].version, None)
        successor = self.takeover_candidate(name)
        self.add(
            successor or name,
            "wait-failover",
            f"{successor or 'a mirror'} is ACTIVE-COORDINATOR (election time)",
        )
        if successor:
            self.set(successor, True, self.state[successor].version, ACTIVE)
