"""The evidence report (procedure/evidence.py, report_render.py) and the version matrix's
checks (procedure/version_matrix.py), from plain data: every section in the Markdown and in
the HTML, every value escaped in the HTML and kept to its table cell in the Markdown, the
approval or its absence, a failover measured from the run's looks or from its records, a
failed run's reason first, and the checks on a healthy, a mixed and a standby-less look."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from bm_upgrade.inventory import Inventory
from bm_upgrade.plan import PlanOptions
from bm_upgrade.probes import ClientStatus, ServerStatus
from bm_upgrade.procedure.evidence import (
    SECTIONS,
    ChangeSeen,
    Evidence,
    HostCommand,
    RunHistory,
    StepTime,
)
from bm_upgrade.procedure.observe import ClusterView
from bm_upgrade.procedure.report_render import COMMAND_CHARS, to_html, to_markdown
from bm_upgrade.procedure.seen import Seen
from bm_upgrade.procedure.version_matrix import checks, matrix
from tests.unit.inventories import minimal

ACTIVE, STANDBY = "ACTIVE-COORDINATOR", "PASSIVE-STANDBY"
A, B = "tsa-a1", "tsa-a2"
EVIL = "<script>alert('x')</script> | `a` & b"


def inventory() -> Inventory:
    return Inventory.model_validate(minimal())


def view(states: dict[str, tuple[str, str]], client: str | None = "4.2.1") -> ClusterView:
    inv = inventory()
    seen = ClusterView(inv)
    for _, _, server in inv.servers():
        state, version = states[server.name]
        status = ServerStatus(server.name, server.host, "OK", "unknown", state, version, True)
        seen.servers[server.name] = Seen.answering(server, status)
    for _, c in inv.clients():
        seen.clients[c.name] = ClientStatus(c.name, c.host, True, client)
    return seen


def history(**changes: object) -> RunHistory:
    base = RunHistory(
        run_id="0123456789abcdef",
        runs=["0123456789abcdef"],
        job="upgrade_test",
        status="SUCCESS",
        started=1_700_000_000.0,
        ended=1_700_000_030.0,
        target="4.2.1",
        dry_run=False,
        before={A: "4.2.0", B: "4.2.0", "app1": "4.2.0"},
        options=PlanOptions.from_inventory(inventory()),
        plan=f"Upgrade plan for cluster test -> 4.2.1\n  1. stop {B} ```{EVIL}",
        steps=[
            StepTime("preflight", "SUCCESS", 1_700_000_000.0, 1_700_000_001.5, "0123456789abcdef"),
            StepTime("failover_east_stripe1", "SUCCESS", 1_700_000_010.0, 1_700_000_020.0, "x"),
        ],
        records=[
            {"node": B, "action": "stop", "did": ["ran the stop script"], "duration_s": 1.0},
            {
                "node": A,
                "action": "failover-stop",
                "did": [f"confirmed {B} {STANDBY}"],
                "duration_s": 2.0,
                "started": 1_700_000_010.0,
            },
            {
                "node": B,
                "action": "wait-failover",
                "did": [f"confirmed {B} {ACTIVE} after 1.3 s"],
                "duration_s": 1.3,
                "started": 1_700_000_012.0,
            },
            {"node": "app1", "action": "upgrade", "skipped": True, "reason": EVIL},
        ],
        commands=[
            HostCommand("10.0.0.1", "failover_east_stripe1", f"echo {EVIL}", 3, 1, 1.0),
            HostCommand("10.0.0.2", "upgrade_mirrors_east_stripe1", "true", 1, 0, 2.0),
        ],
        changes=[
            ChangeSeen(
                1_700_000_011.0,
                A,
                "east/stripe1",
                ACTIVE,
                "stopped",
                f"{A}: {ACTIVE} 4.2.0 -> stopped 4.2.0",
                "failover_east_stripe1",
                "0123456789abcdef",
            ),
            ChangeSeen(
                1_700_000_011.75,
                B,
                "east/stripe1",
                STANDBY,
                ACTIVE,
                f"{B}: {STANDBY} 4.2.1 -> {ACTIVE} 4.2.1",
                "failover_east_stripe1",
                "0123456789abcdef",
            ),
        ],
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def report(**changes: object) -> Evidence:
    after = view({A: (STANDBY, "4.2.1"), B: (ACTIVE, "4.2.1")})
    return Evidence.build("test", history(**changes), inventory(), after, now=1_700_000_040.0)


class Texts(HTMLParser):
    """The page's text, its tags, and whether anything would run or load."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.headings: list[str] = []
        self._in: str = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in = tag

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in in {"h1", "h2", "h3"}:
            self.headings.append(data)


