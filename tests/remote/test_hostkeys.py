"""Host keys against a real sshd: a known host showing a key of another type is a CHANGED key
(never accepted, never recorded), known_hosts is never written by a connection, and a corrupt
known_hosts line is one clear error naming the file and the line."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest

from bm_upgrade.errors import HostKeyRejected, UserError
from bm_upgrade.remote import Connection, HostPool, KnownHostsError
from bm_upgrade.remote.hostkeys import HostKeyChecker
from bm_upgrade.remote.known_hosts import known_hosts_name
from tests.remote.conftest import Host

RSA = paramiko.RSAKey.generate(2048)


def name_of(host: Host) -> str:
    return known_hosts_name(host.address, host.handle.port)


def test_known_host_showing_a_key_of_another_type_is_changed_and_not_recorded(
    host: Host, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    text = f"{name_of(host)} ssh-rsa {RSA.get_base64()}\n"
    known.write_text(text)
    # Even with accept_unknown_host_keys: the host is known, under another key.
    settings = host.settings(known_hosts=str(known), accept_unknown_host_keys=True)
    with pytest.raises(HostKeyRejected) as info:
        Connection(host.address, settings, retries=1).open()
    message = str(info.value)
    assert f"host key of {name_of(host)} CHANGED" in message
    assert "ssh-ed25519 SHA256:" in message and f"ssh-rsa {RSA.fingerprint}" in message
    assert f"ssh-keygen -R '{name_of(host)}' -f {known}" in message
    assert known.read_text() == text


def test_recorded_key_among_others_is_accepted_hashed_or_by_pattern(
    host: Host, tmp_path: Path
) -> None:
    own = host.handle.host_key_pub.split()
    hashed = paramiko.HostKeys.hash_host(name_of(host))
    pattern = known_hosts_name(host.address.rsplit(".", 1)[0] + ".*", host.handle.port)
    for line in (f"{hashed} {own[0]} {own[1]}", f"!other.example,{pattern} {own[0]} {own[1]}"):
        known = tmp_path / "known_hosts"
        known.write_text(f"other.example ssh-rsa {RSA.get_base64()}\n{line}\n")
        with Connection(host.address, host.settings(known_hosts=str(known))) as conn:
            assert conn.run(["true"]).ok


def test_revoked_key_is_refused(host: Host, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"{host.handle.known_hosts_line()}\n@revoked * {host.handle.host_key_pub}\n")
    with pytest.raises(HostKeyRejected, match="@revoked"):
        Connection(host.address, host.settings(known_hosts=str(known))).open()


def test_a_pool_never_writes_known_hosts(host: Host, second_host: Host, tmp_path: Path) -> None:
    """What the status sensor and runs use: one host unknown and accepted with a warning, one
    known; the file is untouched."""
    known = tmp_path / "known_hosts"
    text = host.handle.known_hosts_line() + "\n"
    known.write_text(text)
    settings = host.settings(known_hosts=str(known), accept_unknown_host_keys=True)
    with HostPool(settings, retries=1) as pool:
        outcome = pool.fan_out([host.address, second_host.address], lambda c: c.run(["true"]).ok)
    assert outcome.values() == {host.address: True, second_host.address: True}
    assert known.read_text() == text


CORRUPT = {
    "bad base64": "{name} ssh-ed25519 AAAA!!notbase64\n",
    "a truncated key": "{name} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\n",
    "a key of another type": "{name} ssh-rsa "
    "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
    "too few fields": "{name} ssh-ed25519\n",
    "not UTF-8": "{name} ssh-ed25519 \udcff\n",
}


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_corrupt_known_hosts_line_is_one_error_naming_file_and_line(
    host: Host, tmp_path: Path, kind: str
) -> None:
    known = tmp_path / "known_hosts"
    lines = [
        "# comment",
        "",
        host.handle.known_hosts_line(),
        CORRUPT[kind].format(name="other.example").rstrip("\n"),
    ]
    known.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    with pytest.raises(KnownHostsError) as info:
        Connection(
            host.address, host.settings(known_hosts=str(known)), retries=3, backoff_s=5
        ).open()
    message = str(info.value)
    assert isinstance(info.value, UserError)  # the CLI exits 2: it is the user's file
    assert f"known_hosts file {known} line 4 is not a host key entry" in message
    assert "ssh-keygen -R" in message and "sed -i '4d'" in message
    assert "\n" not in message


def test_corrupt_known_hosts_stops_a_fan_out_once_not_per_host(
    host: Host, address: Callable[[], str], tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(host.handle.known_hosts_line() + "\nbroken ssh-ed25519 !!\n")
    with (
        HostPool(host.settings(known_hosts=str(known)), retries=1) as pool,
        pytest.raises(KnownHostsError, match="line 2"),
    ):
        pool.fan_out([host.address, address()], lambda c: c.run(["true"]))


def test_unsupported_key_types_and_ca_lines_are_skipped(tmp_path: Path, host: Host) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(
        f"@cert-authority *.example ssh-ed25519 {RSA.get_base64()}\n"
        f"{name_of(host)} sk-ssh-ed25519@openssh.com AAAAC3NzaC1lZDI1NTE5\n"
        f"{host.handle.known_hosts_line()}\n"
    )
    with Connection(host.address, host.settings(known_hosts=str(known))) as conn:
        assert conn.run(["true"]).ok


def test_record_appends_a_line_even_after_a_last_line_without_newline(
    second_host: Host, tmp_path: Path
) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    known.parent.mkdir()
    known.write_text(f"other.example ssh-rsa {RSA.get_base64()}")  # no final newline
    checker = HostKeyChecker(str(known), accept_unknown=False)
    key = paramiko.PKey.from_type_string(*_split(second_host.handle.host_key_pub))
    finding = checker.examine(second_host.address, second_host.handle.port, key)
    assert finding.status == "unknown"
    checker.record(finding)
    lines = known.read_text().splitlines()
    assert lines[1] == f"{name_of(second_host)} {key.get_name()} {key.get_base64()}"
    assert checker.examine(second_host.address, second_host.handle.port, key).status == "known"


def _split(public_line: str) -> tuple[str, bytes]:
    kind, blob = public_line.split()[:2]
    return kind, base64.b64decode(blob)
