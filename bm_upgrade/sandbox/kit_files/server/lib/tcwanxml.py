"""wan.xml, the WAN orchestrator's configuration: reader (the orchestrator) and writer (`up`).

Stdlib only, shipped in the kit beside tcwan.py. The format (namespace
``http://config.wan.terracottatech.com``)::

    <wan:config xmlns:wan="http://config.wan.terracottatech.com">
      <wan:bind host="127.100.0.9" port="9889"/>
      <wan:logs>/srv/wan/logs</wan:logs>
      <wan:replicationMode>unidirectional</wan:replicationMode>
      <wan:replicaDisconnectBehavior>reconnectResync</wan:replicaDisconnectBehavior>
      <wan:cacheManager>
        <wan:cache name="orders"><wan:master host="127.100.0.7" port="9889"/></wan:cache>
      </wan:cacheManager>
    </wan:config>
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape

WAN_NS = "http://config.wan.terracottatech.com"
DEFAULT_PORT = 9889
MODES = ("unidirectional", "bidirectional")
BEHAVIORS = ("reconnectResync", "remainDisconnected")


class WanConfigError(Exception):
    """wan.xml is unreadable or invalid; the message says which element."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(root: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in root.iter() if _local(e.tag) == name), None)


def parse_wan_xml(text: str) -> dict[str, Any]:
    """``{"host", "port", "logs", "mode", "behavior", "caches": [{"name", "masters": [(h, p)]}]}``.

    ``logs`` is ``<logs>``'s text, or None when wan.xml has none.
    """
    try:
        root = ET.fromstring(text)  # noqa: S314 - the operator's own config file
    except ET.ParseError as exc:
        raise WanConfigError(f"not well-formed XML: {exc}") from None
    bind = _find(root, "bind")
    if bind is None or not bind.get("host"):
        raise WanConfigError("no <bind host=... port=...> element")
    try:
        port = int(bind.get("port") or DEFAULT_PORT)
    except ValueError:
        raise WanConfigError("<bind port=...> is not a number") from None
    logs_el = _find(root, "logs")
    logs = (logs_el.text or "").strip() if logs_el is not None else ""
    mode_el, behavior_el = _find(root, "replicationMode"), _find(root, "replicaDisconnectBehavior")
    mode = (mode_el.text or "").strip() if mode_el is not None else "unidirectional"
    behavior = (behavior_el.text or "").strip() if behavior_el is not None else BEHAVIORS[0]
    if mode not in MODES:
        raise WanConfigError(f"<replicationMode> {mode!r} must be one of {', '.join(MODES)}")
    if behavior not in BEHAVIORS:
        raise WanConfigError(
            f"<replicaDisconnectBehavior> {behavior!r} must be one of {', '.join(BEHAVIORS)}"
        )
    caches = []
    for cache in (e for e in root.iter() if _local(e.tag) == "cache"):
        if not cache.get("name"):
            raise WanConfigError("a <cache> has no name attribute")
        masters = [
            (str(m.get("host")), int(m.get("port") or DEFAULT_PORT))
            for m in cache
            if _local(m.tag) == "master" and m.get("host")
        ]
        caches.append({"name": str(cache.get("name")), "masters": masters})
    if not caches:
        raise WanConfigError("no <cache> under <cacheManager>")
    return {
        "host": str(bind.get("host")),
        "port": port,
        "logs": logs or None,
        "mode": mode,
        "behavior": behavior,
        "caches": caches,
    }


def render_wan_xml(
    *,
    host: str,
    port: int,
    behavior: str,
    caches: list[str],
    masters: list[tuple[str, int]],
    logs: str | None = None,
    mode: str = "unidirectional",
) -> str:
    """wan.xml text: bind, logs (when given), mode, disconnect behavior, each cache with its
    masters."""

    def esc(value: object) -> str:
        return escape(str(value), {'"': "&quot;"})

    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<wan:config xmlns:wan="{WAN_NS}">',
        f'  <wan:bind host="{esc(host)}" port="{int(port)}"/>',
        *([f"  <wan:logs>{esc(logs)}</wan:logs>"] if logs else []),
        f"  <wan:replicationMode>{esc(mode)}</wan:replicationMode>",
        f"  <wan:replicaDisconnectBehavior>{esc(behavior)}</wan:replicaDisconnectBehavior>",
        "  <wan:cacheManager>",
    ]
    for cache in caches:
        refs = "".join(f'<wan:master host="{esc(h)}" port="{int(p)}"/>' for h, p in masters)
        lines.append(f'    <wan:cache name="{esc(cache)}">{refs}</wan:cache>')
    lines += ["  </wan:cacheManager>", "</wan:config>", ""]
    return "\n".join(lines)
