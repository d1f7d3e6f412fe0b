"""The Terracotta client (L1) stand-in, shipped in ``terracotta-toolkit-runtime-ee-<v>.jar``.

A client's version is the version of the jar it was loaded from (its manifest). It connects to
the active of each stripe over the tsa-port, follows failover by retrying every server of the
stripe and resending the write that was not acknowledged, refuses a server of another minor
version, and gives up when no active answers within the reconnect window.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import tccommon
else:
    import tccommon

RETRY_PAUSE_S = 0.05
IO_TIMEOUT_S = 10.0


class ClientError(Exception):
    """The client cannot go on; ``code`` is the exit code the application should use."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def client_version() -> str:
    """The version of the jar this module was loaded from (manifest, else the file name)."""
    jar = Path(__file__).parent
    try:
        with zipfile.ZipFile(jar) as archive:
            manifest = archive.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
        match = re.search(r"^Implementation-Version:\s*(\S+)", manifest, re.MULTILINE)
        if match:
            return match.group(1)
    except (OSError, KeyError, zipfile.BadZipFile):
        pass
    match = re.search(r"-(\d+(?:\.\d+)+)\.jar$", jar.name)
    return match.group(1) if match else "0.0.0"


class StripeClient:
    """A connection to whichever server of one stripe is ACTIVE-COORDINATOR."""

    def __init__(
        self,
        stripe: str,
        servers: list[tuple[str, int]],
        *,
        client: str,
        version: str,
        reconnect_window_s: float = 120.0,
        stopping: threading.Event | None = None,
    ) -> None:
        self.stripe = stripe
        self.servers = servers
        self.client = client
        self.version = version
        self.reconnect_window_s = reconnect_window_s
        self.stopping = stopping or threading.Event()
        self._sock: socket.socket | None = None
        self._stream: BinaryIO | None = None
        self.connected_to = ""

    def close(self) -> None:
        """Drop the connection."""
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._stream = None

    def _try(self, host: str, port: int) -> bool:
        try:
            sock = tccommon.connect(host, port, IO_TIMEOUT_S)
        except OSError:
            return False
        stream = sock.makefile("rb")
        try:
            sock.sendall(
                tccommon.encode({"op": "hello", "client": self.client, "version": self.version})
            )
            answer = tccommon.decode(stream.readline(tccommon.MAX_LINE) or b"{}")
        except (OSError, ValueError):
            sock.close()
            return False
        if answer.get("ok"):
            self._sock, self._stream = sock, stream
            self.connected_to = f"{host}:{port}"
            self.reconnect_window_s = float(
                answer.get("reconnect_window_s", self.reconnect_window_s)
            )
            return True
        sock.close()
        if answer.get("error") == "version":
            raise ClientError(
                f"server {host}:{port} of stripe {self.stripe} refused client "
                f"{self.client} ({self.version}): {answer.get('message')}",
                2,
            )
        return False

    def _connect(self) -> None:
        """Find the stripe's active; raises ClientError after the reconnect window."""
        deadline = time.monotonic() + self.reconnect_window_s
        while not self.stopping.is_set():
            for host, port in self.servers:
                if self._try(host, port):
                    return
            if time.monotonic() > deadline:
                raise ClientError(
                    f"no active server of stripe {self.stripe} answered within "
                    f"the reconnect window ({self.reconnect_window_s:g} s); "
                    "restart the client",
                    3,
                )
            self.stopping.wait(RETRY_PAUSE_S)
        raise ClientError("stopping", 0)

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send a request to the active and return its answer, retrying through failover."""
        while True:
            if self._sock is None:
                self._connect()
            assert self._sock is not None and self._stream is not None
            try:
                self._sock.sendall(tccommon.encode(message))
                line = self._stream.readline(tccommon.MAX_LINE)
                answer = tccommon.decode(line) if line else {"ok": False, "error": "closed"}
            except (OSError, ValueError):
                answer = {"ok": False, "error": "closed"}
            if answer.get("ok"):
                return answer
            self.close()  # not active any more, or gone: find the new active and resend

    def put(self, key: str, value: str) -> None:
        """Write one entry; returns once the stripe acknowledged it."""
        self.call({"op": "put", "key": key, "value": value})

    def get(self, key: str) -> str | None:
        """Read one entry from the active."""
        value = self.call({"op": "get", "key": key}).get("value")
        return None if value is None else str(value)
