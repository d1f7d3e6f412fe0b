"""What one server step does on live state: stop a mirror, install the target kit, start,
confirm the state and version it reached. An ACTIVE's stop and the takeover wait are
:mod:`bm_upgrade.procedure.takeover`'s.

Each action gets the stripe as seen right before it (``seen``) and checks again what the
safety rules need (docs/safety.md rules 3, 4 and 8): nothing is stopped, or kept down for an
install, while another server of the stripe is down or no other server is ACTIVE; a failed
install that left the old kit untouched starts the server again on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bm_upgrade.errors import RemoteError, StepFailed
from bm_upgrade.inventory import Server, Stripe
from bm_upgrade.plan import ACTIVE, STANDBY
from bm_upgrade.probes import kit_version
from bm_upgrade.procedure.context import StepContext, stripe_key
from bm_upgrade.procedure.install import console_tail, start_server, stop_server
from bm_upgrade.procedure.kit_swap import install_kit
from bm_upgrade.procedure.kit_unpack import check_staged_kit
from bm_upgrade.procedure.records import StepRecorder
from bm_upgrade.procedure.seen import Seen, describe

ServerStep = Callable[[StepContext, Stripe, Server, Mapping[str, Seen], StepRecorder], None]
"""One plan action on one server of a stripe, given the stripe as seen right before it."""


def serving(seen: Mapping[str, Seen], excluding: str) -> str:
    """Who serves the stripe while ``excluding`` is not, in words (for a failure message)."""
    active = [n for n, s in seen.items() if n != excluding and s.node_state.state == ACTIVE]
    return (
        f"stripe still served by {active[0]} (ACTIVE)"
        if active
        else "check the stripe at once with `bm-upgrade status`"
    )


def guard_others_up(stripe: Stripe, server: Server, seen: Mapping[str, Seen]) -> None:
    """Raises: StepFailed when another server of the stripe is down (docs/safety.md rule 3)."""
    down = [s.describe() for name, s in seen.items() if name != server.name and not s.running]
    if down:
        raise StepFailed(
            server.name,
            f"{server.name} was not stopped: {', '.join(down)}, and "
            f"at most one server of stripe {stripe.name} may be down; bring it "
            "back first (rerun the upgrade), then retry",
        )


def check_staged(
    ctx: StepContext, server: Server, seen: Mapping[str, Seen], rec: StepRecorder
) -> None:
    """Before a server still to install is stopped: its host's staged kit is still the one
    the inventory names (procedure/kit_unpack.py, ``check_staged_kit``).

    Raises:
        StepFailed: it is missing or changed; nothing was stopped.
    """
    if seen[server.name].installed == ctx.target:
        return
    kit_path, _ = ctx.staged_paths(server.host)
    check_staged_kit(
        ctx.pool.get(server.host),
        server,
        kit_path,
        target=ctx.target,
        kit_sha256=ctx.target_sha256,
        then=serving(seen, ""),
    )
    rec.saw(f"the staged {ctx.target} kit on {server.host} still has its sha256")


def guard_lone_start(
    ctx: StepContext, stripe: Stripe, server: Server, seen: Mapping[str, Seen]
) -> None:
    """Before starting a server while no other server of its stripe runs: the tool starts
    none then. Every server of a stripe down is a failure the tool did not cause (it keeps
    one up, docs/safety.md rule 3), and which server comes back first matters: in a
    persistent stripe only the last ACTIVE holds every acknowledged write (docs/terracotta.md,
    Persistence), and another one started alone may serve older data.

    Raises:
        StepFailed: no other server of the stripe runs; the sentence names the server to
            start first when this step saw the stripe's last ACTIVE.
    """
    if len(stripe.servers) < 2 or any(s.running for n, s in seen.items() if n != server.name):
        return
    region = next(r for r, _, s in ctx.inventory.servers() if s.name == server.name)
    last = ctx.last_active.get(stripe_key(stripe))
    if not ctx.inventory.region_persistent(region):
        first = "its data is gone (not persistent): start its servers again"
    elif last is not None:
        first = f"start {last} first (the stripe's last ACTIVE, which holds its newest data)"
    else:
        first = (
            "start first the server that was ACTIVE last (its terracotta-server.log shows "
            "`Becoming State[ ACTIVE-COORDINATOR ]` latest)"
        )
    raise StepFailed(
        server.name,
        f"{server.name} was not started: no server of stripe {stripe.name} runs "
        f"({describe(seen)}); {first}, then rerun",
    )


def stop(
    ctx: StepContext, stripe: Stripe, server: Server, seen: Mapping[str, Seen], rec: StepRecorder
) -> None:
    """Stop a mirror (or the lone server of a stripe without mirror, with consent), once its
    host's staged kit proved unchanged."""
    guard_others_up(stripe, server, seen)
    alone = len(stripe.servers) == 1
    if seen[server.name].node_state.state == ACTIVE and not alone:
        raise StepFailed(
            server.name,
            f"{server.name} is the ACTIVE of stripe {stripe.name}; "
            "it is stopped only through a failover (the stripe's failover step); nothing "
            "was stopped",
        )
    check_staged(ctx, server, seen, rec)
    # A stripe of one server is planned only with the operator's consent to its downtime
    # (plan.refusals), so its stop may override the script's no-mirror refusal.
    stop_server(ctx, server, rec, downtime_consented=alone and ctx.options.allow_downtime)


