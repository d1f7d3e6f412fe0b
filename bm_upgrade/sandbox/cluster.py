"""`sandbox up | down | verify`: a whole BigMemory Max look-alike cluster on this machine.

``up`` reserves a loopback block, lays out one root folder per host under ``DIR/hosts``,
builds and serves the kits, starts one sshd per host, the servers (first server of each stripe
first, so it becomes ACTIVE), then the client apps, then the WAN orchestrators (``wan.py``),
and writes ``DIR/inventory.yaml``.
``down`` stops everything by PID, then anything still running from under DIR. ``verify``
reads every ledger back from the current actives. Layout of DIR::

    sandbox.json  journal.jsonl  inventory.yaml  terracotta-license.key
    kits/bigmemory-max-<v>.tar.gz (+ .sha256)    served over HTTP on <block>.254:8080
    ssh/id_ed25519[.pub] ssh/known_hosts ssh/cmdwrap.pyc
    hosts/<address>/{etc,opt,var,logs,run}       one per server / client / orchestrator
    run/*.pid  ledgers/<client>.jsonl  faults/  cache/ (kits unpacked for client apps)
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bm_upgrade.sandbox import blocks, processes, protocol, sshd, wan
from bm_upgrade.sandbox.hosts import ClientPlan, HostPlan, OrchestratorPlan, ServerPlan, plan_hosts
from bm_upgrade.sandbox.topology import Topology, load_topology

KIT_PORT = 8080
STAT_PATH = "/tc-management-api/v2/local/stat"
LOGIN_PATH = "/usr/local/bin:/usr/bin:/bin"


class SandboxError(Exception):
    """The sandbox could not be brought up, stopped or verified; the message says where."""


# -- up ---------------------------------------------------------------------------------------
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
    user = sshd.login_user()
    port = sshd.default_port()
    block = blocks.reserve_block(directory)
    plan = plan_hosts(topology, directory, block)
    for folder in ("run", "ledgers", "faults", "kits", "ssh", "hosts", "cache"):
        (directory / folder).mkdir(exist_ok=True)
    (directory / "journal.jsonl").touch()
    _write_sandbox_json(topology, directory, plan, block=block, user=user, port=port)

    say("building kits")
    from bm_upgrade.sandbox import kits, license

    tarballs = {v: kits.build_kit(v, directory / "kits") for v in topology.kits}
    for tarball in tarballs.values():
        tarball.with_name(tarball.name + ".sha256").write_text(
            f"{kits.sha256_of(tarball)}  {tarball.name}\n", encoding="utf-8"
        )
    license_file = directory / "terracotta-license.key"
    license.write_license(license_file, expiry=datetime.date.today() + datetime.timedelta(days=365))

    say("laying out hosts")
    _lay_out_hosts(topology, directory, plan, tarballs[topology.version], license_file)

    sshd.grant_traverse(directory)
    sshd.give_to_user(directory, user)
    key = sshd.create_client_key(directory / "ssh" / "id_ed25519")
    wrapper = sshd.install_wrapper(directory / "ssh")

    say(f"starting {len(plan.hosts)} sshd and the kit server on {block}.0/24")
    http_pid = _start_detached(
        [
            sshd.wrapper_python(),
            "-m",
            "http.server",
            str(KIT_PORT),
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
            wrapper=wrapper,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        handles = list(pool.map(start_host, plan.hosts))
    sshd.write_known_hosts(directory / "ssh" / "known_hosts", handles)
    sshd.wait_for_port(plan.kit_host, KIT_PORT, timeout_s=10)

    deadline = start + timeout_s
    say("starting the first server of every stripe")
    firsts = [s for s in plan.servers if s.index == 0]
    mirrors = [s for s in plan.servers if s.index > 0]
    for server in firsts:
        _start_server(server, user)
    _wait_states(firsts, {"ACTIVE-COORDINATOR"}, deadline)
    if mirrors:
        say("starting the mirrors")
        for server in mirrors:
            _start_server(server, user)
        _wait_states(mirrors, {"PASSIVE-STANDBY"}, deadline)

    if plan.clients:
        say("starting the clients")
        for client in plan.clients:
            _run_as(user, ["/bin/sh", "-c", client.start_command], cwd=client.root)
        _wait_clients_write(directory, [c.name for c in plan.clients], deadline)
    _start_wan(plan, user, deadline, say)

    inventory = write_inventory(
        topology, directory, plan, user=user, port=port, key_file=key.private, tarballs=tarballs
    )
    sshd.give_to_user(directory / "inventory.yaml", user)
    say(f"up in {time.monotonic() - start:.1f} s; inventory: {inventory}")
    return inventory


def _write_sandbox_json(
    topology: Topology, directory: Path, plan: HostPlan, *, block: str, user: str, port: int
) -> None:
    data: dict[str, Any] = {
        "dir": str(directory),
        "journal": str(directory / "journal.jsonl"),
        "faults_dir": str(directory / "faults"),
        "ledger_dir": str(directory / "ledgers"),
        "run_dir": str(directory / "run"),
        "block": block,
        "login_user": user,
        "ssh_port": port,
        "kit_url": f"http://{plan.kit_host}:{KIT_PORT}/",
        "persistent": topology.persistent,
        "reconnect_window_s": topology.reconnect_window_s,
        "timing": {
            "start_s": topology.timing.start_s,
            "election_s": topology.timing.election_s,
            "sync_s": topology.timing.sync_s,
            "sync_s_per_mb": topology.timing.sync_s_per_mb,
        },
        "servers": {
            s.name: {
                "region": s.region,
                "stripe": s.stripe,
                "host": s.host,
                "tsa_port": s.tsa_port,
                "management_port": s.management_port,
                "install_dir": str(s.install_dir),
            }
            for s in plan.servers
        },
        "clients": {c.name: {"region": c.region, "host": c.host} for c in plan.clients},
        "orchestrators": wan.sandbox_json_entries(plan.orchestrators),
        "wan_master_region": topology.wan_master_region(),
    }
    (directory / "sandbox.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _lay_out_hosts(
    topology: Topology, directory: Path, plan: HostPlan, tarball: Path, license_file: Path
) -> None:
    from bm_upgrade.sandbox import kits, tcconfig

    def server_host(server: ServerPlan) -> None:
        kits.unpack_kit(tarball, server.install_dir)
        shutil.copyfile(license_file, server.install_dir / "terracotta-license.key")
        for folder in (server.data_dir, server.logs_dir, server.console_log.parent):
            folder.mkdir(parents=True, exist_ok=True)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(server_host, plan.servers))
    if plan.orchestrators:
        wan.lay_out(topology, plan.orchestrators, tarball, license_file)
    for region in topology.regions:
        stripes = [
            {"name": stripe, "servers": [s.tc_entry() for s in servers]}
            for stripe, servers in plan.stripes_of(region.name)
        ]
        first = plan.servers_of(region.name)[0].tc_config
        tcconfig.write_tc_config(
            first,
            stripes=stripes,
            persistent=topology.persistent,
            reconnect_window_s=topology.reconnect_window_s,
            election_s=topology.timing.election_s,
        )
        for server in plan.servers_of(region.name)[1:]:
            server.tc_config.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(first, server.tc_config)
    if plan.clients:
        from bm_upgrade.sandbox import clientapp

        client_kit = directory / "cache" / f"bigmemory-max-{topology.version}"
        if not client_kit.exists():
            kits.unpack_kit(tarball, client_kit)
        for client in plan.clients:
            client.root.mkdir(parents=True, exist_ok=True)
            clientapp.install_client_app(client.app_dir, client_kit, name=client.name)


# -- processes --------------------------------------------------------------------------------
def _login_env(user: str) -> dict[str, str]:
    """The environment an SSH login gets, so `up` starts programs the way the tool does."""
    home = os.path.expanduser(f"~{user}")
    return {
        "PATH": LOGIN_PATH,
        "HOME": home,
        "USER": user,
        "LOGNAME": user,
        "SHELL": "/bin/sh",
        "LANG": "C.UTF-8",
    }


def _run_as(user: str, argv: list[str], cwd: Path, timeout_s: float = 30.0) -> str:
    switch = sshd.is_root() and user != "root"
    result = subprocess.run(
        argv,
        cwd=cwd,
        env=_login_env(user),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        stdin=subprocess.DEVNULL,
        user=user if switch else None,
        group=user if switch else None,
        extra_groups=[] if switch else None,
        start_new_session=True,
    )
    if result.returncode != 0:
        raise SandboxError(
            f"`{' '.join(argv)}` failed with exit code {result.returncode}: "
            f"{(result.stderr or result.stdout).strip()[-400:]}"
        )
    return result.stdout


def _start_detached(argv: list[str], log: Path, user: str, cwd: Path) -> int:
    """Start ``argv`` detached (own session, output to ``log``) as ``user``; return its pid."""
    script = 'log=$1; shift; nohup "$@" >"$log" 2>&1 </dev/null & echo $!'
    out = _run_as(user, ["/bin/sh", "-c", script, "sh", str(log), *argv], cwd=cwd)
    return int(out.strip().splitlines()[-1])


def _start_server(server: ServerPlan, user: str) -> None:
    pid = _start_detached(
        [
            str(server.install_dir / "server" / "bin" / "start-tc-server.sh"),
            "-f",
            str(server.tc_config),
            "-n",
            server.name,
        ],
        server.console_log,
        user,
        cwd=server.root,
    )
    pid_file = server.directory / "run" / f"script-server-{server.name}.pid"
    pid_file.write_text(f"{pid}\n", encoding="ascii")


def _start_wan(plan: HostPlan, user: str, deadline: float, say: Callable[[str], None]) -> None:
    try:
        wan.start_all(
            plan.orchestrators, lambda orch: _start_orchestrator(orch, user), deadline, say
        )
    except TimeoutError as exc:
        raise SandboxError(str(exc)) from None


def _start_orchestrator(orch: OrchestratorPlan, user: str) -> None:
    _start_detached(
        [str(orch.install_dir / "server" / "bin" / "start-wan.sh"), "-f", str(orch.wan_xml)],
        orch.console_log,
        user,
        cwd=orch.root,
    )


def server_stat(host: str, port: int, timeout_s: float = 1.0) -> dict[str, Any] | None:
    """The server's REST stat, or None when it does not answer."""
    return protocol.get_json(f"http://{host}:{port}{STAT_PATH}", timeout_s)


