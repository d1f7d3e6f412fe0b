"""The kit swap's safety against a real sandbox (issue 11: B1, B3, B4, C2): a folder that is not
a kit root is never stopped for, moved or deleted; an altered staged kit and a failed unpack
leave the old kit untouched (and no work folder behind); a rerun after an interrupted swap
carries the operator's files from the kept previous kit and says so; a kit root another
process uses (issue 13, item 6) is not swapped, its server is started again on it, and a rerun
once that process is gone completes.

The sandbox (``small``: east-s1-a ACTIVE, east-s1-b PASSIVE-STANDBY, both on 4.2.0) is shared
by the module; the tests run in file order and only the last two change a kit root.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory, Server
from bm_upgrade.procedure.install import start_server, stop_server
from bm_upgrade.procedure.kit import StagedKit
from bm_upgrade.procedure.kit_swap import install_kit
from bm_upgrade.procedure.records import StepRecorder
from bm_upgrade.procedure.servers import ServerOps, upgrade_mirrors
from bm_upgrade.remote import HostPool
from bm_upgrade.remote.quoting import detached, printed_pid, shell
from tests.e2e import journal_check
from tests.e2e.conftest import E2ESandbox
from tests.e2e.test_server_steps import (
    SETENV,
    environ_of,
    kit_version_on_disk,
    mirrors_then_failover,
    stage,
    states,
    the_stripe,
)

pytestmark = pytest.mark.e2e

TC_CONFIG_IN_KIT = "<tc-config><!-- the operator's, kept in the kit root --></tc-config>\n"
BOTH_RUNNING = {"east-s1-a": "ACTIVE-COORDINATOR", "east-s1-b": "PASSIVE-STANDBY"}


@pytest.fixture(scope="module")
def staged(small_sandbox: E2ESandbox, pool: HostPool) -> dict[str, StagedKit]:
    return stage(small_sandbox, pool, "4.2.1")


def mirror(inv: Inventory) -> Server:
    return the_stripe(inv).servers[1]


def with_server(inv: Inventory, name: str, **changes: Any) -> Inventory:
    """The inventory with server ``name``'s fields changed (as a wrong inventory would say)."""
    regions = [
        region.model_copy(
            update={
                "stripes": [
                    stripe.model_copy(
                        update={
                            "servers": [
                                s.model_copy(update=changes) if s.name == name else s
                                for s in stripe.servers
                            ]
                        }
                    )
                    for stripe in region.stripes
                ]
            }
        )
        for region in inv.regions
    ]
    return inv.model_copy(update={"regions": regions})


def not_a_kit_folder(server: Server) -> Path:
    """A data folder inside the server's kit root, with a file in it."""
    folder = Path(server.kit_root.path) / "data-folder"
    folder.mkdir(exist_ok=True)
    (folder / "precious.dat").write_text("keep me\n", encoding="utf-8")
    return folder


def unpacked(sandbox: E2ESandbox, since: float) -> list[str]:
    """Kit roots that appeared on any host since ``since`` (the sandbox journals them)."""
    return [str(e["path"]) for e in sandbox.journal(since) if e["event"] == "kit_unpacked"]


def install(
    pool: HostPool, server: Server, staged_kit: str, *, sha: str, staged: dict[str, StagedKit]
) -> None:
    """install_kit of 4.2.1 from ``staged_kit``, the previous kit not kept."""
    install_kit(
        pool.get(server.host),
        server,
        target="4.2.1",
        staged_kit=staged_kit,
        staged_license=staged[server.host].license_path,
        keep_previous=False,
        delete_backups=False,
        rec=StepRecorder(server.name, "install"),
        kit_sha256=sha,
    )


