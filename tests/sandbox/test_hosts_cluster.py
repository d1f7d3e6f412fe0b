"""`sandbox up` on the shared small sandbox: inventory, hosts, kits over HTTP, SSH, verify."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path

from bm_upgrade.inventory import load_inventory
from bm_upgrade.inventory.scripts import script_argv
from bm_upgrade.remote.quoting import shell
from bm_upgrade.sandbox import cluster

from .conftest import Sandbox, ssh_run


def test_up_writes_an_inventory_the_tool_accepts(small_sandbox: Sandbox) -> None:
    inventory = load_inventory(small_sandbox.inventory)
    assert inventory.target_version == "4.2.1"
    assert [k.version for k in inventory.kits] == ["4.2.0", "4.2.1"]
    assert inventory.ssh.known_hosts and not inventory.ssh.accept_unknown_host_keys
    hosts = inventory.hosts()
    assert len(hosts) == len(set(hosts)) == 3
    block = str(small_sandbox.info["block"])
    assert all(host.startswith(block + ".") for host in hosts)
    for _, _, server in inventory.servers():
        root = Path(server.install_dir)
        assert (root / "server" / "bin" / "start-tc-server.sh").exists()
        assert (root / "terracotta-license.key").exists()
        assert Path(server.tc_config).exists()
    client = inventory.regions[0].clients[0]
    assert (
        sorted(p.name for p in Path(client.lib_dir).iterdir())
        == ["ehcache-ee-2.10.0.jar", "terracotta-toolkit-runtime-ee-4.2.0.jar"]
        or len(list(Path(client.lib_dir).glob("*.jar"))) == 2
    )


def test_kits_are_served_over_http_with_their_sha256(small_sandbox: Sandbox) -> None:
    inventory = load_inventory(small_sandbox.inventory)
    for kit in inventory.kits:
        with urllib.request.urlopen(kit.url, timeout=5) as response:
            body = response.read()
        assert hashlib.sha256(body).hexdigest() == kit.sha256
    license_text = Path(inventory.license_file).read_text()
    assert "\nProduct: BigMemory Max\n" in license_text
    assert not list(small_sandbox.directory.glob("kits/**/terracotta-license.key"))


def test_every_host_answers_ssh_with_the_inventory_settings(small_sandbox: Sandbox) -> None:
    inventory = load_inventory(small_sandbox.inventory)
    for _, _, server in inventory.servers():
        connection = small_sandbox.connect(server.host)
        try:
            # The inventory names each server's Java (java_home): a login has none.
            code, out, err = ssh_run(connection, shell(script_argv(server, "version.sh")))
        finally:
            connection.close()
        assert code == 0, err
        assert out.startswith("Terracotta Enterprise 4.2.0")
    events = [
        json.loads(line)
        for line in (small_sandbox.directory / "journal.jsonl").read_text().splitlines()
    ]
    commands = [e for e in events if e["event"] == "command"]
    assert {e["host"] for e in commands} >= {s.host for _, _, s in inventory.servers()}


def test_clients_write_and_verify_finds_every_write(small_sandbox: Sandbox) -> None:
    result = cluster.verify(small_sandbox.directory)
    assert result["acked"] > 0
    assert result["lost"] == 0
    assert list(result["per_stripe"]) == ["east/stripe1"]


def test_a_second_up_in_the_same_folder_is_refused(small_sandbox: Sandbox) -> None:
    import pytest

    with pytest.raises(cluster.SandboxError, match="already running"):
        cluster.up("small", small_sandbox.directory)
    # The refusal stopped nothing.
    assert cluster.verify(small_sandbox.directory)["lost"] == 0
