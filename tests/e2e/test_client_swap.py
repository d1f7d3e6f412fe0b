"""The client jar swap against a real sandbox client (real sshd, the application started by
its own app.sh): new jars in before old ones out, a failed copy leaves the old set complete
and the client running on it again, a swap that left no jar is refused by the read-back
(also without status_command), and the operator's own commands never reach a failure's text
or a step's record.

The module shares one ``small`` sandbox; its servers stay on 4.2.0 (a 4.2.1 client talks to
them: same minor version). Each test starts from the client running on its 4.2.0 jars; the
``restored`` fixture puts the jars back and starts it again afterwards. The upgrade that
succeeds runs last.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Client, Inventory, SshSettings
from bm_upgrade.probes import probe_client
from bm_upgrade.procedure.clients import upgrade_client
from bm_upgrade.procedure.jarswap import TEMP_PREFIX
from bm_upgrade.procedure.kit import StagedKit, fetch_kit, stage_kit
from bm_upgrade.procedure.servers import StepContext
from bm_upgrade.procedure.waits import Poll, wait_for
from bm_upgrade.remote import Connection, HostPool
from bm_upgrade.remote.quoting import Command, echo_mark, quote
from tests.e2e.conftest import E2ESandbox

pytestmark = pytest.mark.e2e

OLD = ["ehcache-ee-2.10.0.jar", "terracotta-toolkit-runtime-ee-4.2.0.jar"]
NEW = ["ehcache-ee-2.10.1.jar", "terracotta-toolkit-runtime-ee-4.2.1.jar"]
TOOLKIT = "terracotta-toolkit-runtime-ee-4.2.1.jar"
SECRET = "s3cr3t-token"


@pytest.fixture(scope="module")
def staged(small_sandbox: E2ESandbox, pool: HostPool) -> dict[str, StagedKit]:
    inv = small_sandbox.inventory
    kit = inv.kit_for("4.2.1")
    assert kit is not None
    path = fetch_kit(kit, cache_dir=small_sandbox.directory.parent / "kit-cache")
    return stage_kit(pool, inv, kit, path, Path(inv.license_file))


def the_client(inv: Inventory) -> Client:
    return inv.regions[0].clients[0]


def lib_jars(client: Client) -> list[str]:
    return sorted(
        p.name
        for p in Path(client.lib_dir).iterdir()
        if p.name.startswith(("ehcache-ee-", "terracotta-toolkit-runtime-ee-"))
    )


def running_on(pool: HostPool, client: Client) -> tuple[bool | None, str | None]:
    status = probe_client(pool.get(client.host), client)
    return status.running, status.jar_version


def client_events(sandbox: E2ESandbox, since: float, action: str) -> list[dict[str, Any]]:
    return [
        e
        for e in sandbox.journal(since)
        if e["event"] == "client_process" and e["action"] == action
    ]


def eventually(what: str, check: Callable[[], bool]) -> None:
    """Wait (10 s at most) until ``check()`` holds: a started application writes its pid
    and journal line a moment after app.sh returns."""
    log = logging.getLogger("tests.e2e.client_swap")
    outcome = wait_for(
        lambda: Poll(True, "yes") if check() else Poll(now="not yet"),
        what=what,
        timeout_s=10,
        log=log,
        poll_s=0.05,
    )
    assert outcome.ok, what


@pytest.fixture
def restored(small_sandbox: E2ESandbox, pool: HostPool) -> Iterator[Client]:
    """The client running on its 4.2.0 jars before the test, and again after it."""
    client = the_client(small_sandbox.inventory)
    lib = Path(client.lib_dir)
    assert lib_jars(client) == OLD
    saved = {p.name: p.read_bytes() for p in lib.iterdir() if p.is_file()}
    owner = lib.stat()
    yield client
    conn = pool.get(client.host)
    if sorted(p.name for p in lib.iterdir()) != sorted(saved):
        conn.run(client.stop_command)
        for path in lib.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        for name, data in saved.items():
            (lib / name).write_bytes(data)
            os.chown(lib / name, owner.st_uid, owner.st_gid)
    conn.run(client.start_command)
    eventually("client running on 4.2.0", lambda: running_on(pool, client) == (True, "4.2.0"))


def ctx_for(
    inv: Inventory, pool: HostPool, staged: dict[str, StagedKit], **kit: StagedKit
) -> StepContext:
    return StepContext.create(
        inv,
        pool,
        target="4.2.1",
        staged={**staged, **kit},
        logger=logging.getLogger("tests.e2e.client_swap"),
        timeouts=inv.policy.timeouts.model_copy(update={"client_s": 20}),
    )


def crafted_kit(
    staged: StagedKit, name: str, change: Callable[[tarfile.TarInfo], tarfile.TarInfo | None]
) -> StagedKit:
    """A copy of the staged kit, each member passed through ``change`` (None drops it),
    next to it on the client's host and owned like it."""
    source = Path(staged.kit_path)
    target = source.with_name(name)
    out = io.BytesIO()
    with tarfile.open(source, "r:gz") as kit, tarfile.open(fileobj=out, mode="w:gz") as copy:
        for member in kit.getmembers():
            changed = change(member)
            if changed is not None:
                data = kit.extractfile(member) if member.isfile() else None
                copy.addfile(changed, data)
    target.write_bytes(out.getvalue())
    owner = source.stat()
    os.chown(target, owner.st_uid, owner.st_gid)
    return StagedKit(staged.host, str(target), staged.license_path, "uploaded")


