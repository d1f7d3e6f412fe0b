"""The Dagster UI the way a person uses it: Debian's chromium, headless, driven by Playwright
through the UI of a small sandbox (webserver and daemon as deploy/ui.sh starts them,
tests/e2e/ui_servers.py). Open the cluster's job and its graph, read the launchpad's config,
launch and watch the steps succeed, see a failed run's reason, re-execute it from failure,
read the sync-status history. Selectors are roles and visible text; every wait in the page is
one of Playwright's waiting assertions (the sensor's history is awaited through GraphQL first).

The browser stays on loopback: its flags turn off Chromium's own network services, and every
request for another address is aborted. Playwright never downloads a browser: it starts
/usr/bin/chromium (scripts/system-deps.sh installs it). Screenshots go to a temporary folder
(pytest's, kept for the last sessions); docs/images/ holds three of them. The tests run in file
order on one sandbox, each from the state the previous one left.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect, sync_playwright

from bm_upgrade.defs.config import UpgradeConfig
from bm_upgrade.inventory import Inventory
from bm_upgrade.sandbox import faults
from tests.dagster import processes
from tests.e2e.ui_servers import BEFORE_STOPS, FROM_FIRST_STOP, UiServers, graphql, ui_servers

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUN_MS = 240_000
"""How long a run may take to end, from its launch (the daemon starts it from the queue)."""
RUN_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
OBSERVATIONS = """
query Observations($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    ... on Asset { assetEventHistory(limit: 500, eventTypeSelectors: [OBSERVATION]) {
      results { ... on ObservationEvent {
        metadataEntries { label ... on MarkdownMetadataEntry { mdStr } } } } } }
  }
}"""
"""The asset's observations as the Events tab lists them: the newest stored first (a sensor's
look is stored after it ends, so its time may be older than a run's observation stored
before it)."""
VERSION = re.compile(r"\b(\d+\.\d+\.\d+)$")
TICKS = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { ticks(limit: 10) { timestamp status } } }
  }
}"""
NUX_SEEN = "mutation { setNuxSeen }"
"""What the UI's "Skip" on Dagster's first-visit invitation does on the server."""


