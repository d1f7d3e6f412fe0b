"""A server's tc-config.xml, parsed: persistence, each server's folders, ports and stripe.

The format is docs/terracotta.md's "tc-config.xml": namespace ``http://www.terracotta.org/config``;
``<servers>`` holds plain ``<server>`` elements (one stripe) or ``<mirror-group>`` elements;
``<restartable enabled="true"/>`` under ``<servers>`` makes the cluster persistent; a server's
ports not set default to tsa-port 9510 and management-port tsa-port + 30.

Parsed defensively: the text is bounded (:data:`MAX_BYTES`) and a document type declaration is
refused outright, so no entity is ever expanded (ElementTree fetches no external entity, and
without a DTD there is nothing to expand). Pure: the text comes from ``tcconfig_check``.
"""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

TC_NS = "http://www.terracotta.org/config"
MAX_BYTES = 1024 * 1024
"""A tc-config larger than this is refused (real ones are a few KiB)."""
DEFAULT_TSA_PORT = 9510
MANAGEMENT_PORT_OFFSET = 30
PLAIN_GROUP = ""
"""The stripe name of servers listed straight under ``<servers>`` (no ``<mirror-group>``)."""

_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_SUBSTITUTION = re.compile(r"%[a-zA-Z(]")


class TcConfigError(ValueError):
    """The text is not a tc-config this tool can read; the message says why (not where:
    the caller names the file)."""


@dataclass(frozen=True)
class TcServer:
    """One ``<server>`` element.

    Attributes:
        data: ``<data>`` as written (None: not set), ``data_backup`` likewise.
        group: the ``<mirror-group>``'s ``group-name`` (:data:`PLAIN_GROUP` for plain servers).
    """

    name: str
    host: str
    group: str
    tsa_port: int
    management_port: int
    data: str | None = None
    data_backup: str | None = None


@dataclass(frozen=True)
class TcConfig:
    """What a tc-config says about persistence and its servers (by name, in file order)."""

    restartable: bool
    servers: dict[str, TcServer] = field(default_factory=dict)

    def stripe_of(self, name: str) -> list[str]:
        """The names of the servers configured in the same stripe as ``name``."""
        group = self.servers[name].group
        return [s.name for s in self.servers.values() if s.group == group]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _text(element: ET.Element, name: str) -> str | None:
    found = _children(element, name)
    if not found:
        return None
    return (found[0].text or "").strip() or None


def _port(element: ET.Element, name: str, default: int, server: str) -> int:
    text = _text(element, name)
    if text is None:
        return default
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise TcConfigError(f"<{name}> of server {server} is {text!r}, not a port number")
    return int(text)


def _server(element: ET.Element, group: str) -> TcServer:
    host = element.get("host") or "%i"
    tsa_default = DEFAULT_TSA_PORT
    name = element.get("name") or f"{host}:{_text(element, 'tsa-port') or tsa_default}"
    tsa = _port(element, "tsa-port", tsa_default, name)
    return TcServer(
        name=name,
        host=host,
        group=group,
        tsa_port=tsa,
        management_port=_port(element, "management-port", tsa + MANAGEMENT_PORT_OFFSET, name),
        data=_text(element, "data"),
        data_backup=_text(element, "data-backup"),
    )


def parse_tc_config(text: str) -> TcConfig:
    """The tc-config in ``text``.

    Raises:
        TcConfigError: too large, a DOCTYPE/ENTITY declaration, not well-formed, not a
            tc-config (no ``<servers>``), ``<server>`` and ``<mirror-group>`` side by side, a
            port that is not a number, or two servers of one name.
    """
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise TcConfigError(f"larger than {MAX_BYTES // 1024} KiB")
    if _DTD.search(text):
        raise TcConfigError("it declares a DOCTYPE or ENTITY, which this tool does not read")
    try:
        root = ET.fromstring(text)  # noqa: S314 - bounded, no DTD (checked above)
    except ET.ParseError as exc:
        raise TcConfigError(f"not well-formed XML ({exc})") from None
    if _local(root.tag) != "tc-config":
        raise TcConfigError(f"its root element is <{_local(root.tag)}>, not <tc-config>")
    servers = _children(root, "servers")
    if not servers:
        raise TcConfigError("it has no <servers> element")
    plain = _children(servers[0], "server")
    groups = _children(servers[0], "mirror-group")
    if plain and groups:
        raise TcConfigError("<servers> holds both <server> and <mirror-group> elements")
    found = [_server(e, PLAIN_GROUP) for e in plain]
    for number, group in enumerate(groups, start=1):
        name = group.get("group-name") or f"group{number}"
        found += [_server(e, name) for e in _children(group, "server")]
    by_name: dict[str, TcServer] = {}
    for server in found:
        if server.name in by_name:
            raise TcConfigError(f"two <server> elements are named {server.name}")
        by_name[server.name] = server
    restartable = _children(servers[0], "restartable")
    enabled = bool(restartable) and restartable[0].get("enabled", "false").strip() == "true"
    return TcConfig(restartable=enabled, servers=by_name)


def resolved_path(value: str, tc_config_path: str) -> str | None:
    """A path from the tc-config as the server uses it: a relative one is taken from the
    tc-config's folder (docs/terracotta.md, assumed); None when it holds a parameter
    substitution (``%h``, ``%(user.home)``, ...) that only the server's JVM can expand."""
    if _SUBSTITUTION.search(value):
        return None
    if not value.startswith("/"):
        value = posixpath.join(posixpath.dirname(tc_config_path), value)
    return posixpath.normpath(value)