def test_a_wrong_install_dir_is_refused_before_the_server_is_stopped(
    small_sandbox: E2ESandbox, pool: HostPool, staged: dict[str, StagedKit]
) -> None:
    """install_dir names a data folder inside the kit root, and the server stops through an
    inventory stop_command (so the stop itself would succeed): the upgrade is refused before
    the stop, naming server, host and path; the folder is neither moved nor deleted."""
    base = small_sandbox.inventory
    real = mirror(base)
    folder = not_a_kit_folder(real)
    stop = shell([real.kit_root.script("stop-tc-server.sh"), "-f", real.tc_config, "-n", real.name])
    inv = with_server(base, real.name, install_dir=str(folder), stop_command=stop)
    ctx = ServerOps.create(inv, pool, target="4.2.1", staged=staged)
    since = time.time()
    with pytest.raises(StepFailed) as failed:
        upgrade_mirrors(ctx, inv.regions[0], the_stripe(inv))
    message = str(failed.value)
    assert real.name in message and real.host in message and str(folder) in message
    assert "not a BigMemory Max 4.x kit" in message and "was not stopped" in message
    assert "install_dir" in message
    assert journal_check.stops(small_sandbox.journal_path, since) == []
    assert states(base) == BOTH_RUNNING
    assert (folder / "precious.dat").read_text(encoding="utf-8") == "keep me\n"
    assert not Path(mirror(inv).kit_root.previous_dir).exists()


def test_install_never_moves_or_deletes_a_folder_that_is_not_a_kit(
    small_sandbox: E2ESandbox, pool: HostPool, staged: dict[str, StagedKit]
) -> None:
    """A server already down whose install_dir is not a kit root (no version.sh): the swap
    refuses, even with keep_previous_kit off, and nothing is unpacked, moved or deleted."""
    base = small_sandbox.inventory
    real = mirror(base)
    folder = not_a_kit_folder(real)
    wrong = mirror(with_server(base, real.name, install_dir=str(folder)))
    kit = base.kit_for("4.2.1")
    assert kit is not None
    since = time.time()
    with pytest.raises(StepFailed) as failed:
        install(pool, wrong, staged[real.host].kit_path, sha=kit.sha256, staged=staged)
    assert str(folder) in str(failed.value) and "neither moved nor deleted" in str(failed.value)
    assert (folder / "precious.dat").read_text(encoding="utf-8") == "keep me\n"
    assert sorted(p.name for p in folder.iterdir()) == ["precious.dat"]
    assert not Path(wrong.kit_root.previous_dir).exists()
    assert unpacked(small_sandbox, since) == []
    shutil.rmtree(folder)


def test_an_altered_staged_kit_is_refused_before_anything_changes(
    small_sandbox: E2ESandbox, pool: HostPool, staged: dict[str, StagedKit]
) -> None:
    """The staged tarball changed on the host after staging (here: a copy with one more
    byte): its sha256 is checked right before the unpack, nothing is unpacked, the mirror's
    kit root keeps 4.2.0 and the mirror keeps running; the message names host and path."""
    inv = small_sandbox.inventory
    server = mirror(inv)
    kit = inv.kit_for("4.2.1")
    assert kit is not None
    altered = Path(staged[server.host].kit_path).with_name("altered-4.2.1.tar.gz")
    altered.write_bytes(Path(staged[server.host].kit_path).read_bytes() + b"\0")
    since = time.time()
    with pytest.raises(StepFailed) as failed:
        install(pool, server, str(altered), sha=kit.sha256, staged=staged)
    message = str(failed.value)
    assert server.host in message and str(altered) in message and kit.sha256 in message
    assert "untouched" in message and "stage it again" in message
    assert unpacked(small_sandbox, since) == []
    assert not Path(server.kit_root.work_dir(server.name)).exists()
    assert kit_version_on_disk(server) == "4.2.0"
    assert states(inv) == BOTH_RUNNING
    altered.unlink()


