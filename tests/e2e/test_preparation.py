"""The guide's preparation against a real sandbox (issue 13, items 5 and 9): preflight reads
every tc-config and refuses an inventory that disagrees, before anything is touched; a
persistent stripe is backed up with the kit's backup-data.sh on its active before its first
server stops, once per run; a cluster of two versions is a resumed upgrade to its newer one
and refused for a third.

The mixed cluster is real: the stripe's mirror runs 4.2.1 (upgraded by the backup test) while
the active and the client still run 4.2.0; the third version is a target the inventory copy
lists a kit for, which no node runs (the sandbox cannot start a server on a third kit without
a third kit built, and preflight refuses before it would look at one).

Tests share the module's sandbox and run in file order.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from bm_upgrade.errors import PlanRefused, StepFailed
from bm_upgrade.inventory import Inventory, load_inventory
from bm_upgrade.plan import PlanOptions
from bm_upgrade.procedure.kit import StagedKit, fetch_kit, stage_kit
from bm_upgrade.procedure.preflight import preflight
from bm_upgrade.procedure.servers import ServerOps, upgrade_mirrors
from bm_upgrade.remote import HostPool
from bm_upgrade.sandbox import license
from tests.e2e.conftest import E2ESandbox

pytestmark = pytest.mark.e2e

RUN_TAG = "e2eprep1"


def inventory_copy(sandbox: E2ESandbox, name: str, change: dict[str, object]) -> Inventory:
    data = yaml.safe_load(sandbox.inventory_path.read_text(encoding="utf-8"))
    data.update(change)
    path = sandbox.directory.parent / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_inventory(path)


def disruptive(sandbox: E2ESandbox, since: float) -> list[str]:
    return [
        str(e["command"])
        for e in sandbox.journal(since)
        if e["event"] == "command"
        and any(s in str(e["command"]) for s in ("stop-tc-server.sh", "start-tc-server.sh"))
    ]


def test_a_tc_config_that_disagrees_is_refused_before_anything_is_touched(
    small_sandbox: E2ESandbox, pool: HostPool
) -> None:
    t0 = max(float(e["t"]) for e in small_sandbox.journal())
    wrong = inventory_copy(small_sandbox, "not-persistent.yaml", {"persistent": False})
    server = wrong.regions[0].stripes[0].servers[0]
    with pytest.raises(StepFailed) as refused:
        preflight(wrong, pool, PlanOptions.from_inventory(wrong))
    message = str(refused.value)
    assert message.startswith("the tc-config disagrees with the inventory: ")
    assert (
        f'{server.tc_config} on {server.host}: <restartable enabled="true"> but the inventory '
        "says persistent: false for region east" in message
    )
    assert message.endswith("fix the inventory (or the file) and rerun")
    assert disruptive(small_sandbox, t0) == []
    reads = [
        e
        for e in small_sandbox.journal(t0)
        if e["event"] == "command" and "head -c" in e["command"]
    ]
    assert {e["host"] for e in reads} == {s.host for s in wrong.regions[0].stripes[0].servers}


def test_a_license_key_lacking_fields_only_warns(small_sandbox: E2ESandbox, pool: HostPool) -> None:
    """Issue 13, item 8: a field the tool cannot find is a warning naming the file and the
    field, never a refusal; a key without an expiry date never expires."""
    t0 = max(float(e["t"]) for e in small_sandbox.journal())
    key = small_sandbox.directory.parent / "unversioned" / "terracotta-license.key"
    license.write_license(key, expiry=None, version=None)
    inv = inventory_copy(small_sandbox, "unversioned-key.yaml", {"license_file": str(key)})
    result = preflight(inv, pool, PlanOptions.from_inventory(inv, target_version="4.2.1"))
    assert result.warnings[0] == (
        f"license_file {key}: no 'Version' field; whether it covers 4.2 was not checked"
    )
    assert f"license {key} fits 4.2.1 through " in result.checks[1]
    assert result.checks[1].endswith(": never expires (no expiry date)")
    assert disruptive(small_sandbox, t0) == []


def stage(sandbox: E2ESandbox, pool: HostPool, version: str) -> dict[str, StagedKit]:
    inv = sandbox.inventory
    kit = inv.kit_for(version)
    assert kit is not None
    path = fetch_kit(kit, cache_dir=sandbox.directory.parent / "kit-cache")
    return stage_kit(pool, inv, kit, path, Path(inv.license_file))


def test_a_backup_is_taken_on_the_active_before_the_first_stop_and_once(
    small_sandbox: E2ESandbox, pool: HostPool
) -> None:
    inv = small_sandbox.inventory
    options = PlanOptions.from_inventory(inv, target_version="4.2.1")
    result = preflight(inv, pool, options)
    assert "every tc-config agrees with the inventory" in result.checks
    t0 = max(float(e["t"]) for e in small_sandbox.journal())
    staged = stage(small_sandbox, pool, "4.2.1")
    ctx = dataclasses.replace(
        ServerOps.create(inv, pool, target="4.2.1", staged=staged), run_tag=RUN_TAG
    )
    region, stripe = inv.regions[0], inv.regions[0].stripes[0]
    records = upgrade_mirrors(ctx, region, stripe)

    active, mirror = stripe.servers
    backup = records[0]
    folder = Path(active.tc_config).parent / "data-backup" / f"bm-upgrade-{RUN_TAG}"
    assert (backup.node, backup.action, backup.skipped) == (active.name, "backup-data", False)
    assert backup.did == (
        f"backup bm-upgrade-{RUN_TAG} of stripe east/{stripe.name} taken on {active.name}: "
        f"{active.host}:{folder}",
    )
    events = small_sandbox.journal(t0)
    commands = [(float(e["t"]), str(e["command"])) for e in events if e["event"] == "command"]
    backup_at = [t for t, c in commands if "tools/management-console/bin/backup-data.sh" in c]
    stops = [t for t, c in commands if "stop-tc-server.sh" in c]
    assert len(backup_at) == 1 and stops and backup_at[0] < min(stops)
    written = [e for e in events if e["event"] == "data_backup"]
    assert [(e["server"], e["path"]) for e in written] == [(active.name, str(folder))]
    store = folder / "objectdb" / "store.jsonl"
    live = Path(active.data_dir) / "objectdb" / "store.jsonl"
    assert store.is_file() and store.stat().st_size > 0
    assert live.read_text(encoding="utf-8").startswith(store.read_text(encoding="utf-8")[:200])
    assert {n: s.node_state.version for n, s in ctx.observe_servers([mirror]).items()} == {
        mirror.name: "4.2.1"
    }

    # A re-execution of the step takes no second backup: the stripe's upgrade has begun.
    again = upgrade_mirrors(ctx, region, stripe)
    assert all(r.action != "backup-data" for r in again)
    later = [
        e
        for e in small_sandbox.journal(t0)
        if e["event"] == "command" and "backup-data" in e["command"]
    ]
    assert len(later) == 1


def test_two_versions_resume_to_the_newer_and_a_third_is_refused(
    small_sandbox: E2ESandbox, pool: HostPool
) -> None:
    inv = small_sandbox.inventory
    active, mirror = inv.regions[0].stripes[0].servers
    client = inv.regions[0].clients[0]
    resumed = preflight(inv, pool, PlanOptions.from_inventory(inv, target_version="4.2.1"))
    assert resumed.view.versions()[mirror.name] == "4.2.1"
    assert resumed.view.versions()[active.name] == "4.2.0"

    kits = [k.model_dump() for k in inv.kits]
    kits.append({**kits[0], "version": "4.2.2"})
    third = inventory_copy(small_sandbox, "third.yaml", {"kits": kits, "target_version": "4.2.2"})
    with pytest.raises(PlanRefused) as refused:
        preflight(third, pool, PlanOptions.from_inventory(third))
    assert refused.value.reasons == [
        f"the nodes run 2 versions (4.2.0: {active.name}, {client.name}; 4.2.1: {mirror.name}) "
        "and the target is 4.2.2: every server and client must run one version before an "
        "upgrade starts (only a mix of one version and 4.2.2 is an upgrade to resume); bring "
        "the odd nodes to one version first"
    ]
