"""Secrets out of text: a URL's user:password@ and its query string never reach an error
message, a log line, step metadata or a notification (README, Security)."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_AUTHORITY = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)([^?#]*@)")
"""The scheme and a userinfo up to the last '@' before any query: a password may hold a '/',
which ends the authority for urlsplit and would leave it in the "path"."""


def redact_url(url: str) -> str:
    """``url`` without its secrets: ``https://***@host/path?***``.

    Userinfo (``user:token@``), a query string and a fragment are replaced by ``***``; the
    scheme, host, port and path stay, so the message still says where. Text that does not
    parse as a URL is redacted as a whole rather than shown.
    """
    try:
        url = _AUTHORITY.sub(lambda m: f"{m.group(1)}{REDACTED}@", url, count=1)
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


def secret_parts(url: str, *, whole: bool = False) -> list[str]:
    """The pieces of ``url`` that must not be shown, longest first: its userinfo (and the
    password alone), query and fragment, raw and percent-decoded; with ``whole`` (a webhook,
    whose path often is the token) also the URL itself, its host and its path."""
    match = _AUTHORITY.match(url)
    userinfo = match.group(2)[:-1] if match else ""
    rest = url[match.end() :] if match else url
    try:
        parts = urlsplit(rest if match else url)
        query, fragment = parts.query, parts.fragment
        host_path = [parts.netloc.rsplit("@", 1)[-1], parts.path] if whole else []
    except ValueError:  # not parseable: hide every word of it
        query, fragment, host_path = "", "", [url, *url.split("/")]
    pieces = [userinfo, userinfo.partition(":")[2], query, fragment, *host_path]
    if whole:
        pieces.append(url)
    found = {p for raw in pieces for p in (raw, unquote(raw)) if len(p) >= 3 and p != "/"}
    return sorted(found, key=len, reverse=True)


def redact_text(text: str, *urls: str, whole: bool = False) -> str:
    """``text`` with every URL in it redacted (:func:`redact_urls`), and the secret parts of
    ``urls`` (:func:`secret_parts`) replaced wherever they appear, also outside a URL (an
    error of http.client quotes a URL's port or path on its own)."""
    for url in urls:
        for piece in secret_parts(url, whole=whole):
            text = text.replace(piece, REDACTED)
    return redact_urls(text)
