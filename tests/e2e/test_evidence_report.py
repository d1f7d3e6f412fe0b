"""Every run's evidence report (issue 17, items 4 and 6), through Dagster's real execution APIs
against one `small` sandbox shared by the module's tests, in file order:

1. a successful upgrade: its report step materializes ``bm_upgrade/<cluster>/upgrade_report``
   with every section, an HTML page that parses and matches its sha256, the failover
   measured, the commands each host ran (each one the sandbox's journal saw); the run's own
   observations of ``sync_status`` show the mirror leaving PASSIVE-STANDBY and returning and
   the takeover, each with the run id; the version matrix's checks pass, as evaluated by the
   report and when executed;
2. a failed rollback (the mirror never syncs): the run-failure sensor, evaluated as the
   daemon does, materializes its report (the failed step's sentence and commands, the
   approval on its tags, the state changes the run saw) and judges the mixed cluster's
   version matrix: both checks fail;
   `bm-upgrade report RUN_ID --html FILE` gives the same Markdown and writes the page.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from bm_upgrade.cli import main
from bm_upgrade.defs.launch import run_upgrade
from bm_upgrade.defs.report_asset import build_report_sensors, report_key, stored_report
from bm_upgrade.defs.step_evidence import status_key
from bm_upgrade.defs.version_matrix import build_matrix_checks, matrix_asset, matrix_key
from bm_upgrade.procedure.evidence import SECTIONS
from bm_upgrade.remote.quoting import quote
from bm_upgrade.sandbox import faults
from tests.dagster.asset_checks import latest_check
from tests.e2e.conftest import E2ESandbox, e2e_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("dagster_home")]

ACTIVE, STANDBY = "ACTIVE-COORDINATOR", "PASSIVE-STANDBY"
CHECKS = ("one_version", "standby_per_stripe")
APPROVED = {
    "bm_upgrade/approval": "approved",
    "bm_upgrade/approval_by": "ops-lead",
    "bm_upgrade/approval_at": "2026-01-05T10:00:00Z",
    "bm_upgrade/approval_note": "canary stripe fine",
}


@pytest.fixture(scope="module")
def sandbox(dagster_home: Path) -> Iterator[E2ESandbox]:
    with e2e_sandbox("small") as sb:
        yield sb


def report_of(instance: dg.DagsterInstance, cluster: str, run_id: str) -> dict[str, Any]:
    """The metadata of run ``run_id``'s report materialization, as plain values."""
    for record in instance.fetch_materializations(report_key(cluster), limit=20).records:
        materialization = record.asset_materialization
        assert materialization is not None
        run = materialization.metadata.get("run")
        if isinstance(run, dg.DagsterRunMetadataValue) and run.run_id == run_id:
            return {k: v.value for k, v in materialization.metadata.items()}
    raise AssertionError(f"no report of run {run_id}")


def run_changes(instance: dg.DagsterInstance, cluster: str, run_id: str) -> list[str]:
    """The change lines the run observed on its cluster's sync_status asset, in order."""
    lines = []
    for record in instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION
    ).records:
        event = record.event_log_entry.dagster_event
        if event is None or event.asset_key != status_key(cluster):
            continue
        metadata = event.asset_observation_data.asset_observation.metadata
        assert metadata["run_id"].value == run_id
        lines.append(str(metadata["changes"].value).removeprefix("- "))
    return lines


