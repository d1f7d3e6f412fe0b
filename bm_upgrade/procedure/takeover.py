"""An ACTIVE's stop and the wait for a mirror to take over: the controlled failover of
docs/terracotta.md, and the failback that returns the role to the preferred server.

The ACTIVE is stopped only while a mirror is PASSIVE-STANDBY, seen right before the stop
(docs/safety.md rule 2; the kit's stop script refuses otherwise too). If no mirror takes over
within ``failover_s``, whatever was stopped is started again at once on the kit it had, and
the step fails (rule 8).
"""

from __future__ import annotations

from collections.abc import Mapping

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Server, Stripe
from bm_upgrade.plan import ACTIVE, STANDBY
from bm_upgrade.probes import ServerStatus
from bm_upgrade.procedure.context import StepContext
from bm_upgrade.procedure.install import start_server, stop_server
from bm_upgrade.procedure.records import StepRecorder
from bm_upgrade.procedure.seen import Seen
from bm_upgrade.procedure.server_actions import check_staged, guard_others_up
from bm_upgrade.procedure.waits import Poll
from bm_upgrade.window import DISRUPTIVE


def stop_active(
    ctx: StepContext,
    stripe: Stripe,
    server: Server,
    seen: Mapping[str, Seen],
    rec: StepRecorder,
    *,
    to_preferred: bool,
) -> None:
    """Stop the ACTIVE once a mirror is PASSIVE-STANDBY, seen at that moment: any mirror for
    a failover, the stripe's preferred server for a failback (``to_preferred``)."""
    guard_others_up(stripe, server, seen)
    if not to_preferred:  # a failover: the old active is installed next
        check_staged(ctx, server, seen, rec)
    preferred = stripe.preferred_active() if to_preferred else None
    mirrors = [
        s
        for s in stripe.servers
        if s.name != server.name and (preferred is None or s.name == preferred.name)
    ]

    def check() -> Poll[ServerStatus]:
        me = ctx.probe(server)
        if me.state != ACTIVE:
            return Poll(
                now=f"{server.name} {me.state}",
                hopeless=f"{server.name} is no longer {ACTIVE} ({me.state})",
            )
        states = [ctx.probe(m) for m in mirrors]
        standby = next((st for st in states if st.state == STANDBY), None)
        now = ", ".join(f"{st.name} {st.state}" for st in states)
        return Poll(standby, now)

    timeout = ctx.options.timeouts.sync_s
    outcome = ctx.wait(check, f"a PASSIVE-STANDBY mirror before stopping {server.name}", timeout)
    standby = outcome.value_or_fail(
        server.name,
        f"{server.name} (ACTIVE) was not stopped: no mirror of stripe {stripe.name} was {STANDBY}",
        f"the stripe keeps running on {server.name}; get a mirror synced "
        "(`bm-upgrade status`), then rerun",
    )
    rec.done(f"confirmed {standby.name} {STANDBY} right before the stop")
    # The wait may have lasted minutes, long enough for another step to fail: ask again.
    ctx.before_disruptive(
        server.name,
        f"stop of {server.name} (the ACTIVE of stripe {stripe.name})",
        DISRUPTIVE["failover-stop"],
    )
    stop_server(ctx, server, rec)


def wait_takeover(
    ctx: StepContext, stripe: Stripe, server: Server, seen: Mapping[str, Seen], rec: StepRecorder
) -> None:
    """Wait until a server of the stripe is ACTIVE after the ACTIVE's stop.

    Raises:
        StepFailed: none took over within ``failover_s``; what was stopped was started again
            on the kit it had, and the message says whether the stripe is served again.
    """
    timeouts = ctx.options.timeouts
    outcome = ctx.wait_active(stripe, timeouts.failover_s)
    if outcome.value is not None:
        ctx.saw_active(stripe, outcome.value.name)
        rec.done(f"confirmed {outcome.value.name} {ACTIVE} after {outcome.waited_s:.1f} s")
        return
    # Nobody took over: the stripe is down. Start what was stopped again, on the kit it had.
    restarted = []
    for name, now in ctx.observe_servers(stripe.servers).items():
        if not now.running:
            start_server(ctx, now.server, rec)
            restarted.append(f"{name} on its {now.installed or 'current'} kit")
    back = ctx.wait_active(stripe, timeouts.start_s + timeouts.failover_s)
    result = (
        f"{back.value.name} is {ACTIVE} again"
        if back.value is not None
        else f"no server is {ACTIVE} yet: check the stripe at once"
    )
    why = outcome.why_not(timeouts.failover_s)
    stopped = next((n for n, now in seen.items() if not now.running), server.name)
    raise StepFailed(
        stopped,
        f"no mirror of stripe {stripe.name} became {ACTIVE} within "
        f"{timeouts.failover_s:g} s of the stop ({why}); started "
        f"{', '.join(restarted) or 'nothing'} again at once and "
        f"{result}; check the mirror's console log, then rerun",
    )
