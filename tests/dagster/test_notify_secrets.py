"""A webhook that cannot take the message (an invalid URL, nobody listening, a message that
cannot be encoded): post() reports it in words without any part of the URL, and never raises
(the sensor that sent it must not fail)."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from bm_upgrade.defs import notify

TOKEN, SIG = "hook-T0KEN", "sig-Q5ECRET"


def free_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def posted(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    url: str,
    payload: dict[str, Any] | None = None,
) -> str:
    monkeypatch.setenv(notify.WEBHOOK_ENV, url)
    caplog.clear()
    outcome = notify.post(payload if payload is not None else {"event": "run_failure"})
    for text in (outcome, caplog.text):
        for secret in (TOKEN, SIG, "/services/"):
            assert secret not in text, text
    assert f"not posted: {outcome}" in caplog.text or outcome in caplog.text
    return outcome


@pytest.mark.parametrize(
    "url",
    [
        # http.client's InvalidURL: a port that is not a number (the userinfo read as the port).
        f"http://user:{TOKEN}@127.0.0.1/services/{TOKEN}",
        # http.client's InvalidURL quoting the path and query ("can't contain control characters").
        f"http://127.0.0.1:1/services/{TOKEN}?sig={SIG} x",
    ],
)
def test_an_invalid_webhook_url_is_reported_without_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, url: str
) -> None:
    caplog.set_level(logging.DEBUG)
    outcome = posted(monkeypatch, caplog, url)
    assert outcome.startswith("webhook not reachable (InvalidURL")
    assert notify.WEBHOOK_ENV in outcome


def test_an_unreachable_webhook_is_reported_without_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{free_port()}/services/{TOKEN}?sig={SIG}"
    outcome = posted(monkeypatch, caplog, url)
    assert outcome.startswith("webhook not reachable (URLError")
    assert "refused" in outcome.lower()


def test_a_value_error_before_the_request_never_escapes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    circular: dict[str, Any] = {"event": "run_failure"}
    circular["self"] = circular  # json.dumps raises ValueError (before any request)
    outcome = posted(
        monkeypatch, caplog, f"http://127.0.0.1:{free_port()}/services/{TOKEN}", circular
    )
    assert outcome.startswith("webhook not reachable (ValueError")
