"""The server's TCP listeners: one accepting thread per port, one thread per connection."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import tccommon
else:
    import tccommon

Handler = Callable[[socket.socket, BinaryIO], Any]


class Listeners:
    """The ports one server listens on, bound on its ``host``; :meth:`close` closes them."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._sockets: list[socket.socket] = []

    def listen(self, port: int, handler: Handler) -> None:
        """Bind ``port`` and serve every connection with ``handler`` (raises StartupError)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
        except OSError as exc:
            sock.close()
            raise tccommon.StartupError(
                f"Cannot bind {self.host}:{port}: {exc.strerror}; "
                "is another server using that port?"
            ) from None
        sock.listen(64)
        self._sockets.append(sock)
        threading.Thread(target=self._accept, args=(sock, handler), daemon=True).start()

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()

    def _accept(self, sock: socket.socket, handler: Handler) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_serve_conn, args=(conn, handler), daemon=True).start()


def _serve_conn(conn: socket.socket, handler: Handler) -> None:
    try:
        with conn, conn.makefile("rb") as stream:
            handler(conn, stream)
    except (OSError, ValueError, KeyError):
        pass  # a peer or client that went away mid-message; it will reconnect
