"""Preflight: every check that can fail early, before anything is touched anywhere.

Safety rule 1: nothing is stopped, removed or overwritten until preflight has passed
everywhere. It checks, in this order (cheapest and most likely to fail first): the
maintenance window, the license key, every host reachable, every node probed, every stripe
served by one ACTIVE (mirrors PASSIVE-STANDBY, or on their way back from an earlier run), the
plan's refusals (downtime, data loss, not a maintenance upgrade), and disk room for the kit.
It returns the cluster as seen, which the report uses as the "before" picture.
"""

from __future__ import annotations

import datetime
import http.client
import logging
import posixpath
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory, Kit
from bm_upgrade.license import check_license
from bm_upgrade.plan import Plan, PlanOptions, make_plan
from bm_upgrade.procedure.kit import kit_cache_dir, kit_file_name, staging_targets
from bm_upgrade.procedure.observe import ClusterView, observe_cluster
from bm_upgrade.remote import Connection, HostPool, quote

log = logging.getLogger(__name__)

DISK_FACTOR = 3
"""Room a host needs, in kit sizes: the staged tarball, the unpacked kit, the previous kit."""


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
        raise StepFailed("preflight", f"the maintenance window ended at {window_end.isoformat()}"
                         " before the run started; nothing was touched; run it in the next "
                         "window, or by hand without window_end")
    return f"inside the maintenance window until {window_end.isoformat()}"


def kit_size_hint(kit: Kit, cache_dir: Path | None = None) -> int | None:
    """The kit's size in bytes if it can be known without downloading it."""
    cached = kit_cache_dir(cache_dir) / kit_file_name(kit)
    if cached.exists():
        return cached.stat().st_size
    parsed = urllib.parse.urlparse(kit.url)
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
        return path.stat().st_size if path.exists() else None
    try:
        request = urllib.request.Request(kit.url, method="HEAD")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            length = response.headers.get("Content-Length")
    except (OSError, http.client.HTTPException):
        return None
    return int(length) if length and length.isdigit() else None


def check_disk(inventory: Inventory, pool: HostPool, kit_bytes: int | None) -> list[str]:
    """Every host that lacks room for the kit (empty: all have room); hosts side by side."""
    if not kit_bytes:
        return []
    need_kb = DISK_FACTOR * kit_bytes // 1024 + 1
    parents = {host: posixpath.dirname(folder.rstrip("/")) or "/"
               for host, folder in staging_targets(inventory).items()}

    def free_kb(conn: Connection) -> tuple[int | None, str]:
        result = conn.run(f"df -Pk -- {quote(parents[conn.host])} | tail -n 1", timeout=30.0,
                          check=False)
        fields = result.stdout.split()
        if result.exit_code != 0 or len(fields) < 4 or not fields[3].isdigit():
            return None, result.stderr.strip()
        return int(fields[3]), ""

    looked = pool.fan_out(parents, free_kb)
    short: list[str] = []
    for host, parent in parents.items():
        if host in looked.errors:
            short.append(f"{host}: cannot read free space of {parent} ({looked.errors[host]})")
            continue
        free, why = looked.results[host]
        if free is None:
            short.append(f"{host}: cannot read free space of {parent} ({why})")
        elif free < need_kb:
            short.append(f"{host}: {parent} has {free // 1024} MiB free, the kit "
                         f"needs {need_kb // 1024} MiB")
    return short


def stripe_problems(inventory: Inventory, view: ClusterView) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the stripes.

    A stripe must be served by exactly one ACTIVE. A mirror that is down or still syncing is
    an error, unless it already runs the target (an earlier run was interrupted there: the
    plan brings it back first).
    """
    errors: list[str] = []
    warnings: list[str] = []
    for region in inventory.regions:
        for stripe in region.stripes:
            key = f"{region.name}/{stripe.name}"
            health = view.health.get(key)
            if health is None:
                continue  # its hosts are unreachable: reported as such
            split_brain = any("split brain" in p for p in health.problems)
            if health.active is None or split_brain:
                errors.extend(f"{key}: {p}" for p in health.problems)
                continue
            for server in stripe.servers:
                seen = view.servers[server.name]
                state = seen.node_state
                if server.name == health.active or server.name in health.standbys:
                    continue
                if state.version == inventory.target_version:
                    warnings.append(f"{key}: {seen.describe()}: an earlier run stopped there; "
                                    "it is brought back first")
                else:
                    errors.append(f"{key}: {seen.describe()}, not PASSIVE-STANDBY; let it "
                                  "sync (or start it) before upgrading")
    return errors, warnings


def preflight(inventory: Inventory, pool: HostPool, options: PlanOptions, *,
              window_end: datetime.datetime | None = None,
              now: datetime.datetime | None = None) -> PreflightResult:
    """Run every check; raise on the first group that fails, having touched nothing.

    Raises:
        StepFailed: window closed, a host unreachable, a stripe not healthy, no disk room.
        LicenseError: the key does not fit the target or the window.
        PlanRefused: downtime, data loss or not a maintenance upgrade, without consent.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    checks = [check_window(window_end, now)]
    valid_through = (window_end or now).date()
    lic = check_license(inventory.license_file, options.target_version, inventory.has_wan(),
                        valid_through)
    checks.append(f"license {lic.path} covers {options.target_version} through "
                  f"{valid_through.isoformat()}")

    view = observe_cluster(inventory, pool, reach_all=True)
    if view.unreachable:
        hosts = "; ".join(f"{h}: {why}" for h, why in view.unreachable.items())
        raise StepFailed("preflight", f"{len(view.unreachable)} host(s) cannot be reached "
                         f"({hosts}); nothing was touched; fix SSH access and rerun")
    checks.append(f"all {len(inventory.hosts())} hosts reachable over SSH")

    errors, warnings = stripe_problems(inventory, view)
    if errors:
        raise StepFailed("preflight", "stripes not healthy: " + "; ".join(errors)
                         + "; nothing was touched; fix them and rerun")
    checks.append("every stripe served by one ACTIVE")

    plan = make_plan(inventory, view.node_states(), options)  # raises PlanRefused
    checks.append(f"plan: {len(plan.todo())} change step(s) to do")

    kit = inventory.kit_for(options.target_version)
    short = check_disk(inventory, pool, kit_size_hint(kit) if kit else None)
    if short:
        raise StepFailed("preflight", "not enough disk room for the kit: " + "; ".join(short)
                         + "; free space there (old kits, dirty-objectdb backups) and rerun")
    checks.append("disk room for the kit on every host")
    for line in checks + warnings:
        log.info("preflight: %s", line)
    return PreflightResult(view=view, plan=plan, warnings=warnings, checks=checks)
