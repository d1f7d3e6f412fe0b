"""The run's report: version matrix before and after, each step's duration, what was skipped
and why. Plain text that reads well in a terminal and as Markdown in the Dagster UI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from bm_upgrade.inventory import Inventory
from bm_upgrade.procedure.observe import ClusterView


class _Settings(Protocol):
    @property
    def dry_run(self) -> bool: ...

    @property
    def before(self) -> Mapping[str, str | None]: ...

    @property
    def options(self) -> Any: ...


@dataclass(frozen=True)
class MatrixRow:
    kind: str
    where: str
    node: str
    before: str | None
    after: str | None
    state: str


@dataclass(frozen=True)
class Report:
    """The run's report. ``rows``: the servers, then the clients, then the orchestrators,
    each in inventory order."""

    cluster: str
    target: str
    dry_run: bool
    run_id: str
    rows: list[MatrixRow]
    steps: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)
    cleanup: dict[str, str] = field(default_factory=dict)
    """Host -> what became of its staging folder (after a successful run)."""

    @classmethod
    def build(
        cls,
        inventory: Inventory,
        settings: _Settings,
        steps: Sequence[Mapping[str, Any]],
        after: ClusterView,
        run_id: str = "",
    ) -> Report:
        target = settings.options.target_version
        versions = after.versions()
        # kind, where, node, state: the before and after versions are looked up by node.
        looks: list[tuple[str, str, str, str]] = []
        for region, stripe, server in inventory.servers():
            seen = after.servers.get(server.name)
            state = (
                seen.status.state
                if seen and seen.status.reachable
                else ("starting" if seen and seen.running else "down")
            )
            looks.append(("server", f"{region.name}/{stripe.name}", server.name, state))
        for region, client in inventory.clients():
            c = after.clients.get(client.name)
            running = (
                "unknown"
                if c is None or c.running is None
                else ("running" if c.running else "stopped")
            )
            looks.append(("client", region.name, client.name, running))
        for region, orch in inventory.orchestrators():
            o = after.orchestrators.get(orch.name)
            state = (o.state if o and o.state else "down") + f" ({orch.role})"
            looks.append(("orchestrator", region.name, orch.name, state))
        rows = [
            MatrixRow(kind, where, node, settings.before.get(node), versions.get(node), state)
            for kind, where, node, state in looks
        ]
        problems = [
            f"{r.node} runs {r.after or 'unknown'}, not {target}"
            for r in rows
            if r.after != target and not settings.dry_run
        ]
        problems += [f"{host} unreachable" for host in after.unreachable]
        return cls(
            inventory.cluster,
            target,
            settings.dry_run,
            run_id,
            rows,
            [dict(s) for s in steps],
            problems,
        )

    @property
    def ok(self) -> bool:
        return not self.problems

    def with_cleanup(self, cleanup: Mapping[str, str]) -> Report:
        return replace(self, cleanup=dict(cleanup))


def render_report(report: Report) -> str:
    """The report as Markdown-friendly plain text."""
    title = "Dry run" if report.dry_run else "Upgrade"
    lines = [f"# {title} of cluster {report.cluster} to {report.target}"]
    if report.run_id:
        lines.append(f"run {report.run_id}")
    lines += [
        "",
        "## Versions",
        "",
        "| kind | where | node | before | after | state |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.kind} | {r.where} | {r.node} | {r.before or '?'} | {r.after or '?'} | {r.state} |"
        for r in report.rows
    ]
    changed = [s for s in report.steps if not s.get("skipped")]
    skipped = [s for s in report.steps if s.get("skipped")]
    total = sum(float(s.get("duration_s", 0.0)) for s in changed)
    lines += [
        "",
        f"## Steps ({len(changed)} done, {len(skipped)} skipped, {total:.1f} s of step time)",
        "",
        "| node | action | what it did | seconds |",
        "|---|---|---|---|",
    ]
    for s in report.steps:
        if s.get("skipped"):
            what = f"skipped: {s.get('reason', '')}"
        else:
            what = "; ".join(s.get("did", [])) or "-"
        lines.append(
            f"| {s.get('node')} | {s.get('action')} | {what.replace('|', '/')} | "
            f"{float(s.get('duration_s', 0.0)):.1f} |"
        )
    backups = [d for s in report.steps if s.get("action") == "backup-data" for d in s["did"]]
    if backups:  # procedure/backup.py: where each stripe's data was backed up
        lines += ["", "## Backups", ""] + [f"- {what}" for what in backups]
    lines += ["", "## Result", ""]
    if report.dry_run:
        lines.append("Dry run: nothing was changed.")
    elif report.ok:
        lines.append(f"Every node runs {report.target}.")
    else:
        lines += [f"- {p}" for p in report.problems]
    if report.cleanup:
        lines += ["", "## Staging", ""]
        lines += [f"- {host}: {what}" for host, what in report.cleanup.items()]
    return "\n".join(lines)
