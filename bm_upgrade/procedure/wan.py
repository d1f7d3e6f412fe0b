"""The WAN orchestrator cycle: stop standby orchestrators, then masters; upgrade every one
from the same kit; start masters, then standbys; confirm the master region serves and every
replica cache resynced.

docs/safety.md rule 6: orchestrators are touched only after every server of every region runs the
target with one ACTIVE plus PASSIVE-STANDBY mirrors per stripe (checked here, before the first
stop); standby orchestrators stop before masters (so no standby takes over and forces every
replica to resync twice); all orchestrators start on the same version (every install before
any start). The order is the plan's (:func:`bm_upgrade.plan.make_plan`), made on the state
seen now, so a rerun does only what is missing.
"""

from __future__ import annotations

import posixpath
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bm_upgrade.errors import RemoteError, StepFailed
from bm_upgrade.inventory import Orchestrator
from bm_upgrade.license import LICENSE_FILE_NAME
from bm_upgrade.plan import NodeState, Step, make_plan
from bm_upgrade.probes import (
    OrchestratorStatus,
    kit_version,
    probe_orchestrator,
    read_wan_bind,
)
from bm_upgrade.procedure.install import detached_pid, install_kit, start_licensed
from bm_upgrade.procedure.kit_swap import NOT_A_KIT, kit_root_guard, not_a_kit
from bm_upgrade.procedure.observe import require_servers_ready
from bm_upgrade.procedure.records import StepRecord, StepRecorder, skipped
from bm_upgrade.procedure.servers import ServerOps
from bm_upgrade.procedure.waits import ALIVE_EVERY_S, Poll, wait_for
from bm_upgrade.remote import shell
from bm_upgrade.remote.quoting import detached, split_marked
from bm_upgrade.window import ORCHESTRATORS

REPLICA_READY = "ACTIVE"


def _script(orch: Orchestrator, name: str) -> str:
    return posixpath.join(orch.install_dir.rstrip("/"), "server", "bin", name)


def console_log(orch: Orchestrator) -> str:
    return orch.console_log or posixpath.join(
        posixpath.dirname(orch.install_dir.rstrip("/")) or "/", f"{orch.name}.console.log"
    )


class WanWatch:
    """How the cycle looks at orchestrators: each one's wan.xml ``<bind>`` is read over SSH
    once per cycle (the cycle does not change wan.xml), then every look is one HTTP request
    to its status port; its host's process list only while it does not answer, at most
    every :data:`~bm_upgrade.procedure.waits.ALIVE_EVERY_S`. Safe to share between the
    threads of one plan stage."""

    def __init__(self, ctx: ServerOps) -> None:
        self.ctx = ctx
        self._binds: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def probe(self, orch: Orchestrator) -> OrchestratorStatus:
        conn = self.ctx.pool.get(orch.host)
        with self._lock:
            bind = self._binds.get(orch.name)
        if bind is None:
            try:
                bind = read_wan_bind(conn, orch)
            except (RemoteError, ValueError) as exc:
                return OrchestratorStatus(orch.name, orch.host, reachable=False, error=str(exc))
            with self._lock:
                self._binds[orch.name] = bind
        return probe_orchestrator(conn, orch, bind=bind)

    def alive(self, orch: Orchestrator) -> bool:
        """A process started by ``start-wan.sh -f <wan_xml>`` of this orchestrator runs."""
        listing = (
            self.ctx.pool.get(orch.host).run(["ps", "-ww", "-eo", "args="], timeout=30.0).stdout
        )
        return any(
            orch.wan_xml in line.split() and "stop-wan" not in line for line in listing.splitlines()
        )


def observe(wan: WanWatch) -> dict[str, tuple[Orchestrator, OrchestratorStatus, NodeState]]:
    """Every orchestrator: its status and the state the plan needs (installed kit when down)."""
    seen = {}
    for region in wan.ctx.inventory.regions:
        for orch in region.orchestrators:
            status = wan.probe(orch)
            if status.reachable:
                state = NodeState(True, status.version)
            else:
                state = NodeState(
                    wan.alive(orch), kit_version(wan.ctx.pool.get(orch.host), orch.install_dir)
                )
            seen[orch.name] = (orch, status, state)
    return seen


