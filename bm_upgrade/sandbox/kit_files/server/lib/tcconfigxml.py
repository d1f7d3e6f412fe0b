"""tc-config.xml, the servers' configuration: reader (the server, ``tcctl.py``) and writer
(the sandbox's ``tcconfig.py``).

Stdlib only and self-contained: shipped in ``server/lib/`` and imported by the sandbox, so the
server reads exactly what the sandbox writes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape

TC_NS = "http://www.terracotta.org/config"
DEFAULT_ELECTION_S = 5.0
DEFAULT_RECONNECT_WINDOW_S = 120.0


class ConfigError(Exception):
    """tc-config.xml is unreadable or invalid; the message says where."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _port(server: ET.Element, name: str, default: int) -> int:
    element = _child(server, name)
    if element is None or not (element.text or "").strip():
        return default
    try:
        return int((element.text or "").strip())
    except ValueError:
        raise ConfigError(f"<{name}> of server {server.get('name')!r} is not a number") from None


def _server(element: ET.Element, index: int) -> dict[str, Any]:
    host = element.get("host") or "localhost"
    name = element.get("name") or f"{host}:{_port(element, 'tsa-port', 9510)}"
    tsa = _port(element, "tsa-port", 9510)
    data = _child(element, "data")
    logs = _child(element, "logs")
    return {
        "name": name,
        "host": host,
        "index": index,
        "data": (data.text or "").strip() if data is not None else "data",
        "logs": (logs.text or "").strip() if logs is not None else "logs",
        "tsa_port": tsa,
        "jmx_port": _port(element, "jmx-port", tsa + 10),
        "group_port": _port(element, "tsa-group-port", tsa + 20),
        "management_port": _port(element, "management-port", tsa + 30),
        "security": _security(element),
    }


def _text(element: ET.Element | None, *path: str) -> str | None:
    for name in path:
        element = _child(element, name) if element is not None else None
    return (element.text or "").strip() or None if element is not None else None


def _security(server: ET.Element) -> dict[str, Any] | None:
    """A server's ``<security>``: certificate, keychain and auth (ENGINE.md, "Secured mode")."""
    element = _child(server, "security")
    if element is None:
        return None
    return {
        "certificate": _text(element, "ssl", "certificate"),
        "keychain_url": _text(element, "keychain", "url"),
        "auth_realm": _text(element, "auth", "realm"),
        "auth_url": _text(element, "auth", "url"),
        "user": _text(element, "auth", "user"),
    }


def parse_tc_config(text: str) -> dict[str, Any]:
    """Parse tc-config.xml text into ``{"stripes": [...], "persistent", "reconnect_window_s"}``.

    Each stripe is ``{"name", "election_s", "servers": [server dicts]}``; ports not set take
    the tsa-port +10/+20/+30 defaults. Raises ConfigError.
    """
    try:
        root = ET.fromstring(text)  # noqa: S314 - the operator's own config file
    except ET.ParseError as exc:
        raise ConfigError(f"not well-formed XML: {exc}") from None
    servers = _child(root, "servers")
    if servers is None:
        raise ConfigError("no <servers> element")
    groups = _children(servers, "mirror-group")
    plain = _children(servers, "server")
    if groups and plain:
        raise ConfigError("<servers> holds both <server> and <mirror-group> elements")
    stripes: list[dict[str, Any]] = []
    index = 0
    if plain:
        group_servers = []
        for element in plain:
            group_servers.append(_server(element, index))
            index += 1
        stripes.append(
            {"name": "default-group", "election_s": DEFAULT_ELECTION_S, "servers": group_servers}
        )
    for number, group in enumerate(groups, start=1):
        group_servers = []
        for element in _children(group, "server"):
            group_servers.append(_server(element, index))
            index += 1
        try:
            election = float(group.get("election-time") or DEFAULT_ELECTION_S)
        except ValueError:
            raise ConfigError("election-time of a <mirror-group> is not a number") from None
        stripes.append(
            {
                "name": group.get("group-name") or f"group{number}",
                "election_s": election,
                "servers": group_servers,
            }
        )
    if not any(stripe["servers"] for stripe in stripes):
        raise ConfigError("no <server> is configured")
    restartable = _child(servers, "restartable")
    persistent = restartable is not None and restartable.get("enabled", "false") == "true"
    window = _child(servers, "client-reconnect-window")
    try:
        reconnect = (
            float((window.text or "").strip()) if window is not None else DEFAULT_RECONNECT_WINDOW_S
        )
    except ValueError:
        raise ConfigError("<client-reconnect-window> is not a number") from None
    secure = servers.get("secure", "false") == "true"
    if secure and any(s["security"] is None for st in stripes for s in st["servers"]):
        raise ConfigError('<servers secure="true"> needs a <security> element in every <server>')
    return {
        "stripes": stripes,
        "persistent": persistent,
        "reconnect_window_s": reconnect,
        "secure": secure,
    }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_tc_config(
    stripes: list[dict[str, Any]],
    *,
    persistent: bool,
    reconnect_window_s: float,
    election_s: float,
    security: dict[str, str] | None = None,
) -> str:
    """tc-config.xml text in the format of docs/terracotta.md: one <mirror-group> per stripe;
    with ``security`` (``certificate``, ``keychain_url``, ``auth_url``, ``user``) the servers
    are secured and each gets a ``<security>`` element."""

    def esc(value: object) -> str:
        return escape(str(value), {'"': "&quot;"})

    secure = ' secure="true"' if security else ""
    lines = [f'<tc:tc-config xmlns:tc="{TC_NS}">', f"  <servers{secure}>"]
    for stripe in stripes:
        lines.append(
            f'    <mirror-group group-name="{esc(stripe["name"])}" '
            f'election-time="{_number(election_s)}">'
        )
        for server in stripe["servers"]:
            lines += [
                f'      <server host="{esc(server["host"])}" name="{esc(server["name"])}">',
                f"        <data>{esc(server['data'])}</data>",
                f"        <logs>{esc(server['logs'])}</logs>",
                f"        <tsa-port>{int(server['tsa_port'])}</tsa-port>",
                f"        <jmx-port>{int(server['jmx_port'])}</jmx-port>",
                f"        <tsa-group-port>{int(server['group_port'])}</tsa-group-port>",
                f"        <management-port>{int(server['management_port'])}</management-port>",
                '        <dataStorage size="64m"><offheap size="64m"/></dataStorage>',
                *_security_lines(security, esc),
                "      </server>",
            ]
        lines.append("    </mirror-group>")
    lines.append(f'    <restartable enabled="{"true" if persistent else "false"}"/>')
    lines.append(
        f"    <client-reconnect-window>{_number(reconnect_window_s)}</client-reconnect-window>"
    )
    lines += ["  </servers>", "</tc:tc-config>", ""]
    return "\n".join(lines)


def _security_lines(security: dict[str, str] | None, esc: Any) -> list[str]:
    if not security:
        return []
    return [
        "        <security>",
        f"          <ssl><certificate>{esc(security['certificate'])}</certificate></ssl>",
        f"          <keychain><url>{esc(security['keychain_url'])}</url></keychain>",
        "          <auth>",
        "            <realm>com.tc.net.core.security.ShiroIniRealm</realm>",
        f"            <url>{esc(security['auth_url'])}</url>",
        f"            <user>{esc(security['user'])}</user>",
        "          </auth>",
        "        </security>",
    ]