def unreadable_toolkit(member: tarfile.TarInfo) -> tarfile.TarInfo:
    if member.name.endswith(TOOLKIT):
        member.mode = 0
    return member


def test_a_failed_copy_keeps_the_old_jars_and_restarts_the_client(
    small_sandbox: E2ESandbox, pool: HostPool, staged: dict[str, StagedKit], restored: Client
) -> None:
    """The toolkit jar cannot be read (cp fails after the ehcache jar was copied): the
    failure says the old jars are in place again, and the client runs on them again."""
    client = restored
    kit = crafted_kit(staged[client.host], "unreadable-toolkit.tar.gz", unreadable_toolkit)
    since = time.time()
    with pytest.raises(StepFailed) as failed:
        upgrade_client(ctx_for(small_sandbox.inventory, pool, staged, **{client.host: kit}), client)
    message = str(failed.value)
    assert f"client {client.name} on host {client.host} ({client.lib_dir})" in message
    assert "it holds its old jars again" in message and "started again on them" in message
    assert lib_jars(client) == OLD
    assert not [p for p in Path(client.lib_dir).iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert running_on(pool, client) == (True, "4.2.0")
    eventually(
        "a start on 4.2.0 journaled",
        lambda: [e["version"] for e in client_events(small_sandbox, since, "start")] == ["4.2.0"],
    )


def test_without_status_command_a_failed_copy_is_not_reported_as_upgraded(
    small_sandbox: E2ESandbox, pool: HostPool, staged: dict[str, StagedKit], restored: Client
) -> None:
    """Same copy failure, no status_command: nothing may be read as "runs on 4.2.1" (the
    old swap deleted the old jars first and never saw the failed copy)."""
    client = restored.model_copy(update={"status_command": None})
    kit = crafted_kit(staged[client.host], "unreadable-toolkit.tar.gz", unreadable_toolkit)
    with pytest.raises(StepFailed) as failed:
        upgrade_client(ctx_for(small_sandbox.inventory, pool, staged, **{client.host: kit}), client)
    assert "it holds its old jars again" in str(failed.value)
    assert lib_jars(client) == OLD
    eventually("client running on 4.2.0", lambda: running_on(pool, restored) == (True, "4.2.0"))


def test_a_kit_missing_a_jar_is_refused_before_the_client_stops(
    small_sandbox: E2ESandbox, pool: HostPool, staged: dict[str, StagedKit], restored: Client
) -> None:
    client = restored
    kit = crafted_kit(
        staged[client.host], "no-toolkit.tar.gz", lambda m: None if m.name.endswith(TOOLKIT) else m
    )
    since = time.time()
    with pytest.raises(StepFailed) as failed:
        upgrade_client(ctx_for(small_sandbox.inventory, pool, staged, **{client.host: kit}), client)
    message = str(failed.value)
    assert (
        f"holds ehcache-ee-2.10.1.jar, not one ehcache-ee jar and {TOOLKIT}" in message
        and "was not touched" in message
    ), message
    assert client_events(small_sandbox, since, "stop") == []
    assert lib_jars(client) == OLD and running_on(pool, client) == (True, "4.2.0")


def test_a_running_client_whose_lib_dir_holds_no_jar_set_is_not_stopped(
    small_sandbox: E2ESandbox, pool: HostPool, staged: dict[str, StagedKit], restored: Client
) -> None:
    """A wrong lib_dir (the application runs, its folder holds no Terracotta jar): refused
    before the stop, nothing changed."""
    wrong = str(Path(restored.lib_dir).parent / "etc")
    client = restored.model_copy(update={"lib_dir": wrong})
    since = time.time()
    with pytest.raises(StepFailed) as failed:
        upgrade_client(ctx_for(small_sandbox.inventory, pool, staged), client)
    assert f"{wrong} holds no Terracotta jar" in str(failed.value)
    assert client_events(small_sandbox, since, "stop") == []
    assert lib_jars(restored) == OLD and running_on(pool, restored) == (True, "4.2.0")


class _LosingSwap(Connection):
    """The client host's connection, whose jar swap loses every Terracotta jar and exits 0
    (what the old swap did when its copies failed unseen): the one seam faked here."""

    def run(self, command: Command, timeout: float | None = None, check: bool = True) -> Any:
        if isinstance(command, str) and command.startswith("set -e") and TEMP_PREFIX in command:
            lib = command.rsplit("ls -1p -- ", 1)[1]
            command = (
                f"rm -f -- {lib}/ehcache-ee-*.jar {lib}/terracotta-toolkit-runtime-ee-"
                f"*.jar; {echo_mark('lib')}; ls -1p -- {lib}"
            )
        return super().run(command, timeout=timeout, check=check)


class _Pool(HostPool):
    def __init__(self, settings: SshSettings, host: str) -> None:
        super().__init__(settings)
        self.losing = _LosingSwap(host, settings)

    def get(self, host: str) -> Connection:
        return self.losing if host == self.losing.host else super().get(host)


def test_a_swap_that_left_no_jar_is_refused_by_the_read_back(
    small_sandbox: E2ESandbox, pool: HostPool, staged: dict[str, StagedKit], restored: Client
) -> None:
    """Without status_command, the read-back of lib_dir alone stands between a swap that
    exited 0 and "runs on the 4.2.1 jars": no complete set, so the client is not started."""
    client = restored.model_copy(update={"status_command": None})
    inv = small_sandbox.inventory
    since = time.time()
    with _Pool(inv.ssh, client.host) as losing, pytest.raises(StepFailed) as failed:
        upgrade_client(ctx_for(inv, losing, staged), client)
    message = str(failed.value)
    assert "holds no Terracotta jar, not ehcache-ee-2.10.1.jar" in message, message
    assert "no complete set" in message and "was left stopped" in message, message
    assert client_events(small_sandbox, since, "start") == []
    assert lib_jars(client) == []


def test_a_failing_stop_command_is_named_by_client_and_exit_code(
    small_sandbox: E2ESandbox,
    pool: HostPool,
    staged: dict[str, StagedKit],
    restored: Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The operator's stop command (which may hold a token) shows in the step's log only."""
    command = f"test -n {quote(SECRET)} && exit 3"
    client = restored.model_copy(update={"stop_command": command})
    with (
        caplog.at_level(logging.INFO, "tests.e2e.client_swap"),
        pytest.raises(StepFailed) as failed,
    ):
        upgrade_client(ctx_for(small_sandbox.inventory, pool, staged), client)
    text = "\n".join([str(failed.value), *getattr(failed.value, "__notes__", [])])
    assert f"the stop command of client {client.name} on host {client.host} exited 3" in text
    assert SECRET not in text and command not in text
    assert failed.value.__cause__ is None  # a chained CommandFailed would quote it
    assert any(SECRET in r.getMessage() for r in caplog.records)
    assert running_on(pool, client) == (True, "4.2.0")


def test_upgrade_puts_new_jars_in_before_old_out(
    small_sandbox: E2ESandbox, pool: HostPool, staged: dict[str, StagedKit], restored: Client
) -> None:
    """The swap copies and renames the new jars before it removes an old one (the order of
    the command's parts, from the journal); the client runs on 4.2.1 afterwards and no step
    record quotes the operator's commands."""
    client = restored
    since = time.time()
    records = upgrade_client(ctx_for(small_sandbox.inventory, pool, staged), client)
    assert lib_jars(client) == NEW
    assert running_on(pool, client) == (True, "4.2.1")
    swaps = [
        str(e["command"])
        for e in small_sandbox.journal(since)
        if e["event"] == "command" and e["host"] == client.host and TEMP_PREFIX in str(e["command"])
    ]
    assert len(swaps) == 1, swaps
    lib = client.lib_dir.rstrip("/")
    swap = swaps[0]
    renamed = max(swap.index(f"{quote(f'{lib}/{jar}')}; ") for jar in NEW)
    removed = min(swap.index(quote(f"{lib}/{jar}")) for jar in OLD)
    assert swap.index("cp -p -- ") < renamed < removed, swap
    text = json.dumps([r.as_dict() for r in records])
    for command in (client.stop_command, client.start_command):
        assert command not in text and json.dumps(command)[1:-1] not in text
    assert "(read back)" in text
