"""redact.py: a URL's userinfo, query and fragment never shown, also when a password holds a
'/' or a library quotes a piece of the URL outside it."""

from __future__ import annotations

from bm_upgrade.redact import redact_text, redact_url, redact_urls, secret_parts


def test_a_password_with_a_slash_is_redacted_whole() -> None:
    assert (
        redact_url("https://user:pa/ss@host:8443/kits/k.tar.gz?sig=abc#f")
        == "https://***@host:8443/kits/k.tar.gz?***#***"
    )
    assert redact_urls("from https://u:p/w@h/x?y=1 (boom)") == "from https://***@h/x?*** (boom)"


def test_pieces_quoted_outside_a_url_are_redacted() -> None:
    url = "https://deploy:t0ken%40x@repo.example/k.tar.gz?X-Sig=s1gnature"
    text = (
        "nonnumeric port: 't0ken@x@repo.example'; can't contain control characters "
        "'/k.tar.gz?X-Sig=s1gnature'; see " + url
    )
    shown = redact_text(text, url)
    for secret in ("t0ken", "s1gnature", "deploy"):
        assert secret not in shown, shown
    assert "repo.example" in shown


def test_a_webhook_is_secret_as_a_whole() -> None:
    url = "https://hooks.example/services/T000/B000/XXXX?token=abc"
    assert "/services/T000/B000/XXXX" in secret_parts(url, whole=True)
    shown = redact_text(
        f"POST {url} failed at hooks.example (/services/T000/B000/XXXX)", url, whole=True
    )
    assert "XXXX" not in shown and "hooks.example" not in shown
