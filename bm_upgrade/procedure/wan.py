"""The WAN orchestrator cycle: stop standby orchestrators, then masters; upgrade every one
from the same kit; start masters, then standbys; confirm the master region serves and every
replica cache resynced.

docs/safety.md rule 6: orchestrators are touched only after every server of every region runs the
target with one ACTIVE plus PASSIVE-STANDBY mirrors per stripe (checked here, before the first
stop); standby orchestrators stop before masters (so no standby takes over and forces every
replica to resync twice); all orchestrators start on the same version (every install before
any start). The order is the plan's (:func:`bm_upgrade.plan.make_plan`), made on the state
seen now, so a rerun does only what is missing.

An orchestrator has no status endpoint: it is up when its process runs and its ``<bind>`` port
listens, and "every replica resynced" is read from the master region's replication logs, in
the lines written after the restart (docs/terracotta.md, "WAN replication"). The cycle
reaches hosts only through the context's :class:`~bm_upgrade.procedure.waits.Hosts` and reads
orchestrators through an injectable probe (:mod:`bm_upgrade.procedure.wan_watch`), so
tests/unit/test_wan_branches.py drives it with a scripted fake.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial

from bm_upgrade.errors import RemoteError, StepFailed
from bm_upgrade.inventory import Orchestrator
from bm_upgrade.inventory.scripts import script_argv
from bm_upgrade.plan import Action, Step, make_plan
from bm_upgrade.probes import OrchestratorStatus, probe_orchestrator, synchronized_replicas
from bm_upgrade.probes.orchestrator import names_replica
from bm_upgrade.procedure.install import detached_pid, start_licensed
from bm_upgrade.procedure.kit_swap import NOT_A_KIT, install_kit, kit_root_guard, not_a_kit
from bm_upgrade.procedure.observe import require_servers_ready
from bm_upgrade.procedure.records import StepRecord, StepRecorder, skipped
from bm_upgrade.procedure.servers import StepContext
from bm_upgrade.procedure.side_by_side import side_by_side
from bm_upgrade.procedure.waits import ALIVE_EVERY_S, Poll
from bm_upgrade.procedure.wan_watch import OrchestratorProbe, Seen, WanWatch, observe
from bm_upgrade.remote import shell
from bm_upgrade.remote.quoting import detached, split_marked
from bm_upgrade.window import ORCHESTRATORS


def _stop(wan: WanWatch, orch: Orchestrator, rec: StepRecorder) -> None:
    ctx = wan.ctx
    conn = ctx.pool.get(orch.host)
    timeout = ctx.options.timeouts.orchestrator_s
    # Only an orchestrator whose kit root proved to be a 4.x kit is stopped: its kit root
    # is swapped next (docs/safety.md rule 9).
    result = conn.run(
        kit_root_guard(orch) + shell(script_argv(orch, "stop-wan.sh", "-f", orch.wan_xml)),
        timeout=timeout,
        check=False,
    )
    refused = split_marked(result.stdout).get(NOT_A_KIT)
    if refused is not None:
        raise not_a_kit(orch, refused, f"{orch.name} was not stopped")
    rec.done(f"ran stop-wan.sh (exit {result.exit_code})")

    def check() -> Poll[bool]:
        status = wan.probe(orch)
        if status.running is None:
            return Poll(now=f"not read ({status.error})")
        if status.running or status.listening:
            return Poll(now="still running" if status.running else "port still open")
        return Poll(True, "stopped")

    outcome = ctx.wait(check, f"{orch.name} stopped", timeout, ctx.poll_s)
    outcome.value_or_fail(
        orch.name,
        f"orchestrator {orch.name} on {orch.host} did not stop within {timeout:g} s",
        f"check {orch.console_log_path}, stop it by hand, then rerun",
    )


def _start(wan: WanWatch, orch: Orchestrator, rec: StepRecorder) -> None:
    ctx = wan.ctx
    conn = ctx.pool.get(orch.host)
    root = orch.kit_root
    wan.mark(orch)  # the replication log's lines after this start are the resync's
    output = start_licensed(
        conn,
        detached(
            script_argv(orch, "start-wan.sh", "-f", orch.wan_xml),
            orch.console_log_path,
            cwd=root.parent,
        ),
        root.license,
    )
    if output is None:
        raise StepFailed(
            orch.name,
            f"orchestrator {orch.name} was not started: "
            f"{root.license} is missing on {orch.host}; stage the kit again, "
            "then rerun",
        )
    rec.done(f"started {orch.name} detached (pid {detached_pid(conn, output)})")
    timeout = ctx.options.timeouts.orchestrator_s
    launched = time.monotonic()

    def check() -> Poll[OrchestratorStatus]:
        status = wan.probe(orch)
        if status.up:
            return Poll(status, f"running, {status.bind} listening")
        if status.running is False and time.monotonic() - launched >= ALIVE_EVERY_S:
            return Poll(now="down", hopeless=f"{orch.name}'s process exited")
        return Poll(now=status.state if status.running is not None else f"{status.error}")

    outcome = ctx.wait(check, f"{orch.name} running and listening", timeout, ctx.poll_s)
    status = outcome.value_or_fail(
        orch.name,
        f"orchestrator {orch.name} on {orch.host} did not come up on {ctx.target}",
        f"check {orch.console_log_path} (license with WAN? same version everywhere?), then rerun",
    )
    version = wan.probe(orch, version=True).version
    if version != ctx.target:
        raise StepFailed(
            orch.name,
            f"orchestrator {orch.name} on {orch.host} runs from a kit root whose version.sh "
            f"says {version or 'nothing readable'}, not {ctx.target}; check "
            f"{orch.install_dir}, then rerun",
        )
    rec.done(f"{orch.name} runs {ctx.target}, {status.bind} listening")


def _resync_waiting(wan: WanWatch) -> list[str]:
    """What the master region's replication logs do not yet show: ``<region>/<cache>`` for
    every replica region and cache no orchestrator of that region was successfully
    synchronized for (in lines written since each master-region orchestrator's start)."""
    inventory = wan.ctx.inventory
    master = inventory.wan_master_region
    regions = [r for r in inventory.regions if r.orchestrators and r.name != master]
    sources = [o for r, o in inventory.orchestrators() if r.name == master]
    if not regions or not sources:
        return []
    done: dict[str, set[str]] = {}
    caches: set[str] = set()
    for orch in sources:
        caches.update(wan.config(orch).caches)
        for replica, synchronized in synchronized_replicas(wan.probe(orch).syncs).items():
            done.setdefault(replica, set()).update(synchronized)
    waiting = []
    for region in regions:
        synced: set[str] = set()
        for orch in region.orchestrators:
            for logged, logged_caches in done.items():
                if names_replica(logged, orch, wan.config(orch)):
                    synced |= logged_caches
        waiting += [f"{region.name}/{cache}" for cache in sorted(caches - synced)]
    return waiting


def confirm_wan(wan: WanWatch, rec: StepRecorder) -> None:
    """Every orchestrator up (process, port) on the target; every replica region resynced,
    as the master region's replication logs say."""
    ctx = wan.ctx
    timeout = ctx.options.timeouts.orchestrator_s
    orchs = [orch for _, orch in ctx.inventory.orchestrators()]
    on_target: set[str] = set()

    def check() -> Poll[bool]:
        waiting = []
        for orch in orchs:
            status = wan.probe(orch, version=orch.name not in on_target)
            if status.up and (orch.name in on_target or status.version == ctx.target):
                on_target.add(orch.name)
            else:
                waiting.append(f"{orch.name} {status.state}")
        if not waiting:
            waiting = [f"{w} not resynced" for w in _resync_waiting(wan)]
        return Poll(now=", ".join(waiting)) if waiting else Poll(True, "all replicas resynced")

    outcome = ctx.wait(check, "every replica cache resynced", timeout, ctx.poll_s)
    if not outcome.ok and len(on_target) == len(orchs):
        waiting = _resync_waiting(wan)
        regions = {w.split("/", 1)[0] for w in waiting}
        replicas = [o.name for r, o in ctx.inventory.orchestrators() if r.name in regions]
        if waiting:
            raise StepFailed(
                "orchestrators",
                f"the replica caches {', '.join(waiting)} did not resync within "
                f"{timeout:g} s: the master region's replication log shows no "
                "'successfully synchronized' line for them since the restart, while every "
                f"orchestrator is up on {ctx.target} and the servers and clients are "
                f"upgraded; check the replication logs of {', '.join(replicas)}, then rerun",
            )
    outcome.value_or_fail(
        "orchestrators",
        f"the WAN did not settle within {timeout:g} s",
        "the servers and clients are upgraded; check the orchestrators' replication logs, "
        "then rerun",
    )
    rec.done(
        "every orchestrator up, every replica cache resynced (the master region's "
        f"replication log) after {outcome.waited_s:.1f} s"
    )


def cycle_orchestrators(
    ctx: StepContext, probe: OrchestratorProbe = probe_orchestrator
) -> list[StepRecord]:
    """Run the orchestrator steps the plan still lists, in its order.

    Args:
        probe: how an orchestrator's status is read (see :class:`WanWatch`).

    Raises:
        StepFailed: the servers are not ready (nothing touched), or a step failed (naming
            the orchestrator; the other steps of its stage finished theirs).
    """
    if not ctx.inventory.has_wan():
        return []
    require_servers_ready(ctx.inventory, ctx.pool, ctx.target, "orchestrators")
    records: list[StepRecord] = []
    wan = WanWatch(ctx, probe)
    seen = observe(wan)
    states = {name: state for name, (_, _, state) in seen.items()}
    # Only the orchestrators are observed: the plan's steps of the other phases are made on
    # no look at all and are not this step's.
    plan = make_plan(ctx.inventory, states, ctx.options)
    steps = [s for s in plan.steps if s.phase == "orchestrators"]
    first_stop = next((s for s in steps if s.action == "stop" and not s.skipped), None)
    if first_stop is not None:  # once: the cycle is one outage of the WAN replication
        ctx.before_disruptive(
            first_stop.node,
            "the orchestrator cycle (stop, upgrade, start every orchestrator)",
            ORCHESTRATORS,
        )
    # Steps of one plan stage may overlap (the plan's lanes): stop the standbys together,
    # then the masters, install all, start the masters, then the standbys.
    for stage in sorted({s.stage for s in steps}):
        group = [s for s in steps if s.stage == stage]
        records += [skipped(s.node, s.action, s.waits_for, s.reason) for s in group if s.skipped]
        todo = {s.node: partial(_run_step, wan, s, seen) for s in group if not s.skipped}
        try:
            records += side_by_side(todo, at_most=len(todo)).values().values()
        except StepFailed as exc:
            if exc.node not in seen:  # confirm-wan: it said every orchestrator's state
                raise
            raise _with_the_others(wan, exc) from exc
    return records


def _with_the_others(wan: WanWatch, exc: StepFailed) -> StepFailed:
    """A failed stage's error, with the state every other orchestrator is left in, read now
    (the WAN cycle touches no server)."""
    others = []
    for _, orch in wan.ctx.inventory.orchestrators():
        if orch.name == exc.node:
            continue
        status = wan.probe(orch, version=True)
        kit = f"on {status.version}" if status.up else f"(kit {status.version or 'unknown'})"
        others.append(f"{orch.name} {status.state} {kit}")
    told = f"{exc}; the other orchestrators now: {', '.join(others) or 'none'}"
    again = StepFailed(exc.node, f"{told}; no server was touched by the WAN cycle")
    for note in getattr(exc, "__notes__", []):
        again.add_note(note)
    return again


def _install(wan: WanWatch, orch: Orchestrator, rec: StepRecorder) -> None:
    ctx = wan.ctx
    staged_kit, staged_license = ctx.staged_paths(orch.host)
    install_kit(
        ctx.pool.get(orch.host),
        orch,
        target=ctx.target,
        staged_kit=staged_kit,
        staged_license=staged_license,
        keep_previous=ctx.options.keep_previous_kit,
        delete_backups=False,
        rec=rec,
        kit_sha256=ctx.target_sha256,
        unpacked_bytes=ctx.unpacked_bytes(orch.host),
    )


OrchestratorAction = Callable[[WanWatch, Orchestrator, StepRecorder], None]
ACTIONS: dict[Action, OrchestratorAction] = {"stop": _stop, "install": _install, "start": _start}
"""What each action the plan gives one orchestrator does (``confirm-wan`` is the cluster's)."""


def _run_step(wan: WanWatch, step: Step, seen: Mapping[str, Seen]) -> StepRecord:
    """One orchestrator step; its record, or StepFailed naming the orchestrator."""
    ctx = wan.ctx
    rec = StepRecorder(step.node, step.action)
    try:
        if step.action == "confirm-wan":
            confirm_wan(wan, rec)
        else:
            orch, _, state = seen[step.node]
            rec.saw(f"{orch.name} ({orch.role}) {state}")
            ACTIONS[step.action](wan, orch, rec)
    except RemoteError as exc:
        raise StepFailed.talking_to(
            step.node,
            f"{step.action} of {step.node}",
            exc,
            "fix the connection and rerun: finished steps are skipped",
        ) from exc
    record = rec.record()
    ctx.log.info("%s", record.summary())
    return record