def test_every_section_is_in_the_markdown_and_in_the_html() -> None:
    evidence = report()
    md, page = to_markdown(evidence), to_html(evidence)
    assert md.startswith("# Upgrade of cluster test to 4.2.1: succeeded\n")
    for title in SECTIONS:
        assert f"\n## {title}\n" in md, title
    assert "\n### 10.0.0.1\n" in md and "\n### 10.0.0.2\n" in md
    parsed = Texts()
    parsed.feed(page)
    assert parsed.headings[0] == evidence.title
    assert [h for h in parsed.headings if h in SECTIONS] == list(SECTIONS)
    assert "Every node runs 4.2.1." in md and "No approval gate: the run had no canary." in md
    assert "| failover_east_stripe1 | SUCCESS | 2023-11-14T22:13:30Z | 10.0 |" in md
    assert "| east/stripe1 | tsa-a1 | tsa-a2 | 0.75 | the run's looks |" in md
    assert "| server | east/stripe1 | tsa-a1 | 4.2.0 | 4.2.1 | PASSIVE-STANDBY |" in md
    assert "- one_version: passed: every node runs 4.2.1" in md


def test_the_html_escapes_every_value_and_loads_nothing() -> None:
    page = to_html(report())
    parsed = Texts()
    parsed.feed(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags and "link" not in parsed.tags
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert any(EVIL in text for text in parsed.text)  # shown as text, whole
    assert "default-src 'none'" in page and "http" not in page.replace("http-equiv", "")


def test_the_markdown_keeps_a_value_in_its_cell_and_its_plan_in_its_fence() -> None:
    md = to_markdown(report())
    line = next(line for line in md.splitlines() if "skipped:" in line)
    cells = re.split(r"(?<!\\)\|", line)[1:-1]
    assert [c.strip() for c in cells] == [
        "app1",
        "upgrade",
        f"skipped: {EVIL}".replace("|", "\\|"),
        "0.0",
    ]
    fence = re.search(r"^(`{4,})$", md, re.MULTILINE)
    assert fence is not None  # longer than the plan's own ```


def test_an_approval_and_a_failed_run_come_first() -> None:
    tags = {
        "bm_upgrade/approval": "approved",
        "bm_upgrade/approval_by": "alice",
        "bm_upgrade/approval_at": "2026-01-05T10:00:00Z",
        "bm_upgrade/approval_note": "canary fine",
    }
    failed = report(
        status="FAILURE",
        approval_tags=tags,
        failure=("upgrade_mirrors_east_stripe1", "tsa-a2 did not sync within 3 s; rerun"),
    )
    md = to_markdown(failed)
    assert md.startswith("# Upgrade of cluster test to 4.2.1: failed\n")
    outcome = md.split("## Outcome\n", 1)[1].split("##", 1)[0]
    assert "- step upgrade_mirrors_east_stripe1 failed: tsa-a2 did not sync" in outcome
    assert "| approved | alice | 2026-01-05T10:00:00Z | canary fine |" in md


def test_preflight_that_did_not_pass_reports_no_plan_and_the_look_as_before() -> None:
    md = to_markdown(
        report(before=None, options=None, plan="", status="FAILURE", failure=(None, "no claim"))
    )
    assert "Preflight did not pass: no plan was made." in md
    assert "nothing was changed: the versions before are those of the look after" in md
    assert "| server | east/stripe1 | tsa-a1 | 4.2.1 | 4.2.1 |" in md


def test_a_failover_without_looks_is_measured_by_its_takeover_wait() -> None:
    md = to_markdown(report(changes=[]))
    assert "| east/stripe1 | tsa-a1 | tsa-a2 | 1.30 | the takeover wait's record |" in md
    assert "The run saw no server change its state." in md


def test_the_checks_pass_on_one_version_and_fail_on_a_mix_or_without_standby() -> None:
    healthy = view({A: (ACTIVE, "4.2.1"), B: (STANDBY, "4.2.1")})
    assert [(c.name, c.passed) for c in checks(healthy)] == [
        ("one_version", True),
        ("standby_per_stripe", True),
    ]
    assert [(r.kind, r.node, r.version) for r in matrix(healthy)] == [
        ("server", A, "4.2.1"),
        ("server", B, "4.2.1"),
        ("client", "app1", "4.2.1"),
    ]
    mixed = view({A: (ACTIVE, "4.2.0"), B: ("PASSIVE-UNINITIALIZED", "4.2.1")}, client="4.2.0")
    versions, standby = checks(mixed, upgrading=True)
    assert not versions.passed and versions.warn_only
    assert versions.summary == (
        f"mixed versions: 4.2.0 on {A}, app1; 4.2.1 on {B} (an upgrade run is going)"
    )
    assert not standby.passed and not standby.warn_only
    assert standby.summary.startswith("without a PASSIVE-STANDBY mirror: east/stripe1 (")


def test_a_long_command_is_cut_in_the_markdown_and_whole_in_the_html() -> None:
    long = "printf '%s' " + "x" * 600
    evidence = report(commands=[HostCommand("10.0.0.1", "preflight", long, 1, 0, 1.0)])
    md, page = to_markdown(evidence), to_html(evidence)
    assert f"| preflight | {long[:COMMAND_CHARS]} … | 1 | 0 |" in md
    assert long not in md and f'<td class="cmd">{html.escape(long)}</td>' in page