class Page(HTMLParser):
    """An HTML report's headings, tags, and the command lines of its tables (whole)."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.tags: set[str] = set()
        self.commands: list[str] = []
        self._tag = ""
        self._command = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self._tag = tag
        self._command = ("class", "cmd") in attrs
        if self._command:
            self.commands.append("")

    def handle_data(self, data: str) -> None:
        if self._tag in {"h1", "h2", "h3"} and data.strip():
            self.headings.append(data)
        if self._command:
            self.commands[-1] += data


def test_a_successful_upgrade_materializes_its_evidence_report(sandbox: E2ESandbox) -> None:
    cluster = sandbox.inventory.cluster
    a, b = (s.name for s in sandbox.inventory.regions[0].stripes[0].servers)
    since = time.time()
    # Without the failback (the sandbox's policy asks for it): one takeover is evidence enough.
    outcome = run_upgrade(sandbox.inventory_path, overrides={"failback": False})
    assert outcome.success, outcome.failure
    with dg.DagsterInstance.get() as instance:
        report = report_of(instance, cluster, outcome.run_id)
        stored = stored_report(instance, cluster, outcome.run_id)
        changes = run_changes(instance, cluster, outcome.run_id)
        verdicts = {name: latest_check(instance, matrix_key(cluster), name) for name in CHECKS}
    assert stored is not None
    markdown, page = report["report"], stored["html"]
    assert stored["markdown"] == markdown and len(page.encode()) == report["html_bytes"]
    assert markdown.startswith(f"# Upgrade of cluster {cluster} to 4.2.1: succeeded\n")
    for title in SECTIONS:
        assert f"\n## {title}\n" in markdown, title
    assert "No approval gate" in markdown and "Upgrade plan for cluster" in markdown
    assert f"| server | east/stripe1 | {a} | 4.2.0 | 4.2.1 |" in markdown
    parsed = Page()
    parsed.feed(page)
    assert [h for h in parsed.headings if h in SECTIONS] == list(SECTIONS)
    assert "script" not in parsed.tags
    assert report["html_sha256"] == hashlib.sha256(page.encode()).hexdigest()
    # The failover: a stopped, b took over.
    assert [(f["stopped"], f["took_over"]) for f in report["failovers"]] == [(a, b)]
    assert all(
        0 <= f["seconds"] < 10 and f["from"] == "the run's looks" for f in report["failovers"]
    )
    # Every command the report names ran on its host: the journal saw it there.
    ran = {(e["host"], e["command"]) for e in sandbox.journal(since) if e["event"] == "command"}
    hosts = {s.host for _, _, s in sandbox.inventory.servers()}
    section = markdown.split("## Commands per host\n", 1)[1]
    for host in hosts:
        assert f"\n### {host}\n" in section
    named = [command for command in parsed.commands if "stop-tc-server.sh" in command]
    assert len(named) == 2  # the mirror's stop, the active's
    for command in named:
        # The host saw it under coreutils timeout (remote/quoting.timed), quoted once more.
        assert any(said.endswith(f" sh -c {quote(command)}") for _, said in ran), command
    # The run's own history of the cluster: b leaves PASSIVE-STANDBY and returns, a is
    # stopped and b takes over.
    assert f"{b}: {STANDBY} 4.2.0 -> stopped 4.2.0" in changes, changes
    left = changes.index(f"{b}: {STANDBY} 4.2.0 -> stopped 4.2.0")
    back = next(
        i
        for i, c in enumerate(changes)
        if c.startswith(f"{b}: ") and c.endswith(f"-> {STANDBY} 4.2.1")
    )
    took = changes.index(f"{b}: {STANDBY} 4.2.1 -> {ACTIVE} 4.2.1")
    assert left < back < changes.index(f"{a}: {ACTIVE} 4.2.0 -> stopped 4.2.0") < took
    assert all(v is not None and v.passed for v in verdicts.values()), verdicts
    # Executed from the UI (here through Dagster's materialize), the checks look again.
    inventory = sandbox.inventory
    checks = build_matrix_checks(inventory, str(sandbox.inventory_path))
    with dg.DagsterInstance.get() as instance:
        executed = dg.materialize(
            [matrix_asset(inventory), checks],
            instance=instance,
            selection=dg.AssetSelection.all_asset_checks(),
        )
    assert {(e.check_name, e.passed) for e in executed.get_asset_check_evaluations()} == {
        (name, True) for name in CHECKS
    }


def test_a_failed_run_gets_its_report_from_the_failure_sensor(
    sandbox: E2ESandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = sandbox.inventory.cluster
    # The first test's failover left b ACTIVE and a its mirror.
    a, b = (s.name for s in sandbox.inventory.regions[0].stripes[0].servers)
    on_failure, _ = build_report_sensors({cluster: str(sandbox.inventory_path)})
    with dg.DagsterInstance.get() as instance:
        # The daemon's first tick starts the sensor's cursor at the latest run event.
        first = on_failure.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert not first.asset_events and first.cursor
        with faults.injected(sandbox.directory, "no-sync", a):
            failed = run_upgrade(
                sandbox.inventory_path, target="4.2.0", overrides={"timeouts": {"sync_s": 3.0}}
            )
            assert not failed.success
            # The decision a canary gate records on its run (defs/approval.py), as it does.
            instance.add_run_tags(failed.run_id, APPROVED)
            # While the mirror still cannot sync (cleared, it would, and the look after too).
            tick = on_failure.evaluate_tick(
                dg.build_sensor_context(instance=instance, cursor=first.cursor)
            )
        kinds = [type(e).__name__ for e in tick.asset_events]
        assert kinds[:2] == ["AssetMaterialization", "AssetObservation"], kinds
        for event in tick.asset_events:  # stored as the daemon stores a sensor's events
            instance.report_runless_asset_event(event)
        report = report_of(instance, cluster, failed.run_id)
        stored = stored_report(instance, cluster, failed.run_id)
        changes = run_changes(instance, cluster, failed.run_id)
        verdicts = {name: latest_check(instance, matrix_key(cluster), name) for name in CHECKS}
    markdown = report["report"]
    assert report["outcome"] == "failed" and report["source"] == "run-failure sensor"
    # The command line gives the same report, the HTML page to a file.
    page = tmp_path / "report.html"
    capsys.readouterr()
    assert main(["report", failed.run_id, "--html", str(page)]) == 0
    assert capsys.readouterr().out == markdown
    assert stored is not None and page.read_text(encoding="utf-8") == stored["html"]
    assert markdown.startswith(f"# Upgrade of cluster {cluster} to 4.2.0: failed\n")
    for title in SECTIONS:
        assert f"\n## {title}\n" in markdown, title
    outcome = markdown.split("## Outcome\n", 1)[1].split("\n## ", 1)[0]
    assert "- step upgrade_mirrors_east_stripe1 failed: " in outcome and a in outcome, outcome
    assert "| upgrade_mirrors_east_stripe1 | FAILURE |" in markdown
    assert "| approved | ops-lead | 2026-01-05T10:00:00Z | canary stripe fine |" in markdown
    # The failed step's commands came with its failure: the mirror's stop is there.
    section = markdown.split("## Commands per host\n", 1)[1]
    assert "\n| upgrade_mirrors_east_stripe1 | " in section
    parsed = Page()
    parsed.feed(stored["html"])
    assert any("stop-tc-server.sh" in c and f" -n {a}" in c for c in parsed.commands)
    # The mirror left PASSIVE-STANDBY and did not return.
    assert f"{a}: {STANDBY} 4.2.1 -> stopped 4.2.1" in changes, changes
    last = changes[-1]
    assert last.startswith(f"{a}: ") and STANDBY not in last.split(" -> ")[1], changes
    assert not [c for c in changes if c.startswith(f"{b}: ")]  # the ACTIVE was left alone
    # The look after: a on 4.2.0 out of standby, b on 4.2.1: both checks fail.
    assert verdicts["one_version"] is not None and not verdicts["one_version"].passed
    assert verdicts["standby_per_stripe"] is not None
    assert not verdicts["standby_per_stripe"].passed
