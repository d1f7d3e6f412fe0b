"""`sandbox up`: reserve a block, lay out the hosts, start everything in order, write the
inventory.

The order: the kit HTTP server and one sshd per host, the first server of every stripe (so it
becomes ACTIVE), the mirrors, the client apps, then the WAN orchestrators. Anything that fails
stops everything started so far (`down`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bm_upgrade.sandbox import blocks, fault_kits, java, logins, sshd, sshkeys, wrapper
from bm_upgrade.sandbox.cluster import launch, layout
from bm_upgrade.sandbox.cluster.inventory_file import write_inventory
from bm_upgrade.sandbox.cluster.launch import SandboxError
from bm_upgrade.sandbox.cluster.stop import down, running_pids
from bm_upgrade.sandbox.hosts import plan_hosts
from bm_upgrade.sandbox.topology import load_topology
from bm_upgrade.sandbox.topology_model import Topology


def up(
    topology_path: str | Path,
    directory: Path,
    *,
    timeout_s: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Start the sandbox described by ``topology_path`` in ``directory``; return the inventory.

    Raises:
        TopologyError: the topology file is invalid.
        SandboxError: something did not come up; everything started is stopped again.
    """
    say = progress or (lambda _msg: None)
    topology = load_topology(topology_path)
    directory = directory.resolve()
    if (directory / "sandbox.json").exists() and running_pids(directory):
        raise SandboxError(
            f"a sandbox is already running in {directory}; run "
            f"`bm-upgrade sandbox down --dir {directory}` first"
        )
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return _up(topology, directory, timeout_s, say)
    except BaseException:
        down(directory)
        raise


def _up(topology: Topology, directory: Path, timeout_s: float, say: Callable[[str], None]) -> Path:
    start = time.monotonic()
    user = logins.login_user()
    port = logins.default_port()
    block = blocks.reserve_block(directory)
    plan = plan_hosts(topology, directory, block)
    for folder in ("run", "ledgers", "faults", "kits", "ssh", "hosts", "cache"):
        (directory / folder).mkdir(exist_ok=True)
    (directory / "journal.jsonl").touch()
    layout.write_sandbox_json(topology, directory, plan, block=block, user=user, port=port)

    say("building kits")
    tarballs = layout.build_kits(topology, directory)

    say("laying out hosts")
    layout.lay_out_hosts(topology, directory, plan, tarballs[topology.version])

    logins.grant_traverse(directory)
    logins.give_to_user(directory, user)
    key = sshkeys.create_client_key(directory / "ssh" / "id_ed25519")
    command_wrapper = wrapper.install_wrapper(directory / "ssh")

    say(f"starting {len(plan.hosts)} sshd and the kit server on {block}.0/24")
    http_pid = launch.start_detached(
        [
            wrapper.wrapper_python(),
            "-m",
            "http.server",
            str(layout.KIT_PORT),
            "--bind",
            plan.kit_host,
            "--directory",
            str(directory / "kits"),
        ],
        directory / "run" / "kits-http.log",
        user,
        cwd=directory / "kits",
    )
    (directory / "run" / "kits-http.pid").write_text(f"{http_pid}\n", encoding="ascii")

    def start_host(address: str) -> sshd.SshdHandle:
        root = directory / "hosts" / address
        return sshd.start_sshd(
            address,
            port,
            root,
            authorized_key=key.public_line,
            login_user=user,
            journal=directory / "journal.jsonl",
            wrapper=command_wrapper,
            environment={
                **java.login_environment(topology.java_home, java.java_home_of(root)),
                "PATH": fault_kits.login_path(root),  # faults' stand-ins first (disk-full)
            },
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        handles = list(pool.map(start_host, plan.hosts))
    sshkeys.write_known_hosts(directory / "ssh" / "known_hosts", handles)
    sshd.wait_for_port(plan.kit_host, layout.KIT_PORT, timeout_s=10)

    deadline = start + timeout_s
    say("starting the first server of every stripe")
    firsts = [s for s in plan.servers if s.index == 0]
    mirrors = [s for s in plan.servers if s.index > 0]
    for server in firsts:
        launch.start_server(server, user)
    launch.wait_states(firsts, {"ACTIVE-COORDINATOR"}, deadline)
    if mirrors:
        say("starting the mirrors")
        for server in mirrors:
            launch.start_server(server, user)
        launch.wait_states(mirrors, {"PASSIVE-STANDBY"}, deadline)

    if plan.clients:
        say("starting the clients")
        for client in plan.clients:
            launch.run_as(user, ["/bin/sh", "-c", client.start_command], cwd=client.root)
        launch.wait_clients_write(directory, [c.name for c in plan.clients], deadline)
    launch.start_wan(plan, user, deadline, say)

    inventory = write_inventory(
        topology, directory, plan, user=user, port=port, key_file=key.private, tarballs=tarballs
    )
    logins.give_to_user(directory / "inventory.yaml", user)
    say(f"up in {time.monotonic() - start:.1f} s; inventory: {inventory}")
    return inventory