def _wait_states(servers: list[ServerPlan], states: set[str], deadline: float) -> None:
    pending = list(servers)
    while pending:
        pending = [
            s
            for s in pending
            if (server_stat(s.host, s.management_port) or {}).get("state") not in states
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            server = pending[0]
            seen = (server_stat(server.host, server.management_port) or {}).get(
                "state", "no answer"
            )
            raise SandboxError(
                f"server {server.name} ({server.host}) did not reach {'/'.join(sorted(states))} "
                f"in time (state: {seen}); see {server.console_log}"
            )
        time.sleep(0.05)


def _wait_clients_write(directory: Path, clients: list[str], deadline: float) -> None:
    pending = list(clients)
    while pending:
        pending = [c for c in pending if not _ledger_has_lines(directory, c)]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise SandboxError(
                f"client {pending[0]} acknowledged no write in time; see its "
                "log under its host folder"
            )
        time.sleep(0.05)


def _ledger_has_lines(directory: Path, client: str) -> bool:
    try:
        return (directory / "ledgers" / f"{client}.jsonl").stat().st_size > 0
    except FileNotFoundError:
        return False


# -- down -------------------------------------------------------------------------------------
def recorded_pids(directory: Path) -> list[int]:
    """Every pid the sandbox recorded (DIR/run/*.pid, each host's sshd pid file)."""
    pids: list[int] = []
    for pid_file in [*directory.glob("run/*.pid"), *directory.glob("hosts/*/run/*.pid")]:
        try:
            pids.append(int(pid_file.read_text(encoding="ascii").strip()))
        except (OSError, ValueError):
            continue
    return pids


def processes_under(directory: Path) -> list[int]:
    """Live processes whose command line or working folder is under ``directory``."""
    return processes.processes_mentioning(directory)


def running_pids(directory: Path) -> list[int]:
    """Recorded pids still alive, plus live processes under ``directory``."""
    # A recorded pid counts only while it is still ours: pids are recycled.
    alive = {pid for pid in recorded_pids(directory) if processes.belongs_to(pid, directory)}
    return sorted(alive | set(processes_under(directory)))


def down(directory: Path, timeout_s: float = 10.0) -> list[int]:
    """Stop every process of the sandbox in ``directory``; idempotent. Returns the pids seen."""
    directory = directory.resolve()
    seen: set[int] = set()
    from bm_upgrade.sandbox import faults

    faults.resume_hosts(directory)  # a SIGSTOPped sshd would ignore SIGTERM
    seen |= set(running_pids(directory))  # for the count: the sshd sweep below stops most
    # sshd first: no new commands start while the rest stops.
    for pid_file in directory.glob("hosts/*/run/sshd.pid"):
        try:
            pid = int(pid_file.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            continue
        seen.add(pid)
        processes.stop_process_tree(pid, timeout_s=timeout_s, root=directory)
    for _ in range(3):
        pids = set(running_pids(directory))
        pids |= {child for pid in pids for child in processes.children_of(pid)}
        if not pids:
            break
        seen |= pids
        processes.stop_pids(sorted(pids), timeout_s=timeout_s)
    for pid_file in [*directory.glob("run/*.pid"), *directory.glob("hosts/*/run/*.pid")]:
        pid_file.unlink(missing_ok=True)
    leftover = running_pids(directory)
    if leftover:
        raise SandboxError(
            f"processes {leftover} under {directory} would not stop; kill them by hand"
        )
    blocks.release_block(directory)
    return sorted(seen)


# -- verify -----------------------------------------------------------------------------------
def _ledger(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    entries = []
    for ledger in sorted((directory / "ledgers").glob("*.jsonl")):
        for line in ledger.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    entries.append((ledger.stem, json.loads(line)))
                except ValueError:
                    continue  # a line being written right now
    return entries


def current_actives(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(region, stripe) -> the sandbox.json entry (plus name) of its ACTIVE server."""
    info = json.loads((directory / "sandbox.json").read_text(encoding="utf-8"))
    actives = {}
    for name, server in info["servers"].items():
        stat = server_stat(server["host"], server["management_port"])
        if stat and stat.get("role") == "ACTIVE":
            actives[(server["region"], server["stripe"])] = {**server, "name": name}
    return actives


def verify(directory: Path) -> dict[str, Any]:
    """Read every ledger; read each acknowledged key back from its stripe's current active.

    A key counts as found when the active returns its last acknowledged value, or a value
    acknowledged for it later (clients keep writing while verify reads).
    """
    from bm_upgrade.sandbox import protocol

    directory = directory.resolve()
    if not (directory / "sandbox.json").exists():
        raise SandboxError(
            f"no sandbox in {directory} (no sandbox.json); run `bm-upgrade sandbox up` first"
        )
    info = json.loads((directory / "sandbox.json").read_text(encoding="utf-8"))
    clients = info.get("clients", {})
    first = _ledger(directory)
    last: dict[tuple[str, str, str], int] = {}
    for i, (client, entry) in enumerate(first):
        region = clients.get(client, {}).get("region", "")
        last[(region, str(entry["stripe"]), str(entry["key"]))] = i
    actives = current_actives(directory)
    observed: dict[tuple[str, str, str], str | None] = {}
    for region, stripe, key in last:
        active = actives.get((region, stripe))
        observed[(region, stripe, key)] = (
            None if active is None else protocol.read_key(active["host"], active["tsa_port"], key)
        )
    later = _ledger(directory)
    per_stripe: dict[str, dict[str, int]] = {}
    lost_total = 0
    for (region, stripe, key), index in last.items():
        acceptable = {str(e["value"]) for _, e in later[index:] if str(e["key"]) == key}
        acceptable.add(str(first[index][1]["value"]))
        counts = per_stripe.setdefault(f"{region}/{stripe}", {"acked": 0, "lost": 0})
        counts["acked"] += 1
        if observed[(region, stripe, key)] not in acceptable:
            counts["lost"] += 1
            lost_total += 1
    return {
        "acked": len(last),
        "lost": lost_total,
        "writes": len(first),
        "per_stripe": dict(sorted(per_stripe.items())),
    }


# -- inventory --------------------------------------------------------------------------------
def write_inventory(
    topology: Topology,
    directory: Path,
    plan: HostPlan,
    *,
    user: str,
    port: int,
    key_file: Path,
    tarballs: dict[str, Path],
) -> Path:
    """Write ``DIR/inventory.yaml`` for this sandbox (what `bm-upgrade` then uses unchanged)."""
    import yaml

    from bm_upgrade.sandbox import kits

    timing = topology.timing
    # Generous multiples of the sandbox's time scale: a sync is sync_s (+ data), a failover
    # is election_s; the tool's own polling adds a little.
    sync_s = max(30.0, 20 * (timing.sync_s + timing.election_s))
    regions = []
    for region in topology.regions:
        regions.append(
            {
                "name": region.name,
                "stripes": [
                    {"name": stripe, "servers": [_server_entry(s) for s in servers]}
                    for stripe, servers in plan.stripes_of(region.name)
                ],
                "clients": [_client_entry(c) for c in plan.clients if c.region == region.name],
                "orchestrators": [
                    wan.inventory_entry(o) for o in plan.orchestrators if o.region == region.name
                ],
            }
        )
    newest = max(topology.kits, key=lambda v: tuple(int(p) for p in v.split(".")))
    inventory = {
        "cluster": _cluster_name(topology, directory),
        "target_version": newest,
        "kits": [
            {
                "version": v,
                "url": f"http://{plan.kit_host}:{KIT_PORT}/{t.name}",
                "sha256": kits.sha256_of(t),
            }
            for v, t in tarballs.items()
        ],
        "license_file": str(directory / "terracotta-license.key"),
        "ssh": {
            "user": user,
            "port": port,
            "key_file": str(key_file),
            "use_agent": False,
            "known_hosts": str(directory / "ssh" / "known_hosts"),
            "connect_timeout_s": 5,
            "command_timeout_s": 60,
            "keepalive_s": 0,
        },
        "probe_via": "rest",
        "persistent": topology.persistent,
        "wan_master_region": topology.wan_master_region(),
        "regions": regions,
        "window": {"enabled": False},
        "policy": {
            "failback": True,
            "delete_dirty_backups": False,
            "keep_previous_kit": True,
            "client_batch_size": 1,
            "parallel_stripes": 1,
            "timeouts": {
                "stop_s": 30,
                "start_s": 60,
                "sync_s": sync_s,
                "failover_s": max(30.0, 10 * timing.election_s),
                "client_s": 60,
                "orchestrator_s": 60,
            },
        },
    }
    path = directory / "inventory.yaml"
    header = (
        f"# Written by `bm-upgrade sandbox up` for the sandbox in {directory}.\n"
        "# Use it unchanged: bm-upgrade validate|plan|status|run " + str(path) + "\n"
    )
    path.write_text(header + yaml.safe_dump(inventory, sort_keys=False), encoding="utf-8")
    return path


def _server_entry(server: ServerPlan) -> dict[str, Any]:
    return {
        "name": server.name,
        "host": server.host,
        "install_dir": str(server.install_dir),
        "tc_config": str(server.tc_config),
        "data_dir": str(server.data_dir),
        "tsa_port": server.tsa_port,
        "management_port": server.management_port,
        "console_log": str(server.console_log),
    }


def _client_entry(client: ClientPlan) -> dict[str, Any]:
    return {
        "name": client.name,
        "host": client.host,
        "lib_dir": str(client.lib_dir),
        "stop_command": client.stop_command,
        "start_command": client.start_command,
        "status_command": client.status_command,
    }


def _cluster_name(topology: Topology, directory: Path) -> str:
    if topology.name:
        return topology.name
    cleaned = "".join(c if c.isalnum() else "_" for c in directory.name).strip("_")
    return ("sandbox_" + cleaned)[:48] if cleaned else "sandbox"
