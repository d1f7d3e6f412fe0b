"""Preflight: every check that can fail early, before anything is touched anywhere.

docs/safety.md rule 1: nothing is stopped, removed or overwritten until preflight has passed
everywhere. It checks, in this order (cheapest and most likely to fail first): the
maintenance window, the license key, every host reachable, every node probed, a usable
JAVA_HOME for every node's kit scripts (procedure/java_check.py), every stripe served by one
ACTIVE (mirrors PASSIVE-STANDBY, or on their way back from an earlier run), and
the plan's refusals (downtime, data loss, not a maintenance upgrade). It returns the cluster as
seen, which the report uses as the "before" picture.

The target and the policy choices come from the run's options only (``PlanOptions``), never
from the inventory's own ``target_version``: a run ``--to 4.2.0`` resumes an interrupted
rollback. Disk room is checked once the kit's size is known, when it is staged (still before
anything is stopped: procedure/room.py).
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory
from bm_upgrade.license import check_license
from bm_upgrade.plan import Plan, PlanOptions, make_plan
from bm_upgrade.procedure.java_check import check_java_homes
from bm_upgrade.procedure.observe import ClusterView, observe_cluster
from bm_upgrade.procedure.tcconfig_check import check_tc_configs
from bm_upgrade.remote import HostPool
from bm_upgrade.runinputs import check_target

log = logging.getLogger(__name__)


@dataclass
class PreflightResult:
    """What preflight saw and concluded."""

    view: ClusterView
    plan: Plan
    warnings: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


def check_window(window_end: datetime.datetime | None, now: datetime.datetime) -> str:
    """Fails when the maintenance window has already closed."""
    if window_end is None:
        return "no maintenance window end given (run started by hand)"
    if now >= window_end:
        raise StepFailed(
            "preflight",
            f"the maintenance window ended at {window_end.isoformat()}"
            " before the run started; nothing was touched; run it in the next "
            "window, or by hand without window_end",
        )
    return f"inside the maintenance window until {window_end.isoformat()}"


def stripe_problems(
    inventory: Inventory, view: ClusterView, target: str
) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the stripes.

    A stripe must be served by exactly one ACTIVE. A mirror that is down or still syncing is
    an error, unless it already runs the run's ``target`` (an earlier run to that target was
    interrupted there: the plan brings it back first).
    """
    errors: list[str] = []
    warnings: list[str] = []
    for region, stripe in inventory.stripes():
        key = f"{region.name}/{stripe.name}"
        health = view.health.get(key)
        if health is None:
            continue  # its hosts are unreachable: reported as such
        split_brain = any("split brain" in p for p in health.problems)
        if health.active is None or split_brain:
            errors.extend(f"{key}: {p}" for p in health.problems)
            continue
        for server in stripe.servers:
            if server.name == health.active or server.name in health.standbys:
                continue
            seen = view.servers[server.name]
            if seen.node_state.version == target:
                warnings.append(
                    f"{key}: {seen.describe()}: an earlier run stopped there; "
                    "it is brought back first"
                )
            else:
                errors.append(
                    f"{key}: {seen.describe()}, not PASSIVE-STANDBY; let it "
                    "sync (or start it) before upgrading"
                )
    return errors, warnings


def preflight(
    inventory: Inventory,
    pool: HostPool,
    options: PlanOptions,
    *,
    window_end: datetime.datetime | None = None,
    now: datetime.datetime | None = None,
) -> PreflightResult:
    """Run every check; raise on the first group that fails, having touched nothing.

    Raises:
        UserError: the target has no kit in the inventory or is not a maintenance version
            (before any host is contacted).
        StepFailed: window closed, a host unreachable, a stripe not healthy.
        LicenseError: the key does not fit the target or the window (a field it lacks is a
            warning).
        PlanRefused: downtime, data loss or not a maintenance upgrade, without consent.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    # Before any host is contacted: runs from the UI or a schedule had no command line to
    # check their target first.
    check_target(
        inventory,
        f"the inventory of {inventory.cluster}",
        options.target_version,
        given_as="target_version",
    )
    checks = [check_window(window_end, now)]
    valid_through = (window_end or now).date()
    license_fit = check_license(
        inventory.license_file, options.target_version, inventory.has_wan(), valid_through
    )
    checks.append(license_fit.summary)

    view = observe_cluster(inventory, pool, reach_all=True)
    if view.unreachable:
        hosts = "; ".join(f"{h}: {why}" for h, why in view.unreachable.items())
        raise StepFailed(
            "preflight",
            f"{len(view.unreachable)} host(s) cannot be reached "
            f"({hosts}); nothing was touched; fix SSH access and rerun",
        )
    checks.append(f"all {len(inventory.hosts())} hosts reachable over SSH")
    checks.append(check_java_homes(inventory, pool))

    errors, warnings = stripe_problems(inventory, view, options.target_version)
    warnings = license_fit.warnings + warnings
    if errors:
        raise StepFailed(
            "preflight",
            "stripes not healthy: "
            + "; ".join(errors)
            + "; nothing was touched; fix them and rerun",
        )
    checks.append("every stripe served by one ACTIVE")

    tc_configs = check_tc_configs(inventory, pool)  # the tc-config is the truth
    checks.append("every tc-config agrees with the inventory")
    warnings += tc_configs.warnings

    plan = make_plan(  # raises PlanRefused
        inventory, view.node_states(), options, persistent=tc_configs.persistent
    )
    checks.append(f"plan: {len(plan.todo())} change step(s) to do")

    warnings += [
        f"region {name}: management certificates are NOT checked "
        "(management_security.verify: false; the scripts get -k)"
        for name in inventory.unverified_regions()
    ]
    for line in checks + warnings:
        log.info("preflight: %s", line)
    return PreflightResult(view=view, plan=plan, warnings=warnings, checks=checks)