def install(
    ctx: StepContext, stripe: Stripe, server: Server, seen: Mapping[str, Seen], rec: StepRecorder
) -> None:
    """Replace a stopped server's kit root by the staged target kit (procedure/kit_swap.py)."""
    me = seen[server.name]
    if me.running:
        raise StepFailed(
            server.name,
            f"{server.name} is running, and its kit is replaced "
            "only while it is stopped; rerun the upgrade",
        )
    others_active = any(s.node_state.state == ACTIVE for n, s in seen.items() if n != server.name)
    if len(stripe.servers) > 1 and not others_active:
        guard_lone_start(ctx, stripe, server, seen)
        # It may be the only server holding the stripe's data: back on its own kit, now.
        start_server(ctx, server, rec)
        raise StepFailed(
            server.name,
            f"no other server of stripe {stripe.name} is "
            f"{ACTIVE}, so {server.name} cannot stay down for its install; it "
            f"was started again on its {me.installed or 'current'} kit; check "
            "the stripe with `bm-upgrade status`, then rerun",
        )
    conn = ctx.pool.get(server.host)
    try:
        kit_path, license_path = ctx.staged_paths(server.host)
        install_kit(
            conn,
            server,
            target=ctx.target,
            staged_kit=kit_path,
            staged_license=license_path,
            keep_previous=ctx.options.keep_previous_kit,
            delete_backups=ctx.options.delete_dirty_backups,
            rec=rec,
            kit_sha256=ctx.target_sha256,
            unpacked_bytes=ctx.unpacked_bytes(server.host),
        )
    except (StepFailed, RemoteError) as exc:
        if me.installed is None or kit_version(conn, server) != me.installed:
            raise
        # The old kit is untouched: bring the server back on it, so the stripe keeps its
        # mirror while the operator fixes the cause.
        start_server(ctx, server, rec)
        raise StepFailed(
            server.name,
            f"{exc}; {server.name} was started again on its untouched {me.installed} kit",
        ) from exc


def start(
    ctx: StepContext, stripe: Stripe, server: Server, seen: Mapping[str, Seen], rec: StepRecorder
) -> None:
    """Start a stopped server and wait until it answers (in any state)."""
    if seen[server.name].running:
        rec.saw(f"{server.name} already runs")
        return
    guard_lone_start(ctx, stripe, server, seen)
    start_server(ctx, server, rec)
    timeout = ctx.options.timeouts.start_s
    outcome = ctx.wait_state(server, None, timeout)
    outcome.value_or_fail(
        server.name,
        f"{server.name} on {server.host} did not start",
        f"{console_tail(ctx, server)}; {serving(seen, server.name)}; fix the cause, then rerun",
    )
    rec.done(f"{server.name} answers ({outcome.last}) after {outcome.waited_s:.1f} s")


def confirm(
    ctx: StepContext,
    stripe: Stripe,
    server: Server,
    seen: Mapping[str, Seen],
    rec: StepRecorder,
    *,
    state: str,
) -> None:
    """Wait until the server is in ``state`` (a mirror PASSIVE-STANDBY within ``sync_s``; the
    lone server of a stripe ACTIVE within ``start_s + failover_s``), then read its kit's
    version back (docs/safety.md rule 10)."""
    timeouts = ctx.options.timeouts
    timeout = timeouts.sync_s if state == STANDBY else timeouts.start_s + timeouts.failover_s
    outcome = ctx.wait_state(server, {state}, timeout)
    status = outcome.value_or_fail(
        server.name,
        f"{server.name} did not reach {state} within {timeout:g} s",
        f"{serving(seen, server.name)}; see {server.console_log_path}, then "
        "rerun (or roll back to the previous version)",
    )
    version = kit_version(ctx.pool.get(server.host), server)
    running = status.version
    if version != ctx.target or (running is not None and running != ctx.target):
        raise StepFailed(
            server.name,
            f"{server.name} is {state} but runs "
            f"{running or version or 'an unknown version'} (version.sh prints "
            f"{version or 'nothing'}), not {ctx.target}; check its kit root "
            f"{server.install_dir}, then rerun",
        )
    rec.done(
        f"confirmed {server.name} {state} after {outcome.waited_s:.1f} s; version.sh "
        f"prints {version}"
    )