def _stop(wan: WanWatch, orch: Orchestrator, rec: StepRecorder) -> None:
    ctx = wan.ctx
    conn = ctx.pool.get(orch.host)
    timeout = ctx.options.timeouts.orchestrator_s
    # Only an orchestrator whose kit root proved to be a 4.x kit is stopped: its kit root
    # is swapped next (docs/safety.md rule 9).
    result = conn.run(
        kit_root_guard(orch.install_dir)
        + shell([_script(orch, "stop-wan.sh"), "-f", orch.wan_xml]),
        timeout=timeout,
        check=False,
    )
    refused = split_marked(result.stdout).get(NOT_A_KIT)
    if refused is not None:
        raise not_a_kit(orch, refused, f"{orch.name} was not stopped")
    rec.done(f"ran stop-wan.sh (exit {result.exit_code})")

    def check() -> Poll[bool]:
        if wan.probe(orch).reachable or wan.alive(orch):
            return Poll(now="still running")
        return Poll(True, "stopped")

    outcome = wait_for(
        check, what=f"{orch.name} stopped", timeout_s=timeout, log=ctx.log, poll_s=ctx.poll_s
    )
    if not outcome.ok:
        raise StepFailed(
            orch.name,
            f"orchestrator {orch.name} on {orch.host} did not stop "
            f"within {timeout:g} s ({outcome.why_not(timeout)}); check "
            f"{console_log(orch)}, stop it by hand, then rerun",
        )


def _start(wan: WanWatch, orch: Orchestrator, rec: StepRecorder) -> None:
    ctx = wan.ctx
    conn = ctx.pool.get(orch.host)
    license_path = posixpath.join(orch.install_dir.rstrip("/"), LICENSE_FILE_NAME)
    output = start_licensed(
        conn,
        detached(
            [_script(orch, "start-wan.sh"), "-f", orch.wan_xml],
            console_log(orch),
            cwd=posixpath.dirname(orch.install_dir.rstrip("/")) or "/",
        ),
        license_path,
    )
    if output is None:
        raise StepFailed(
            orch.name,
            f"orchestrator {orch.name} was not started: "
            f"{license_path} is missing on {orch.host}; stage the kit again, "
            "then rerun",
        )
    rec.done(f"started {orch.name} detached (pid {detached_pid(conn, output)})")
    timeout = ctx.options.timeouts.orchestrator_s
    alive_checked = time.monotonic()  # just launched: its process list is read a bit later

    def check() -> Poll[OrchestratorStatus]:
        nonlocal alive_checked
        status = wan.probe(orch)
        if status.reachable and status.version == ctx.target:
            return Poll(status, status.state or "running")
        if not status.reachable and time.monotonic() - alive_checked >= ALIVE_EVERY_S:
            alive_checked = time.monotonic()
            if not wan.alive(orch):
                return Poll(now="down", hopeless=f"{orch.name}'s process exited")
        return Poll(now=status.state or "starting")

    outcome = wait_for(
        check,
        what=f"{orch.name} running on {ctx.target}",
        timeout_s=timeout,
        log=ctx.log,
        poll_s=ctx.poll_s,
    )
    if outcome.value is None:
        raise StepFailed(
            orch.name,
            f"orchestrator {orch.name} on {orch.host} did not come up "
            f"on {ctx.target} ({outcome.why_not(timeout)}); check "
            f"{console_log(orch)} (license with WAN? same version everywhere?), "
            "then rerun",
        )
    rec.done(f"{orch.name} runs {ctx.target} as {outcome.value.state}")


