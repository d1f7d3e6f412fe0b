"""`bm-upgrade trust-hosts` against real sshd hosts: fingerprints shown as ssh-keygen shows
them, nothing recorded without a terminal or --yes (exit 2), --yes records, a second run says
known, a CHANGED key is refused (exit 1), y/N per host, the jump host first, and a corrupt
known_hosts file is exit 2 before any connection."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bm_upgrade.cli import main
from bm_upgrade.remote import Connection
from bm_upgrade.remote.known_hosts import known_hosts_name
from bm_upgrade.trust import trust_hosts
from tests.remote.conftest import Host

FIXTURES = Path(__file__).parent.parent / "fixtures"


def inventory(tmp_path: Path, hosts: list[Host], *, jump: Host | None = None) -> Path:
    ssh = (
        hosts[0]
        .settings(known_hosts=str(tmp_path / "known_hosts"))
        .model_dump(mode="json", exclude_none=True)
    )
    if jump is not None:
        ssh["jump_host"] = {"host": jump.address, "port": jump.handle.port}
    servers = [
        {
            "name": f"tsa-{i}",
            "host": h.address,
            "install_dir": f"/opt/kit{i}",
            "tc_config": f"/etc/tc{i}.xml",
            "data_dir": f"/var/tsa-{i}",
        }
        for i, h in enumerate(hosts)
    ]
    data: dict[str, Any] = {
        "cluster": "trust_test",
        "target_version": "4.2.1",
        "kits": [{"version": "4.2.1", "url": "file:///kits/k.tar.gz", "sha256": "a" * 64}],
        "license_file": str(FIXTURES / "license-4.2.key"),
        "ssh": ssh,
        "persistent": True,
        "regions": [{"name": "east", "stripes": [{"name": "stripe1", "servers": servers}]}],
    }
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def keygen_fingerprint(host: Host) -> str:
    """What ``ssh-keygen -l`` prints for the host's public key (the operator's reference)."""
    out = subprocess.run(
        ["ssh-keygen", "-lf", "-"],
        input=host.handle.host_key_pub,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()[1]


TrustCli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def trust_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> TrustCli:
    """Runs ``bm-upgrade trust-hosts ARGS...`` with no terminal: exit code, stdout, stderr."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["trust-hosts", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_no_terminal_then_yes_then_known(
    tmp_path: Path, host: Host, second_host: Host, trust_cli: TrustCli
) -> None:
    path = inventory(tmp_path, [host, second_host])
    known = tmp_path / "known_hosts"

    code, out, err = trust_cli(str(path))
    assert code == 2
    assert "no terminal to ask on" in err and "--yes" in err
    for h in (host, second_host):
        name = known_hosts_name(h.address, h.handle.port)
        assert f"{name}: NEW key ssh-ed25519 {keygen_fingerprint(h)}" in out
    assert not known.exists()  # nothing recorded

    code, out, err = trust_cli(str(path), "--yes")
    assert code == 0, err
    assert sorted(line.split() for line in known.read_text().splitlines()) == sorted(
        h.handle.known_hosts_line().split()[:3] for h in (host, second_host)
    )
    assert "0 host(s) already known, 2 recorded" in out
    for h in (host, second_host):  # what a run does now works, strictly checked
        with Connection(h.address, h.settings(known_hosts=str(known))) as conn:
            assert conn.run(["true"]).ok

    recorded = known.read_text()
    code, out, err = trust_cli(str(path))
    assert code == 0, err
    assert f"{known_hosts_name(host.address, host.handle.port)}: known (ssh-ed25519 " in out
    assert "2 host(s) already known, 0 recorded" in out
    assert known.read_text() == recorded


def test_a_changed_key_is_never_recorded(
    tmp_path: Path, host: Host, second_host: Host, trust_cli: TrustCli
) -> None:
    path = inventory(tmp_path, [host, second_host])
    known = tmp_path / "known_hosts"
    name = known_hosts_name(host.address, host.handle.port)
    other = second_host.handle.host_key_pub.split()
    known.write_text(f"{name} {other[0]} {other[1]}\n")  # another host's key: a CHANGED key

    code, out, err = trust_cli(str(path), "--yes")
    assert code == 1
    assert f"host key of {name} CHANGED" in err and "ssh-keygen -R" in err
    lines = known.read_text().splitlines()
    assert lines[0] == f"{name} {other[0]} {other[1]}"
    assert not any(line.startswith(f"{name} ") for line in lines[1:])
    # The other, new host was shown and recorded (--yes).
    second = known_hosts_name(second_host.address, second_host.handle.port)
    assert f"{second}: recorded" in out
    assert [line.split()[0] for line in lines[1:]] == [second]


def test_the_operator_answers_per_host(tmp_path: Path, host: Host, second_host: Host) -> None:
    path = inventory(tmp_path, [host, second_host])
    questions: list[str] = []

    def ask(question: str) -> bool:
        questions.append(question)
        return host.address in question  # yes to the first, no to the second

    out, err = io.StringIO(), io.StringIO()
    code = trust_hosts(path, yes=False, ask=ask, out=out, err=err)
    assert code == 1
    assert len(questions) == 2 and all("[y/N]" in q and "SHA256:" in q for q in questions)
    recorded = (tmp_path / "known_hosts").read_text().splitlines()
    assert [line.split()[0] for line in recorded] == [
        known_hosts_name(host.address, host.handle.port)
    ]
    assert "not recorded" in out.getvalue() and "not trusted" in err.getvalue()


def test_jump_host_is_settled_first(tmp_path: Path, host: Host, second_host: Host) -> None:
    path = inventory(tmp_path, [second_host], jump=host)
    out, err = io.StringIO(), io.StringIO()
    assert trust_hosts(path, yes=False, ask=lambda q: False, out=out, err=err) == 1
    assert "through jump host" in err.getvalue()
    assert not (tmp_path / "known_hosts").exists()
    assert trust_hosts(path, yes=True, ask=None, out=out, err=err) == 0, err.getvalue()
    names = [line.split()[0] for line in (tmp_path / "known_hosts").read_text().splitlines()]
    assert names == [known_hosts_name(h.address, h.handle.port) for h in (host, second_host)]


def test_corrupt_known_hosts_is_exit_2_before_any_connection(
    tmp_path: Path, second_host: Host, trust_cli: TrustCli
) -> None:
    path = inventory(tmp_path, [second_host])
    (tmp_path / "known_hosts").write_text("# ok\nhost ssh-ed25519 not*base64\n")
    code, out, err = trust_cli(str(path), "--yes")
    assert code == 2
    assert err.startswith(f"error: known_hosts file {tmp_path / 'known_hosts'} line 2 ")
    assert "Traceback" not in err and out == ""
