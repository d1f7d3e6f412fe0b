"""Secrets out of text: a URL's user:password@ and its query string never reach an error
message, a log line, step metadata or a notification (README, Security)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` without its secrets: ``https://***@host/path?***``.

    Userinfo (``user:token@``), a query string and a fragment are replaced by ``***``; the
    scheme, host, port and path stay, so the message still says where. Text that does not
    parse as a URL is redacted as a whole rather than shown.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
        query = REDACTED if parts.query else ""
        fragment = REDACTED if parts.fragment else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
    except ValueError:
        return REDACTED


def redact_urls(text: str) -> str:
    """Every URL inside ``text`` redacted by :func:`redact_url`."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)
