"""The active's side of replication: one link per passive mirror on the tsa-group-port.

A joining mirror is PASSIVE-UNINITIALIZED; after the sync time (``sync_s`` plus
``sync_s_per_mb`` per MB of data) the active snapshots its data under the write lock, marks
the link standby and queues the snapshot ahead of every later write, so the mirror holds
exactly what the active holds. A write is acknowledged to the client only once every standby
link has acknowledged it (or died).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import tccommon
    from bm_upgrade.sandbox.kit_files.server.lib.tcserver import Server
else:
    import tccommon


class PassiveLink:
    """The active's connection to one mirror."""

    def __init__(self, name: str, sock: socket.socket) -> None:
        self.name = name
        self.sock = sock
        self.standby = False
        self.dead = False
        self.acked = 0
        self.outbox: queue.Queue[bytes | None] = queue.Queue()

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message; the link's sender thread writes them in order."""
        self.outbox.put(tccommon.encode(message))

    def sender(self) -> None:
        """Write queued messages until the link closes."""
        while True:
            data = self.outbox.get()
            if data is None or self.dead:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                self.dead = True
                return

    def close(self) -> None:
        """Stop the sender and close the socket."""
        self.dead = True
        self.outbox.put(None)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class Replicator:
    """Everything the active does for its mirrors and for acknowledged writes."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.links: dict[str, PassiveLink] = {}
        self.seq = 0

    def standby_names(self) -> list[str]:
        """Mirrors currently PASSIVE-STANDBY (as the active sees them)."""
        with self.server.lock:
            return [n for n, link in self.links.items() if link.standby and not link.dead]

    def serve_join(self, sock: socket.socket, stream: BinaryIO, hello: dict[str, Any]) -> None:
        """Run one mirror's link (called on the group-port connection's thread)."""
        server = self.server
        name = str(hello.get("name", "?"))
        version = str(hello.get("version", ""))
        if tccommon.major_minor(version) != tccommon.major_minor(server.version):
            server.log(
                f"Refusing {name}: it runs {version}, this stripe runs "
                f"{server.version} (a different minor version cannot join)"
            )
            sock.sendall(
                tccommon.encode({"op": "refused", "reason": "version", "version": server.version})
            )
            return
        if tccommon.fault(server.sandbox, "partition", name):
            server.log(
                f"Mirror {name} cannot be reached on the group port (sandbox fault partition)"
            )
            return
        link = PassiveLink(name, sock)
        with server.lock:
            if server.state != server.ACTIVE:
                sock.sendall(
                    tccommon.encode(
                        {"op": "refused", "reason": "not-active", "state": server.state}
                    )
                )
                return
            old = self.links.pop(name, None)
            self.links[name] = link
        if old is not None:
            old.close()
        server.log(f"Mirror {name} ({version}) joined; synchronizing")
        threading.Thread(target=link.sender, daemon=True).start()
        threading.Thread(target=self._sync, args=(link,), daemon=True).start()
        threading.Thread(target=self._cut_when_partitioned, args=(link,), daemon=True).start()
        try:
            self._read_acks(link, stream)
        finally:
            with server.cond:
                link.dead = True
                if self.links.get(name) is link:
                    del self.links[name]
                server.cond.notify_all()
            link.close()
            if not server.stopping.is_set():
                server.log(f"Mirror {name} left")

    def _read_acks(self, link: PassiveLink, stream: BinaryIO) -> None:
        server = self.server
        for message in tccommon.messages(stream):
            if message.get("op") == "ack":
                with server.cond:
                    link.acked = max(link.acked, int(message["seq"]))
                    server.cond.notify_all()
            elif message.get("op") == "synced":
                server.log(f"Mirror {link.name} is PASSIVE-STANDBY")

    def _cut_when_partitioned(self, link: PassiveLink) -> None:
        """Sandbox fault partition: the mirror's link is lost while the fault names it."""
        server = self.server
        while not link.dead and not server.stopping.wait(0.1):
            if tccommon.fault(server.sandbox, "partition", link.name):
                server.log(
                    f"Lost the group connection of mirror {link.name} (sandbox fault partition)"
                )
                link.close()
                return

    def _sync(self, link: PassiveLink) -> None:
        server = self.server
        mb = server.store.size_bytes / 1_000_000
        delay = server.sync_s + server.sync_s_per_mb * mb
        if server.stopping.wait(delay) or link.dead:
            return
        with server.lock:
            if link.dead or server.state != server.ACTIVE:
                return
            snapshot = dict(server.store.data)
            link.standby = True
            link.acked = self.seq
            link.send({"op": "snapshot", "data": snapshot, "epoch": server.epoch, "seq": self.seq})

    def put(self, key: str, value: str, timeout_s: float = 30.0) -> bool:
        """Apply a write and wait until every standby mirror has it; False if not active."""
        server = self.server
        with server.cond:
            if server.state != server.ACTIVE:
                return False
            server.store.put(key, value)
            self.seq += 1
            seq = self.seq
            targets = [link for link in self.links.values() if link.standby and not link.dead]
            for link in targets:
                link.send({"op": "rep", "seq": seq, "key": key, "value": value})
            deadline = time.monotonic() + timeout_s
            while any(not link.dead and link.acked < seq for link in targets):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # A mirror that cannot keep up is dropped, as a real active zaps it.
                    for link in targets:
                        if link.acked < seq:
                            link.close()
                    break
                server.cond.wait(remaining)
            # A mirror link closed by our own stop proves nothing: never acknowledge then.
            return server.state == server.ACTIVE and not server.stopping.is_set()

    def close_all(self) -> None:
        """Close every mirror link (the active is stopping)."""
        with self.server.lock:
            links = list(self.links.values())
            self.links.clear()
        for link in links:
            link.close()