def test_a_stripe_step_checks_the_staged_kit_before_it_stops_the_mirror(
    small_sandbox: E2ESandbox, pool: HostPool, staged: dict[str, StagedKit]
) -> None:
    """Through the stripe procedure (not install_kit alone): the run's staged tarball was
    altered on the host after staging; its checksum, taken on the host before the mirror's
    stop, refuses it: the mirror is not stopped, nothing is unpacked, and the failure names
    the host and says a new run stages the kit again."""
    inv = small_sandbox.inventory
    server = mirror(inv)
    good = staged[server.host]
    altered = Path(good.kit_path).with_name("altered-run-4.2.1.tar.gz")
    altered.write_bytes(Path(good.kit_path).read_bytes() + b"\0")
    run_staged = {
        **staged,
        server.host: StagedKit(
            server.host, str(altered), good.license_path, good.kit_action, good.unpacked_bytes
        ),
    }
    ctx = ServerOps.create(inv, pool, target="4.2.1", staged=run_staged)
    since = time.time()
    try:
        with pytest.raises(StepFailed) as failed:
            upgrade_mirrors(ctx, inv.regions[0], the_stripe(inv))
        message = str(failed.value)
        assert server.host in message and "sha256" in message
        assert f"{server.name} was not stopped" in message and "run the upgrade again" in message
        assert journal_check.stops(small_sandbox.journal_path, since) == []
        assert unpacked(small_sandbox, since) == []
        assert kit_version_on_disk(server) == "4.2.0"
        assert states(inv) == BOTH_RUNNING
    finally:
        altered.unlink()