def confirm_wan(wan: WanWatch, rec: StepRecorder) -> None:
    """Every orchestrator answers on the target; every replica cache is ACTIVE again."""
    ctx = wan.ctx
    timeout = ctx.options.timeouts.orchestrator_s
    orchs = [o for r in ctx.inventory.regions for o in r.orchestrators]

    def check() -> Poll[bool]:
        waiting = []
        for orch in orchs:
            status = wan.probe(orch)
            if not status.reachable or status.version != ctx.target:
                waiting.append(f"{orch.name} {status.state or 'down'}")
                continue
            waiting += [
                f"{status.region or orch.name}/{c.name} {c.state}"
                for c in status.caches
                if c.state != REPLICA_READY
            ]
        return Poll(now=", ".join(waiting)) if waiting else Poll(True, "all caches ACTIVE")

    outcome = wait_for(
        check,
        what="every replica cache resynced",
        timeout_s=timeout,
        log=ctx.log,
        poll_s=ctx.poll_s,
    )
    if not outcome.ok:
        raise StepFailed(
            "orchestrators",
            f"the WAN did not settle within {timeout:g} s "
            f"({outcome.why_not(timeout)}); the servers and clients are upgraded; "
            "check the orchestrators' logs, then rerun",
        )
    rec.done(f"master region serving, every replica cache ACTIVE after {outcome.waited_s:.1f} s")


def cycle_orchestrators(ctx: ServerOps) -> list[StepRecord]:
    """Run the orchestrator steps the plan still lists, in its order."""
    if not ctx.inventory.has_wan():
        return []
    require_servers_ready(ctx.inventory, ctx.pool, ctx.target, "orchestrators")
    records: list[StepRecord] = []
    wan = WanWatch(ctx)
    seen = observe(wan)
    states = {name: state for name, (_, _, state) in seen.items()}
    wan_only = ctx.inventory.model_copy(
        update={"regions": [r.model_copy(update={"clients": []}) for r in ctx.inventory.regions]}
    )
    plan = make_plan(wan_only, states | _servers_done(ctx), ctx.options)
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
        todo = [s for s in group if not s.skipped]
        if len(todo) <= 1:
            records += [_run_step(wan, s, seen) for s in todo]
            continue
        with ThreadPoolExecutor(max_workers=len(todo)) as pool:
            futures = [pool.submit(_run_step, wan, s, seen) for s in todo]
        errors = [e for e in (f.exception() for f in futures) if e is not None]
        records += [f.result() for f in futures if f.exception() is None]
        if errors:
            first = errors[0]
            for other in errors[1:]:
                first.add_note(f"also failed: {other}")
            raise first
    return records


def _run_step(
    wan: WanWatch,
    step: Step,
    seen: dict[str, tuple[Orchestrator, OrchestratorStatus, NodeState]],
) -> StepRecord:
    """One orchestrator step; its record, or StepFailed naming the orchestrator."""
    ctx = wan.ctx
    rec = StepRecorder(step.node, step.action)
    try:
        if step.action == "confirm-wan":
            confirm_wan(wan, rec)
        else:
            orch = seen[step.node][0]
            rec.saw(f"{orch.name} ({orch.role}) {seen[step.node][2]}")
            if step.action == "stop":
                _stop(wan, orch, rec)
            elif step.action == "install":
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
            elif step.action == "start":
                _start(wan, orch, rec)
    except RemoteError as exc:
        raise StepFailed(
            step.node,
            f"{step.action} of {step.node} failed talking to "
            f"{exc.host} ({exc}); fix the connection and rerun: finished "
            "steps are skipped",
        ) from exc
    record = rec.record()
    ctx.log.info("%s", record.summary())
    return record


def _servers_done(ctx: ServerOps) -> dict[str, NodeState]:
    """Servers as already upgraded (checked by require_servers_ready): the plan then lists
    only orchestrator work."""
    return {
        server.name: NodeState(
            True,
            ctx.target,
            "ACTIVE-COORDINATOR" if server is stripe.preferred_active() else "PASSIVE-STANDBY",
        )
        for _, stripe, server in ctx.inventory.servers()
    }
