"""One run per cluster, with the real daemon: the instance settings bm_upgrade writes queue a
second run of the same `cluster` tag and start one of another cluster at once."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from bm_upgrade.defs.instance import prepare_instance
from bm_upgrade.defs.launch import run_upgrade
from bm_upgrade.errors import UserError
from tests.dagster import processes
from tests.unit.inventories import minimal

# The daemon and code-location processes, whole runs on an instance on disk.
pytestmark = pytest.mark.slow

LOCATION = Path(__file__).with_name("queue_location.py")
IN_PROGRESS = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}


@pytest.fixture
def home() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="bm-upgrade-queue-"))
    prepare_instance(folder)  # the daemon and three `dagster job launch` start side by side
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def launch_all(home: Path, runs: dict[str, tuple[str, Path]]) -> dict[str, str]:
    """Submit one run per entry (name -> (cluster, gate)) with `dagster job launch`, side by
    side (each costs seconds of start-up); returns name -> run id."""
    ids = {name: str(uuid.uuid4()) for name in runs}
    procs = []
    try:
        for name, (cluster, gate) in runs.items():
            tags = json.dumps({"cluster": cluster, "gate": str(gate)})
            procs.append(
                processes.start(
                    "dagster",
                    [
                        "job",
                        "launch",
                        "-f",
                        str(LOCATION),
                        "-j",
                        "held",
                        "--run-id",
                        ids[name],
                        "--tags",
                        tags,
                    ],
                    home,
                    home / "launch.log",
                )
            )
        for proc in procs:
            assert proc.wait(timeout=90) == 0, (home / "launch.log").read_text()
    finally:
        for proc in procs:
            processes.stop(proc)
    return ids


def test_second_run_of_a_cluster_waits_for_the_first(home: Path) -> None:
    log = home / "daemon.log"
    daemon = processes.start("dagster-daemon", ["run", "-f", str(LOCATION)], home, log)
    try:
        inst = dg.DagsterInstance.from_config(str(home))
        gate_a, gate_b = home / "gate-a", home / "gate-b"
        ids = launch_all(
            home, {"a1": ("alpha", gate_a), "a2": ("alpha", gate_a), "b": ("beta", gate_b)}
        )

        def status(key: str) -> dg.DagsterRunStatus:
            run = inst.get_run_by_id(ids[key])
            assert run is not None
            return run.status

        def started(keys: list[str]) -> list[str]:
            return [k for k in keys if status(k) in IN_PROGRESS]

        processes.wait_until(
            lambda: len(started(["a1", "a2"])) == 1 and bool(started(["b"])),
            60,
            f"one run of each cluster to start (daemon log: {log})",
        )
        first = started(["a1", "a2"])[0]
        second = "a2" if first == "a1" else "a1"
        # Whichever alpha run the daemon saw first holds; the other one stays queued.
        assert status(second) == dg.DagsterRunStatus.QUEUED
        gate_a.touch()
        processes.wait_until(
            lambda: status(second) == dg.DagsterRunStatus.SUCCESS,
            60,
            "the queued run to start and finish once the first ended",
        )
        assert status("b") in IN_PROGRESS  # the other cluster was never in the way
        gate_b.touch()
        processes.wait_until(
            lambda: status("b") == dg.DagsterRunStatus.SUCCESS,
            60,
            "the other cluster's run to finish",
        )
        one, two = inst.get_run_record_by_id(ids[first]), inst.get_run_record_by_id(ids[second])
        assert one is not None and two is not None
        assert one.end_time is not None and two.start_time is not None
        assert two.start_time >= one.end_time
    finally:
        processes.stop(daemon)


def test_command_line_run_refused_while_the_cluster_has_one_going(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A readable license file: run_upgrade checks it before it looks for going runs.
    data = minimal(license_file=str(Path(__file__).parents[1] / "fixtures" / "license-4.2.key"))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as inst:
        other = dg.DagsterRun(
            job_name="upgrade_other",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags={"cluster": "other"},
        )
        inst.add_run(other)
        # Another cluster's run is no reason to refuse: this one gets as far as preflight
        # (whose hosts do not exist), which is past the check.
        assert not run_upgrade(path).success
        going = dg.DagsterRun(
            job_name=f"upgrade_{data['cluster']}",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags={"cluster": data["cluster"]},
        )
        inst.add_run(going)
    with pytest.raises(
        UserError,
        match=rf"run {going.run_id} of cluster {data['cluster']} "
        r"has not ended \(STARTED\); one run per cluster",
    ):
        run_upgrade(path)
