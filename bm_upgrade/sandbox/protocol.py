"""Talk to sandbox servers the way a client does (for ``sandbox verify`` and tests), and read
their REST stat the way the tool does.

The wire protocol (newline-delimited JSON on the tsa-port and tsa-group-port) is described in
ENGINE.md and implemented once, in the kit's shared module.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.request
from typing import Any

from bm_upgrade.sandbox.kit_files.server.lib import tccommon
from bm_upgrade.sandbox.security import ManagementAuth

stripe_for_key = tccommon.stripe_for_key
STAT_PATH = "/tc-management-api/v2/local/stat"


class NotActive(Exception):
    """The server answered but is not its stripe's ACTIVE-COORDINATOR."""


def _ask(host: str, tsa_port: int, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    answer = tccommon.request(host, tsa_port, message, timeout_s=timeout_s)
    if not answer.get("ok"):
        if answer.get("error") == "not-active":
            raise NotActive(f"{host}:{tsa_port} is {answer.get('state')}, not the active")
        raise ValueError(f"{host}:{tsa_port} refused the request: {answer}")
    return answer


def read_key(host: str, tsa_port: int, key: str, timeout_s: float = 2.0) -> str | None:
    """The value of ``key`` on the active at host:tsa_port (None when absent).

    Raises:
        NotActive: the server is not the active.
        OSError: the server cannot be reached.
    """
    value = _ask(host, tsa_port, {"op": "get", "key": key}, timeout_s).get("value")
    return None if value is None else str(value)


def read_keys(
    host: str, tsa_port: int, keys: list[str], timeout_s: float = 10.0
) -> dict[str, str | None]:
    """The values of many keys in one request (absent keys map to None)."""
    values: dict[str, Any] = _ask(
        host, tsa_port, {"op": "get_many", "keys": list(keys)}, timeout_s
    ).get("values", {})
    return {key: None if values.get(key) is None else str(values[key]) for key in keys}


def write_key(host: str, tsa_port: int, key: str, value: str, timeout_s: float = 10.0) -> None:
    """Write one entry through the active (acknowledged once every standby has it)."""
    _ask(host, tsa_port, {"op": "put", "key": key, "value": value}, timeout_s)


def get_json(
    url: str, timeout_s: float = 1.0, auth: ManagementAuth | None = None
) -> dict[str, Any] | None:
    """GET a JSON object over HTTP (REST stat, WAN status), or None when nothing answers,
    the answer breaks off (a process stopping) or is not JSON; with ``auth``, over HTTPS
    checked against its CA, with its user and password."""
    request = urllib.request.Request(url)  # noqa: S310
    context = None
    if auth is not None:
        token = base64.b64encode(f"{auth.user}:{auth.password}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
        context = ssl.create_default_context(cafile=str(auth.ca_file))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:  # noqa: S310
            data = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError, http.client.HTTPException):  # URLError is an OSError
        return None
    return data if isinstance(data, dict) else None


def server_stat(
    host: str, port: int, timeout_s: float = 1.0, auth: ManagementAuth | None = None
) -> dict[str, Any] | None:
    """The server's REST stat, or None when it does not answer (``auth``: a secured
    server's, :func:`bm_upgrade.sandbox.security.auth_for`)."""
    scheme = "https" if auth is not None else "http"
    return get_json(f"{scheme}://{host}:{port}{STAT_PATH}", timeout_s, auth)