def test_a_failing_start_command_is_named_by_server_and_exit_code(
    small_sandbox: E2ESandbox, pool: HostPool, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator's own start_command (which may carry a token) never reaches the failure
    text, which names the server, host and exit code; the command is in the step's log."""
    base = small_sandbox.inventory
    real = mirror(base)
    command = "echo token-s3cr3t >&2; exit 3"
    inv = with_server(base, real.name, start_command=command)
    ctx = ServerOps.create(inv, pool, target="4.2.1")
    with caplog.at_level(logging.INFO), pytest.raises(StepFailed) as failed:
        start_server(ctx, mirror(inv), StepRecorder(real.name, "start"))
    message = str(failed.value)
    assert f"the start command of {real.name} on {real.host} exited 3" in message
    assert "token-s3cr3t" not in message and failed.value.__cause__ is None
    assert command in caplog.text
    assert states(base) == BOTH_RUNNING


def test_a_failed_unpack_removes_the_work_folder(
    small_sandbox: E2ESandbox, pool: HostPool, staged: dict[str, StagedKit]
) -> None:
    """A truncated tarball (with the checksum it has, so only the unpack can fail): the
    partial work folder is removed, the old kit is untouched, and the message says both."""
    inv = small_sandbox.inventory
    server = mirror(inv)
    whole = Path(staged[server.host].kit_path).read_bytes()
    truncated = Path(staged[server.host].kit_path).with_name("truncated-4.2.1.tar.gz")
    truncated.write_bytes(whole[: len(whole) // 2])
    work = Path(server.kit_root.work_dir(server.name))
    with pytest.raises(StepFailed) as failed:
        install(
            pool,
            server,
            str(truncated),
            sha=hashlib.sha256(truncated.read_bytes()).hexdigest(),
            staged=staged,
        )
    message = str(failed.value)
    assert "unpacking" in message and server.host in message
    assert f"the partial work folder {work} was removed" in message and "untouched" in message
    assert not work.exists()
    assert kit_version_on_disk(server) == "4.2.0"
    assert states(inv) == BOTH_RUNNING
    truncated.unlink()


def test_a_rerun_after_an_interrupted_swap_carries_the_operators_files(
    small_sandbox: E2ESandbox, pool: HostPool, staged: dict[str, StagedKit]
) -> None:
    """The mirror was stopped and its kit root moved to .bm-upgrade-previous, but no new kit
    moved in (an interrupted swap): the rerun installs 4.2.1 with the operator's setenv.sh
    and in-kit tc-config.xml carried from the kept previous kit, says so, and the mirror
    syncs again with its setenv.sh in force."""
    inv = small_sandbox.inventory
    server = mirror(inv)
    root = Path(server.kit_root.path)
    (root / "server" / "bin" / "setenv.sh").write_text(SETENV, encoding="utf-8")
    (root / "tc-config.xml").write_text(TC_CONFIG_IN_KIT, encoding="utf-8")
    ctx = ServerOps.create(inv, pool, target="4.2.1", staged=staged)
    stop_server(ctx, server, StepRecorder(server.name, "stop"))
    previous = Path(server.kit_root.previous_kit("4.2.0"))
    previous.parent.mkdir(exist_ok=True)
    root.rename(previous)
    since = time.time()

    records = upgrade_mirrors(ctx, inv.regions[0], the_stripe(inv))
    install_record = next(r for r in records if r.action == "install")
    carried = [d for d in install_record.did if d.startswith("carried ")]
    assert carried == [
        f"carried tc-config.xml, server/bin/setenv.sh from the kept previous "
        f"kit {previous} (the kit root was missing)"
    ], install_record.did
    assert "is missing" in install_record.found
    assert (root / "server" / "bin" / "setenv.sh").read_text(encoding="utf-8") == SETENV
    assert (root / "tc-config.xml").read_text(encoding="utf-8") == TC_CONFIG_IN_KIT
    assert (root / "terracotta-license.key").stat().st_size > 0
    # Readable by a server that runs as another user than the SSH login; the staged copy
    # stays private.
    assert (root / "terracotta-license.key").stat().st_mode & 0o777 == 0o644
    assert Path(staged[server.host].license_path).stat().st_mode & 0o777 == 0o600
    assert kit_version_on_disk(server) == "4.2.1"
    assert unpacked(small_sandbox, since)  # the journal sees unpacks (the other tests' check)
    assert kit_version_on_disk(server.model_copy(update={"install_dir": str(previous)})) == "4.2.0"
    assert states(inv) == BOTH_RUNNING
    assert "BM_E2E_SETENV=carried-over" in environ_of(small_sandbox, server)
    assert small_sandbox.verify()["lost"] == 0


def test_a_kit_root_in_use_is_not_swapped_and_a_rerun_completes_once_it_is_free(
    small_sandbox: E2ESandbox, pool: HostPool, staged: dict[str, StagedKit]
) -> None:
    """A foreign process (``sleep``, as a shell or a management console would) has its
    working directory in the active's kit root. The failover stops the active (its mirror
    takes over), the swap's command refuses before anything of the kit root is moved, naming
    the process, removes the unpacked kit, and the server is started again on its untouched
    4.2.0 kit, where it syncs as the mirror.
    Once the process is gone, a rerun completes the stripe on 4.2.1.

    The check runs after the stop, once the node's own processes are gone, so anything still
    using the kit root is foreign for certain; the stripe stays served throughout."""
    inv = small_sandbox.inventory
    active = the_stripe(inv).servers[0]
    root = Path(active.kit_root.path)
    ctx = ServerOps.create(inv, pool, target="4.2.1", staged=staged)
    # Started over the host's SSH login (the sandbox's hosts log in as their own user, whose
    # /proc entries the look may read), detached, in a folder of the kit root.
    conn = pool.get(active.host)
    started = conn.run(detached(["sleep", "600"], "/dev/null", cwd=str(root / "server")))
    foreign = printed_pid(started.stdout)
    assert foreign is not None
    try:
        with pytest.raises(StepFailed) as failed:
            mirrors_then_failover(ctx, inv)
        message = str(failed.value)
        assert failed.value.node == active.name
        assert message.startswith(
            f"{root}, the kit root of {active.name} on {active.host}, is in use by 1 other "
            f"process: pid {foreign} of "
        ), message
        assert f"(sleep 600: its working directory is {root}/server)" in message
        assert "so nothing of it was moved and the unpacked 4.2.1 kit was removed" in message
        assert message.endswith(f"{active.name} was started again on its untouched 4.2.0 kit")
        assert not Path(active.kit_root.work_dir(active.name)).exists()
        assert kit_version_on_disk(active) == "4.2.0"
        assert ctx.wait_state(active, {"PASSIVE-STANDBY"}, 60).ok
        assert states(inv) == {
            "east-s1-a": "PASSIVE-STANDBY",
            "east-s1-b": "ACTIVE-COORDINATOR",
        }
    finally:
        conn.run(["kill", str(foreign)], check=False)

    mirrors_then_failover(ctx, inv)
    assert kit_version_on_disk(active) == "4.2.1"
    assert {s.name: kit_version_on_disk(s) for s in the_stripe(inv).servers} == {
        "east-s1-a": "4.2.1",
        "east-s1-b": "4.2.1",
    }
    assert set(states(inv).values()) == {"ACTIVE-COORDINATOR", "PASSIVE-STANDBY"}
    assert small_sandbox.verify()["lost"] == 0
