"""The mirror's side of replication: joining the active on its tsa-group-port, the sync, and
taking over when the active is lost.

A joining server is PASSIVE-UNINITIALIZED until the active's snapshot arrives, then
PASSIVE-STANDBY, applying and acknowledging every replicated write. A START-STATE server that
holds data of its own while an active runs is dirty: its data moves to a dirty backup and it
asks to be restarted (exit 11). When the link to the active ends, a standby waits
``election_s`` and the first standby in tc-config order takes over. The active's side is
``tcactive.py``.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import tccommon, tcelect
    from bm_upgrade.sandbox.kit_files.server.lib.tcserver import Server
else:
    import tccommon
    import tcelect

EXIT_RESTART = 11
"""The server's exit code for "restart me" (a dirty mirror); start-tc-server.sh relaunches it."""


def join(server: Server, active: dict[str, Any]) -> str:
    """Be a mirror of ``active`` until the link ends: 'takeover' when this server must fail
    over, 'retry' when it must look again, 'stopped' when it stops."""
    peer = next(p for p in server.peers if p["name"] == active["name"])
    if tccommon.major_minor(str(active["version"])) != tccommon.major_minor(server.version):
        raise tccommon.StartupError(
            f"Cannot join stripe {server.stripe['name']}: its active {active['name']} runs "
            f"{active['version']} and this server runs {server.version} (a different minor "
            "version)"
        )
    if server.state == server.START and server.store.has_disk_data():
        backup = server.store.move_to_dirty_backup()
        server.store.write_meta(int(server.store.read_meta()["epoch"]), was_active=False)
        server.log(
            f"Data in {server.store.objectdb} is dirty (an active is running); moved it "
            f"to {backup}; restarting"
        )
        server.event("dirty_backup", server=server.name, path=str(backup), action="created")
        server.request_stop(EXIT_RESTART)
        return "stopped"
    try:
        sock = tccommon.connect(peer["host"], peer["group_port"], 2.0)
    except OSError:
        return "retry"
    server.active_sock = sock
    sock.settimeout(None)
    server.set_state(server.UNINITIALIZED)
    # Sandbox fault no-sync: joined, but the sync never starts until the fault is cleared.
    while tccommon.fault(server.sandbox, "no-sync", server.name) and not server.stopping.wait(0.2):
        pass
    try:
        with sock, sock.makefile("rb") as stream:
            sock.sendall(
                tccommon.encode({"op": "join", "name": server.name, "version": server.version})
            )
            _mirror(server, sock, stream)
    except (OSError, ValueError, KeyError):
        pass
    finally:
        server.active_sock = None
    if server.stopping.is_set():
        return "stopped"
    return _after_active_lost(server, active)


def _mirror(server: Server, sock: socket.socket, stream: BinaryIO) -> None:
    for message in tccommon.messages(stream):
        op = message.get("op")
        if op == "rep":
            server.store.put(str(message["key"]), str(message["value"]))
            sock.sendall(tccommon.encode({"op": "ack", "seq": message["seq"]}))
        elif op == "snapshot":
            server.store.replace_all({str(k): str(v) for k, v in message["data"].items()})
            server.epoch = int(message["epoch"])
            server.store.write_meta(server.epoch, was_active=False)
            server.set_state(server.STANDBY)
            sock.sendall(tccommon.encode({"op": "synced"}))
        elif op == "refused":
            if message.get("reason") == "version":
                raise tccommon.StartupError(
                    f"The active of stripe {server.stripe['name']} runs "
                    f"{message.get('version')}; this server runs "
                    f"{server.version} (a different minor version)"
                )
            return


def _after_active_lost(server: Server, old: dict[str, Any]) -> str:
    """The link to the active ended: fail over if we are a standby and it is gone."""
    if server.state != server.STANDBY:
        server.log(
            f"Lost the active {old['name']} before the sync completed; this server "
            "cannot take over and waits for an active"
        )
        return "retry"
    server.log(f"Lost the active {old['name']}; election in {server.election_s:g} s")
    if server.stopping.wait(server.election_s):
        return "stopped"
    statuses = tcelect.peer_statuses(server)
    if any(s["state"] == server.ACTIVE for s in statuses.values()):
        server.set_state(server.UNINITIALIZED)  # another server won: resync from it
        return "retry"
    standbys = [server.status()] + [s for s in statuses.values() if s["state"] == server.STANDBY]
    first = min(standbys, key=lambda s: int(s["index"]))
    return "takeover" if first["name"] == server.name else "retry"
