"""A server's management REST port as the tool reads it: plain HTTP, or HTTPS with Basic
authentication for a secured region (docs/terracotta.md, "Secured clusters").

The certificate is checked against the inventory's ``ca_file`` (or the system's CAs) unless
``verify: false``; the password is read from its source for each request and goes nowhere
but the ``Authorization`` header. Failures come back as :class:`OSError` whose text names
the server and, for a refused login, what to check in the inventory, never the password.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from bm_upgrade.errors import SecretUnavailable
from bm_upgrade.inventory import Server
from bm_upgrade.inventory.security import ManagementSecurity
from bm_upgrade.inventory_checks import url_host


def base_url(server: Server) -> str:
    """``http(s)://<host>:<management port>`` of ``server``."""
    scheme = "https" if server.management_security is not None else "http"
    return f"{scheme}://{url_host(server.host)}:{server.management_port}"


def tls_context(security: ManagementSecurity) -> ssl.SSLContext:
    """The TLS context for a secured management port: the CA file (or the system's CAs),
    or no check at all with ``verify: false``.

    Raises:
        OSError: the CA file cannot be read (the message names it).
    """
    if not security.verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=security.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise OSError(
            f"management_security.ca_file {security.ca_file} cannot be read as PEM "
            f"certificates ({exc}); check the path"
        ) from None


def login_refused(server: Server, security: ManagementSecurity, how: str) -> str:
    """The sentence for a refused login at ``server``'s management port."""
    return (
        f"the management port of server {server.name} ({server.host}:"
        f"{server.management_port}) refused the login of user {security.user} ({how}); "
        f"check management_security's user and the password in {security.source()}"
    )


def management_json(server: Server, path: str, timeout: float = 5.0) -> dict[str, Any]:
    """GET ``path`` on ``server``'s management port and decode its JSON object.

    Raises:
        OSError: not reachable, the certificate or login refused, cut off mid-answer, or
            not a JSON object (the message says which, naming the server).
    """
    url = base_url(server) + path
    request = urllib.request.Request(url)  # noqa: S310 - http(s) only, built above
    context = None
    security = server.management_security
    if security is not None:
        try:
            password = security.password()
        except SecretUnavailable as exc:
            raise OSError(f"cannot log in to server {server.name}: {exc}") from None
        token = base64.b64encode(f"{security.user}:{password}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
        context = tls_context(security)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 401 and security is not None:
            raise OSError(login_refused(server, security, "HTTP 401")) from None
        raise OSError(f"{url}: HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise OSError(f"{url}: {exc.reason}") from None
    except http.client.HTTPException as exc:
        raise OSError(f"{url} broke off its answer ({exc!r})") from None
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise OSError(f"{url} did not answer JSON ({exc})") from None
    if not isinstance(data, dict):
        raise OSError(f"{url} answered {type(data).__name__}, not a JSON object")
    return data