@dataclass
class Ui:
    page: Page
    servers: UiServers
    shots: Path

    @property
    def inventory(self) -> Inventory:
        return self.servers.sandbox.inventory

    @property
    def job(self) -> str:
        return f"upgrade_{self.inventory.cluster}"

    def shot(self, name: str) -> None:
        self.page.screenshot(path=self.shots / f"{name}.png")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install chromium (scripts/system-deps.sh does it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def ui(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    shots = tmp_path_factory.mktemp("ui-screenshots")
    with ui_servers("small") as servers:
        # Skipped once for the instance, Dagster's invitation to its community (shown a
        # second after the first page) never covers a page the tests read.
        assert graphql(servers.url, NUX_SEEN)["setNuxSeen"] is True
        context = browser.new_context(base_url=servers.url, viewport={"width": 1400, "height": 900})
        try:
            context.set_default_timeout(30_000)

            def loopback_only(route: Route) -> None:
                if route.request.url.startswith(f"{servers.url}/"):
                    route.continue_()
                else:
                    route.abort()

            context.route("**/*", loopback_only)
            yield Ui(context.new_page(), servers, shots)
        finally:
            context.close()


def link(page: Page, text: str) -> Locator:
    """The link whose visible text is ``text`` (its name may start with its icon's)."""
    return page.get_by_role("link", name=re.compile(rf"(^|\s){re.escape(text)}$"))


def run_outcome(page: Page) -> str:
    """The run page's status once the run ended: Success, Failure or Canceled."""
    ended = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    expect(ended).to_be_visible(timeout=RUN_MS)
    return ended.inner_text()


def expect_steps(page: Page, section: str, steps: set[str]) -> None:
    """The run page's step list ``section`` (Succeeded, Errored, ...) names exactly ``steps``."""
    header = page.locator("[aria-controls]").filter(has_text=re.compile(rf"^{section} \(\d+\)$"))
    expect(header).to_have_text(f"{section} ({len(steps)})")
    if header.get_attribute("aria-expanded") == "false":
        header.click()
    listed = page.locator(f"[id='{header.get_attribute('aria-controls')}']")
    for step in steps:
        expect(listed.get_by_text(step, exact=True)).to_be_visible()


def yaml_lines(config: dict[str, Any]) -> Iterator[str]:
    """``key: value`` as the launchpad's YAML writes each of ``config``'s leaves."""
    for key, value in config.items():
        if isinstance(value, dict):
            yield f"{key}:"
            yield from yaml_lines(value)
        elif isinstance(value, bool):
            yield f"{key}: {str(value).lower()}"
        else:
            yield f"{key}: {'null' if value is None else value}"


def status_changes(ui: Ui) -> list[tuple[list[str], bool]]:
    """Each observation's ``changes`` lines, the newest first (as the UI lists them), and
    whether the sensor made it (its looks carry ``alerts``; a run's own observations of the
    changes it saw do not)."""
    key = {"path": ["bm_upgrade", ui.inventory.cluster, "sync_status"]}
    asset = graphql(ui.servers.url, OBSERVATIONS, {"key": key})["assetOrError"]
    found = asset.get("assetEventHistory", {}).get("results", [])
    return [
        (
            [line.removeprefix("- ") for line in e["mdStr"].splitlines() if line != "none"],
            any(other["label"] == "alerts" for other in o["metadataEntries"]),
        )
        for o in found
        for e in o["metadataEntries"]
        if e["label"] == "changes"
    ]


def sensor_looked_since(ui: Ui, since: float) -> bool:
    """Whether the sync_status sensor finished a look it began after ``since``."""
    selector = {
        "repositoryLocationName": ui.servers.location,
        "repositoryName": "__repository__",
        "sensorName": f"sync_status_{ui.inventory.cluster}",
    }
    sensor = graphql(ui.servers.url, TICKS, {"selector": selector})["sensorOrError"]
    ticks = sensor["sensorState"]["ticks"]
    return any(t["timestamp"] > since and t["status"] in {"SUCCESS", "SKIPPED"} for t in ticks)


def versions_by_node(changes: list[list[str]]) -> dict[str, list[str]]:
    """The versions each node was seen on, in order (``changes`` the newest first)."""
    seen: dict[str, list[str]] = {}
    for line in (line for lines in reversed(changes) for line in lines):
        node, _, change = line.partition(": ")
        for side in change.split(" -> "):
            version = VERSION.search(side)
            versions = seen.setdefault(node, [])
            if version and versions[-1:] != [version[1]]:
                versions.append(version[1])
    return seen


def test_the_job_shows_its_graph(ui: Ui) -> None:
    page = ui.page
    page.goto("/")
    link(page, "Jobs").click()
    link(page, ui.job).click()
    expect(page).to_have_url(re.compile(rf"/jobs/{ui.job}$"))
    for step in BEFORE_STOPS | FROM_FIRST_STOP:
        expect(page.get_by_text(step, exact=True)).to_be_visible()
    ui.shot("graph")


def test_the_launchpad_shows_the_clusters_config_with_its_defaults(ui: Ui) -> None:
    page = ui.page
    page.get_by_role("tab", name="Launchpad").click()
    defaults = UpgradeConfig.defaults_for(ui.inventory)
    # The inventory's target and policy (the small sandbox's policy fails back).
    assert defaults["target_version"] == "4.2.1" and defaults["failback"] is True
    editor = page.locator(".CodeMirror-code")
    for line in ["ops:", "preflight:", "config:", *yaml_lines(defaults)]:
        expect(editor).to_contain_text(line)
    expect(page.get_by_text("No errors", exact=True)).to_be_visible()
    ui.shot("launchpad")


def test_a_launched_upgrade_shows_every_step_succeed(ui: Ui) -> None:
    page = ui.page
    page.get_by_role("button", name="Launch Run").click()
    expect(page).to_have_url(re.compile(rf"/runs/{RUN_ID}$"))
    assert run_outcome(page) == "Success"
    expect_steps(page, "Succeeded", BEFORE_STOPS | FROM_FIRST_STOP)
    expect_steps(page, "Errored", set())
    ui.shot("run")


def test_a_failed_run_shows_its_reason_and_reexecutes_from_failure(ui: Ui) -> None:
    page = ui.page
    with faults.injected(ui.servers.sandbox.directory, "crash-on-start", "4.2.0"):
        # A rollback to 4.2.0, whose servers crash at start: typed into the launchpad.
        link(page, ui.job).click()
        page.get_by_role("tab", name="Launchpad").click()
        page.locator(".CodeMirror-line", has_text="target_version: 4.2.1").click()
        page.keyboard.press("End")
        page.keyboard.press("Backspace")
        page.keyboard.type("0")
        expect(page.locator(".CodeMirror-code")).to_contain_text("target_version: 4.2.0")
        page.get_by_role("button", name="Launch Run").click()
        expect(page).to_have_url(re.compile(rf"/runs/{RUN_ID}$"))
        failed = page.url.rsplit("/", 1)[-1]
        assert run_outcome(page) == "Failure"
        expect_steps(page, "Errored", {"upgrade_mirrors_east_stripe1"})
        expect_steps(page, "Succeeded", BEFORE_STOPS)
    # The failed step, selected, shows its one-sentence reason: the mirror did not start.
    page.get_by_text("upgrade_mirrors_east_stripe1", exact=True).last.click()
    stripe = ui.inventory.regions[0].stripes[0]
    reasons = "|".join(
        re.escape(f"{s.name} on {s.host} did not start ({s.name}'s process exited);")
        for s in stripe.servers
    )
    expect(page.get_by_text(re.compile(reasons)).first).to_be_visible()
    ui.shot("failed-run")
    # The fault cleared, the operator re-executes the run from its failed step.
    reexecute = page.get_by_role("button", name=re.compile(r"^Re-execute"))
    reexecute.locator("xpath=..").get_by_role("button", name="arrow_drop_down").click()
    page.get_by_role("menuitem", name="From failure").click()
    expect(page).to_have_url(re.compile(rf"/runs/(?!{failed}){RUN_ID}$"))
    assert run_outcome(page) == "Success"
    expect_steps(page, "Succeeded", FROM_FIRST_STOP)
    ui.shot("reexecuted-run")


def test_the_sync_status_asset_shows_its_history(ui: Ui) -> None:
    """The daemon's sync_status sensor observed the upgrade and the rollback, and the runs
    observed the changes they saw: the asset's Events tab lists every observation, each
    showing its changes."""
    since = time.time()  # the re-executed run has ended (the previous test saw it)
    servers = {s.name for _, _, s in ui.inventory.servers()}
    back_and_forth = {name: ["4.2.0", "4.2.1", "4.2.0"] for name in servers}
    box: list[list[tuple[list[str], bool]]] = [[]]

    def looks(observed: list[tuple[list[str], bool]]) -> list[list[str]]:
        return [lines for lines, by_sensor in observed if by_sensor]

    def rollback_seen() -> bool:
        # After a look that began once the run had ended, the history holds all it will.
        if not sensor_looked_since(ui, since):
            return False
        box[0] = status_changes(ui)
        return versions_by_node(looks(box[0])) == back_and_forth

    processes.wait_until(rollback_seen, 60, "every server seen on 4.2.0, 4.2.1, then 4.2.0")
    observed = box[0]
    changes = [lines for lines, _ in observed]
    first = looks(observed)[-1]
    assert {line.split(": ")[0] for line in first} == servers  # the sensor's first look
    assert all(" not seen -> " in line for line in first)
    # The runs' own: each server left PASSIVE-STANDBY and came back, seen as it happened.
    by_runs = [line for lines, by_sensor in observed if not by_sensor for line in lines]
    for name in servers:
        mine = [x for x in by_runs if x.startswith(f"{name}: ")]
        assert any(x.startswith(f"{name}: PASSIVE-STANDBY 4.2.0 -> ") for x in mine), by_runs
        assert any(x.endswith(" -> PASSIVE-STANDBY 4.2.1") for x in mine), by_runs
    page = ui.page
    page.set_viewport_size({"width": 1400, "height": 2400})  # the whole list, unscrolled
    page.goto(f"/assets/bm_upgrade/{ui.inventory.cluster}/sync_status")
    page.get_by_role("tab", name="Events").click()
    listed = page.locator("[data-index]").filter(has=page.get_by_role("img", name="observation"))
    expect(listed).to_have_count(len(changes))
    shown = page.get_by_role("row").filter(has=page.get_by_role("cell", name="changes", exact=True))
    # Each listed observation, clicked, shows the changes of one observation of the history:
    # all of them, once each. (The list's order may differ from the event log's for a look
    # and a run's change stored within a moment of each other, so it is not compared.)
    unmatched = [lines or ["none"] for lines in changes]

    def shown_lines() -> list[str]:
        return [x.strip() for x in shown.inner_text().splitlines()[1:] if x.strip()]

    for index in range(len(changes)):
        listed.nth(index).click()
        processes.wait_until(
            lambda: shown_lines() in unmatched, 10, f"the changes of listed observation {index}"
        )
        unmatched.remove(shown_lines())
    # The screenshot shows the sensor's first look at a server on 4.2.1.
    upgrade = max(
        i
        for i, (lines, by_sensor) in enumerate(observed)
        if by_sensor and any(x.endswith(" 4.2.1") for x in lines)
    )
    listed.nth(upgrade).click()
    page.set_viewport_size({"width": 1400, "height": 900})
    ui.shot("status-history")
