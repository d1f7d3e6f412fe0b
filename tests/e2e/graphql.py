"""A client of dagster-webserver's GraphQL API (the UI's own) for end-to-end tests: launch the
cluster's upgrade job, re-execute a run from failure, reload the code location, wait for a
run to end."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests.dagster import processes

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  launchRunReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""
RELOAD = """
mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) {
    __typename
    ... on WorkspaceLocationEntry { locationOrLoadError { __typename
      ... on PythonError { message } } }
    ... on PythonError { message }
  }
}"""
RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status stepStats { stepKey status } }
  }
}"""
LOCATIONS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name
    locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
DONE = {"SUCCESS", "FAILURE", "CANCELED"}


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class GraphQL:
    """The webserver at ``url``, its code location ``location``."""

    url: str
    location: str = ""

    def query(self, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": text, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer: dict[str, Any] = json.loads(response.read())
        assert "errors" not in answer, answer["errors"]
        data: dict[str, Any] = answer["data"]
        return data

    def loaded_location(self) -> str:
        """The one code location's name, failing the test if it did not load."""
        (entry,) = self.query(LOCATIONS)["workspaceOrError"]["locationEntries"]
        assert entry["locationOrLoadError"]["__typename"] != "PythonError", entry
        name: str = entry["name"]
        return name

    def reload(self, timeout: float = 60) -> None:
        """Reload the code location (the UI's "Reload" button) until it loads."""
        box: dict[str, Any] = {}

        def loaded() -> bool:
            result = self.query(RELOAD, {"name": self.location})["reloadRepositoryLocation"]
            box.update(result)
            return bool(
                result["__typename"] == "WorkspaceLocationEntry"
                and result["locationOrLoadError"]["__typename"] != "PythonError"
            )

        processes.wait_until(loaded, timeout, f"the code location to reload (last: {box})", 1.0)

    def launch(self, job: str, config: dict[str, Any]) -> str:
        """Launch ``job`` with ``config`` as the preflight op's config; its run id."""
        params = {
            "selector": {
                "repositoryLocationName": self.location,
                "repositoryName": "__repository__",
                "jobName": job,
            },
            "runConfigData": {"ops": {"preflight": {"config": config}}},
        }
        result = self.query(LAUNCH, {"params": params})["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        run_id: str = result["run"]["runId"]
        return run_id

    def reexecute_from_failure(self, parent: str) -> str:
        result = self.query(
            REEXECUTE, {"params": {"parentRunId": parent, "strategy": "FROM_FAILURE"}}
        )["launchRunReexecution"]
        assert result["__typename"] == "LaunchRunSuccess", result
        run_id: str = result["run"]["runId"]
        return run_id

    def run(self, run_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.query(RUN, {"runId": run_id})["runOrError"]
        return found

    def wait(self, run_id: str, timeout: float = 240) -> dict[str, Any]:
        """The run once it ended (the daemon must start it from the queue)."""
        box: dict[str, Any] = {}

        def ended() -> bool:
            box.update(self.run(run_id))
            return box.get("status") in DONE

        processes.wait_until(
            ended, timeout, f"run {run_id} to end (last: {box.get('status')})", interval=1.0
        )
        return box


def succeeded(run: dict[str, Any]) -> set[str]:
    """The steps of ``run`` that succeeded."""
    return {s["stepKey"] for s in run["stepStats"] if s["status"] == "SUCCESS"}
