"""The evidence report of one run, as a change-advisory board reads it: the outcome, the
approvals, the plan, the version matrix before and after, each step with its duration, each
failover's duration, the state changes the run saw, the commands run per host.

Plain data in, :class:`Section` lists out: :mod:`bm_upgrade.procedure.report_render` turns the
sections into Markdown and into a self-contained HTML page, so both always hold the same
sections (:data:`SECTIONS`). What the run left in Dagster's event log is read into a
:class:`RunHistory` by :mod:`bm_upgrade.defs.report_asset`; the look at the cluster after the
run is a :class:`~bm_upgrade.procedure.observe.ClusterView`.

A failover's duration is the time from the first look that saw the stripe's ACTIVE leave its
role (stopped) to the first look that saw another server of the stripe ACTIVE, from the state
changes the run recorded (looks are a fraction of a second apart while a step waits); a run
that recorded none (made by an older bm_upgrade) gives the takeover wait of its step records.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bm_upgrade.inventory import Inventory
from bm_upgrade.plan import ACTIVE, PlanOptions
from bm_upgrade.procedure.observe import ClusterView
from bm_upgrade.procedure.report import MatrixRow, Report
from bm_upgrade.procedure.version_matrix import MatrixCheck, checks

SECTIONS = (
    "Outcome",
    "Approvals",
    "Plan",
    "Version matrix",
    "Steps",
    "Actions",
    "Failovers",
    "Status changes",
    "Commands per host",
)
"""The sections every report has, in order (a report may add Backups and Staging)."""

STOP_ACTIONS = ("failover-stop", "failback-stop")


@dataclass(frozen=True)
class Approval:
    """The canary gate's decision, from the run's tags."""

    decision: str
    by: str
    at: str
    note: str


@dataclass(frozen=True)
class StepTime:
    """One step of the job as Dagster ran it: ``status`` SUCCESS, FAILURE, SKIPPED or
    IN_PROGRESS; unix times; ``run_id`` the run that executed it."""

    key: str
    status: str
    started: float | None
    ended: float | None
    run_id: str

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return max(0.0, self.ended - self.started)


@dataclass(frozen=True)
class HostCommand:
    """A command a step ran on a host, ``count`` times (``failed`` of them non-zero)."""

    host: str
    step: str
    command: str
    count: int
    failed: int
    first: float


@dataclass(frozen=True)
class ChangeSeen:
    """A state change a run recorded (an observation of the cluster's sync_status asset)."""

    at: float
    node: str
    stripe: str
    before_state: str
    after_state: str
    line: str
    step: str
    run_id: str


@dataclass(frozen=True)
class Failover:
    """One stripe's ACTIVE handing its role over: ``seconds`` with no ACTIVE (None: not
    measured), ``how`` it was measured."""

    stripe: str
    stopped: str
    took_over: str | None
    seconds: float | None
    how: str


@dataclass
class RunHistory:
    """What Dagster keeps of a run and of the runs it re-executes, as plain data.

    Attributes:
        run_id: the run reported on.
        runs: its chain, the first run first and this one last.
        job: the job's name.
        status: the run's status (SUCCESS, FAILURE, CANCELED, STARTED while the report step
            of a successful run writes it).
        started, ended: unix times of the chain's first start and this run's end.
        target: the version the run installs. dry_run: it changed nothing.
        approval_tags: the approval tags, this run's or else the nearest ancestor's.
        before: node -> version as preflight saw it (None: preflight did not pass).
        options: the run's options (None when preflight did not pass).
        plan: the plan preflight made, rendered (empty when it did not pass).
        steps: each step of the job, from the run of the chain that executed it last.
        records: the procedure's step records, in step order.
        commands: what each step ran on each host.
        changes: the state changes the runs recorded.
        failure: the failed step (None: the run failed before any) and its one sentence.
    """

    run_id: str
    runs: list[str]
    job: str
    status: str
    started: float | None
    ended: float | None
    target: str
    dry_run: bool
    approval_tags: dict[str, str] = field(default_factory=dict)
    before: dict[str, str | None] | None = None
    options: PlanOptions | None = None
    plan: str = ""
    steps: list[StepTime] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    commands: list[HostCommand] = field(default_factory=list)
    changes: list[ChangeSeen] = field(default_factory=list)
    failure: tuple[str | None, str] | None = None


APPROVAL_TAGS = {
    "decision": "bm_upgrade/approval",
    "by": "bm_upgrade/approval_by",
    "at": "bm_upgrade/approval_at",
    "note": "bm_upgrade/approval_note",
}
"""The run tags the canary gate writes (defs/approval.py)."""


def approval_of(tags: Mapping[str, str]) -> Approval | None:
    """The gate's decision in ``tags``, or None when the run had no gate decided."""
    decision = tags.get(APPROVAL_TAGS["decision"])
    if not decision:
        return None
    return Approval(
        decision,
        tags.get(APPROVAL_TAGS["by"], ""),
        tags.get(APPROVAL_TAGS["at"], ""),
        tags.get(APPROVAL_TAGS["note"], ""),
    )


@dataclass(frozen=True)
class _Chosen:
    """What :meth:`Report.build` reads of a run's settings."""

    dry_run: bool
    before: Mapping[str, str | None]
    options: Any


@dataclass(frozen=True)
class _Target:
    target_version: str


def failovers(
    records: Sequence[Mapping[str, Any]],
    changes: Sequence[ChangeSeen],
    stripes: Mapping[str, str],
) -> list[Failover]:
    """Each ACTIVE stopped for a failover or a failback, and how long its stripe had no
    ACTIVE (see the module); ``stripes`` maps a server to its ``region/stripe``."""
    found: list[Failover] = []
    ordered = sorted(changes, key=lambda c: c.at)
    for index, rec in enumerate(records):
        if rec.get("action") not in STOP_ACTIONS or rec.get("skipped"):
            continue
        node = str(rec.get("node"))
        stripe = stripes.get(node, "")
        since = float(rec.get("started", 0.0))
        left = next(
            (
                c
                for c in ordered
                if c.node == node
                and c.at >= since
                and c.before_state == ACTIVE
                and c.after_state != ACTIVE
            ),
            None,
        )
        heir = (
            next(
                (
                    c
                    for c in ordered
                    if c.node != node
                    and stripes.get(c.node) == stripe
                    and c.after_state == ACTIVE
                    and c.at >= since
                ),
                None,
            )
            if left is not None
            else None
        )
        if left is not None and heir is not None:
            seconds = max(0.0, heir.at - left.at)
            found.append(Failover(stripe, node, heir.node, seconds, "the run's looks"))
            continue
        wait = next(
            (
                r
                for r in records[index + 1 :]
                if r.get("action") == "wait-failover" and stripes.get(str(r.get("node"))) == stripe
            ),
            None,
        )
        if wait is None:
            found.append(Failover(stripe, node, None, None, "not measured (no takeover seen)"))
            continue
        said = " ".join(wait.get("did", []))
        heir_name = next((n for n, s in stripes.items() if s == stripe and n in said), None)
        seconds = float(wait.get("duration_s", 0.0))
        found.append(Failover(stripe, node, heir_name, seconds, "the takeover wait's record"))
    return found


@dataclass
class Evidence:
    """One run's evidence report (see the module)."""

    cluster: str
    history: RunHistory
    rows: list[MatrixRow]
    matrix_note: str
    checks: list[MatrixCheck]
    failovers: list[Failover]
    problems: list[str]
    cleanup: dict[str, str] = field(default_factory=dict)
    generated: float = 0.0

    @classmethod
    def build(
        cls,
        cluster: str,
        history: RunHistory,
        inventory: Inventory | None,
        after: ClusterView | None,
        *,
        look_error: str | None = None,
        cleanup: Mapping[str, str] | None = None,
        now: float,
    ) -> Evidence:
        """The report of ``history``, with ``after`` the look at the cluster now (None: it
        could not be looked at, ``look_error`` says why; ``inventory`` None: its file could
        not be read either, and the matrix lists the nodes preflight saw)."""
        note = ""
        before = history.before
        if before is None:
            # Preflight did not pass, so nothing was touched (docs/safety.md rule 1).
            before = after.versions() if after is not None else {}
            note = (
                "Preflight did not pass, so nothing was changed: the versions before are "
                "those of the look after the run."
            )
        if after is None:
            note = f"The cluster could not be looked at after the run: {look_error}. " + note
        problems: list[str] = []
        if inventory is None:
            rows = [MatrixRow("node", "-", n, v, None, "not looked at") for n, v in before.items()]
            stripes = {c.node: c.stripe for c in history.changes}
        else:
            view = after if after is not None else ClusterView(inventory)
            options = history.options or _Target(history.target)
            chosen = _Chosen(history.dry_run, before, options)
            report = Report.build(inventory, chosen, [], view, history.run_id)
            rows = report.rows
            stripes = {s.name: f"{r.name}/{st.name}" for r, st, s in inventory.servers()}
            problems = list(report.problems) if after is not None else []
        if history.failure is not None:
            step, reason = history.failure
            problems.insert(0, f"step {step} failed: {reason}" if step else reason)
        return cls(
            cluster,
            history,
            rows,
            note.strip(),
            checks(after) if after is not None else [],
            failovers(history.records, history.changes, stripes),
            problems,
            dict(cleanup or {}),
            now,
        )

    @property
    def outcome(self) -> str:
        """``succeeded``, ``dry run``, ``failed`` or ``canceled``."""
        status = self.history.status
        if status == "CANCELED":
            return "canceled"
        if status == "FAILURE" or self.history.failure is not None:
            return "failed"
        if self.history.dry_run:
            return "dry run"
        return "succeeded" if not self.problems else "failed"

    @property
    def title(self) -> str:
        h = self.history
        kind = "Dry run" if h.dry_run else "Upgrade"
        return f"{kind} of cluster {self.cluster} to {h.target}: {self.outcome}"

    def sections(self) -> list[Section]:
        """The report, section by section (:data:`SECTIONS`, then Backups and Staging when
        there are any)."""
        return [
            self._summary(),
            self._outcome(),
            self._approvals(),
            self._plan(),
            self._matrix(),
            self._steps(),
            self._actions(),
            self._failovers(),
            self._changes(),
            *self._commands(),
            *self._extras(),
        ]

    def _summary(self) -> Section:
        h = self.history
        wall = h.ended - h.started if h.started is not None and h.ended is not None else None
        lines = [
            f"Run {h.run_id} of job {h.job}",
            "Re-executes: " + ", ".join(h.runs[:-1]) if len(h.runs) > 1 else "",
            f"Started {utc(h.started)}, ended {utc(h.ended)}"
            + (f" ({wall:.1f} s)" if wall is not None else ""),
            f"Report made {utc(self.generated)}",
        ]
        return Section("", text=[line for line in lines if line])

    def _outcome(self) -> Section:
        h = self.history
        if self.outcome == "succeeded":
            text = [f"Every node runs {h.target}."]
        elif self.outcome == "dry run":
            text = ["Dry run: nothing was changed."]
        elif self.outcome == "canceled":
            text = ["The run was canceled (terminated) before it ended."]
        else:
            text = ["The run failed."]
        return Section("Outcome", text=text, bullets=list(self.problems))

    def _approvals(self) -> Section:
        approval = approval_of(self.history.approval_tags)
        if approval is None:
            return Section("Approvals", text=["No approval gate: the run had no canary."])
        table = Table(
            ("decision", "by", "at", "note"),
            [(approval.decision, approval.by, approval.at, approval.note or "-")],
        )
        return Section("Approvals", table=table)

    def _plan(self) -> Section:
        if not self.history.plan:
            return Section("Plan", text=["Preflight did not pass: no plan was made."])
        return Section("Plan", text=["The plan preflight made:"], pre=self.history.plan)

    def _matrix(self) -> Section:
        table = Table(
            ("kind", "where", "node", "before", "after", "state"),
            [
                (r.kind, r.where, r.node, r.before or "?", r.after or "?", r.state)
                for r in self.rows
            ],
        )
        bullets = [
            f"{c.name}: {'passed' if c.passed else 'FAILED'}: {c.summary}" for c in self.checks
        ]
        text = [self.matrix_note] if self.matrix_note else []
        text.append("After: the look at the cluster when this report was made.")
        return Section("Version matrix", text=text, table=table, bullets=bullets)

    def _steps(self) -> Section:
        steps = self.history.steps
        if not steps:
            return Section("Steps", text=["No step ran."])
        many = len(self.history.runs) > 1  # the run that executed each step, then
        rows: list[tuple[str, ...]] = [
            (
                s.key,
                s.status,
                utc(s.started),
                f"{s.seconds:.1f}" if s.seconds is not None else "-",
                *([s.run_id[:8]] if many else []),
            )
            for s in steps
        ]
        headers = ("step", "status", "started", "seconds", *(["run"] if many else []))
        return Section("Steps", table=Table(headers, rows))

    def _actions(self) -> Section:
        records = self.history.records
        if not records:
            return Section("Actions", text=["No server, client or orchestrator was acted on."])
        rows = []
        for r in records:
            what = (
                f"skipped: {r.get('reason', '')}"
                if r.get("skipped")
                else "; ".join(r.get("did", [])) or "-"
            )
            rows.append(
                (
                    str(r.get("node")),
                    str(r.get("action")),
                    what,
                    f"{float(r.get('duration_s', 0.0)):.1f}",
                )
            )
        return Section("Actions", table=Table(("node", "action", "what it did", "seconds"), rows))

    def _failovers(self) -> Section:
        if not self.failovers:
            return Section("Failovers", text=["No ACTIVE was stopped."])
        rows = [
            (
                f.stripe,
                f.stopped,
                f.took_over or "-",
                f"{f.seconds:.2f}" if f.seconds is not None else "-",
                f.how,
            )
            for f in self.failovers
        ]
        headers = ("stripe", "ACTIVE stopped", "took over", "seconds without ACTIVE", "from")
        return Section("Failovers", table=Table(headers, rows))

    def _changes(self) -> Section:
        changes = self.history.changes
        if not changes:
            return Section("Status changes", text=["The run saw no server change its state."])
        rows = [(utc(c.at, millis=True), c.line, c.step) for c in changes]
        return Section(
            "Status changes",
            text=["Each change of a server's state or version the run's steps saw."],
            table=Table(("time", "change", "step"), rows),
        )

    def _commands(self) -> list[Section]:
        commands = self.history.commands
        if not commands:
            return [Section("Commands per host", text=["No command ran on any host."])]
        hosts: dict[str, list[HostCommand]] = {}
        for c in commands:
            hosts.setdefault(c.host, []).append(c)
        head = Section(
            "Commands per host",
            text=[
                "Each command line as run, once per step with how many times it ran and "
                "failed (a wait repeats its probe); secrets are fed on standard input and "
                "never appear here. The Markdown shows the start of a long line, the HTML "
                "page every line whole."
            ],
        )
        return [head] + [
            Section(
                f"{host}",
                level=3,
                table=Table(
                    ("step", "command", "times", "failed"),
                    [(c.step, c.command, str(c.count), str(c.failed)) for c in runs],
                ),
            )
            for host, runs in hosts.items()
        ]

    def _extras(self) -> list[Section]:
        extras = []
        backups = [
            what
            for r in self.history.records
            if r.get("action") == "backup-data"
            for what in r.get("did", [])
        ]
        if backups:
            extras.append(Section("Backups", bullets=backups))
        if self.cleanup:
            bullets = [f"{host}: {what}" for host, what in self.cleanup.items()]
            extras.append(Section("Staging", bullets=bullets))
        return extras


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


@dataclass(frozen=True)
class Section:
    """One section: its paragraphs, bullets, table and preformatted text, in that order.
    ``title`` empty: the report's heading block."""

    title: str
    level: int = 2
    text: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    table: Table | None = None
    pre: str | None = None


def utc(when: float | None, *, millis: bool = False) -> str:
    """Unix seconds as ISO 8601 UTC (``-`` when unknown)."""
    if when is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(when, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds" if millis else "seconds").replace("+00:00", "Z")
