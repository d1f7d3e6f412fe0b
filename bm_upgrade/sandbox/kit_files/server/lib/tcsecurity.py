"""A secured server's management port: TLS, users and passwords (ENGINE.md, "Secured mode").

What tc-config's ``<servers secure="true">`` and each server's ``<security>`` element name:
- ``<ssl><certificate>jks:<alias>@<keystore></certificate>``: the server's certificate and
  key (in the sandbox the keystore is a PEM file holding both; the product reads JKS);
- ``<keychain><url>file://...</url>``: the keychain (the sandbox's is a plain ``key=value``
  file of mode 0600; the product's is encrypted; the sandbox reads nothing from it);
- ``<auth><realm>...</realm><url>file://...ini</url><user>``: the users, in an ini file whose
  ``[users]`` lines are ``<user> = <sha256 hex of the password>, <role>[, <role>...]``.

The scripts' side (``tcctl.py``): HTTPS when ``--secured`` (or the tc-config says secure),
Basic authentication with ``-u``/``-w``, and certificate checks against the JVM's trust
store unless ``-k``: ``-Djavax.net.ssl.trustStore=<file>`` in ``JAVA_OPTS``, else
``$JAVA_HOME/jre/lib/security/cacerts`` (PEM files in the sandbox).

Stdlib only: shipped in ``server/lib/``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import shlex
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ADMIN_ROLE = "admin"


def url_path(url: str) -> str:
    """The local path of a ``file://`` URL (a plain path is returned as it is)."""
    if url.startswith("file:"):
        return unquote(urlsplit(url).path)
    return url


def keystore_path(certificate: str) -> str:
    """``jks:<alias>@<path>`` -> ``<path>``."""
    _, _, rest = certificate.partition(":")
    return rest.rpartition("@")[2] if "@" in rest else rest


def server_context(security: dict[str, Any]) -> ssl.SSLContext:
    """The TLS context of a secured server's management port (OSError/ssl.SSLError when its
    keystore cannot be read)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(keystore_path(str(security.get("certificate") or "")))
    return context


def read_users(security: dict[str, Any]) -> dict[str, tuple[str, set[str]]]:
    """user -> (password sha256 hex, roles) from the ``<auth>`` ini file."""
    users: dict[str, tuple[str, set[str]]] = {}
    section = ""
    text = Path(url_path(str(security.get("auth_url") or ""))).read_text(encoding="utf-8")
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]").strip()
            continue
        if section == "users" and "=" in line:
            user, _, value = line.partition("=")
            digest, *roles = [part.strip() for part in value.split(",")]
            users[user.strip()] = (digest, {role for role in roles if role})
    return users


def authenticate(header: str | None, security: dict[str, Any]) -> tuple[str, set[str]] | None:
    """The user and roles an ``Authorization: Basic ...`` header proves, or None."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    try:
        known = read_users(security).get(user)
    except OSError:
        return None
    if known is None:
        return None
    digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
    return (user, known[1]) if hmac.compare_digest(digest, known[0]) else None


def basic_header(user: str, password: str) -> str:
    """The ``Authorization`` value for ``user``/``password``."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def trust_store() -> str | None:
    """The JVM trust store the scripts check certificates against (None: the system's)."""
    match = re.search(r"-Djavax\.net\.ssl\.trustStore=(\S+)", os.environ.get("JAVA_OPTS", ""))
    if match:
        return shlex.split(match.group(1))[0]
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        cacerts = Path(java_home) / "jre" / "lib" / "security" / "cacerts"
        if cacerts.is_file():
            return str(cacerts)
    return None


def client_context(ignore_untrusted: bool) -> ssl.SSLContext:
    """The scripts' TLS context: no checks with ``-k``, else the JVM's trust store."""
    if ignore_untrusted:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    store = trust_store()
    return ssl.create_default_context(cafile=store) if store else ssl.create_default_context()
