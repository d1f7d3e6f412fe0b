"""A webhook receiver on 127.0.0.1 for the notification tests: a real HTTP server that keeps
every JSON body it is sent."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Receiver:
    """What the webhook was sent (``bodies``) and what it answers (``status``)."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


@contextlib.contextmanager
def webhook_receiver(path: str = "/hook", status: int = 200) -> Iterator[Receiver]:
    """A receiver listening at ``http://127.0.0.1:<port><path>`` until the block ends."""
    box = Receiver(status=status)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            box.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(box.status)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output clean

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    box.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
