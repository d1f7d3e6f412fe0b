"""The sandbox's real sshd: login, journaling before the command runs, pass-through, sftp,
known_hosts with RejectPolicy, the wrapper's kit/dirty-backup events, stop by PID."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from bm_upgrade.sandbox import blocks, cmdwrap, logins, processes, sshd, sshkeys, wrapper

from .conftest import SshHost, ssh_connect, ssh_run


def _journal(host: SshHost) -> list[dict[str, object]]:
    return [json.loads(line) for line in host.journal.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def client(ssh_host: SshHost) -> Iterator[paramiko.SSHClient]:
    connection = ssh_connect(
        ssh_host.address,
        ssh_host.handle.port,
        ssh_host.user,
        ssh_host.key.private,
        ssh_host.known_hosts,
    )
    yield connection
    connection.close()


def test_command_runs_as_login_user_and_is_journaled_before_it_runs(
    ssh_host: SshHost, client: paramiko.SSHClient
) -> None:
    command = f"id -un; cat {ssh_host.journal}"
    code, out, err = ssh_run(client, command)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == ssh_host.user
    # The command saw its own journal line: it was written before the command ran.
    seen = [json.loads(line) for line in lines[1:]]
    assert {"event": "command", "host": ssh_host.address, "command": command}.items() <= seen[
        -1
    ].items()
    assert isinstance(seen[-1]["t"], float)


def test_streams_and_exit_code_pass_through(client: paramiko.SSHClient) -> None:
    code, out, err = ssh_run(client, "cat; echo to-stderr >&2; exit 7", stdin=b"line1\nline2\n")
    assert (code, out, err) == (7, "line1\nline2\n", "to-stderr\n")
    code, _, _ = ssh_run(client, "kill -TERM $$")
    assert code == 128 + 15


def test_the_wrapper_leaves_no_trace_in_the_environment(client: paramiko.SSHClient) -> None:
    code, out, _ = ssh_run(client, "env")
    assert code == 0
    assert "SSH_ORIGINAL_COMMAND" not in out
    assert "PATH=" in out


def test_any_command_string_is_journaled_exactly(
    ssh_host: SshHost, client: paramiko.SSHClient
) -> None:
    command = "printf '%s\\n' \"quote\\\" back\\\\slash\" 'tab\there' 'é ü ✓'\n# second line\x01"
    code, out, _ = ssh_run(client, command)
    assert code == 0
    assert out.startswith('quote" back\\slash\n')
    assert [e["command"] for e in _journal(ssh_host) if e["event"] == "command"][-1] == command


def test_journal_line_matches_json_dumps() -> None:
    text = 'a"b\\c\n\t\x00\x1f é \udcff'
    assert json.loads(cmdwrap.json_string(text)) == text
    assert cmdwrap.json_string('x"y') == json.dumps('x"y', ensure_ascii=False)


def test_sftp_upload_and_download(
    ssh_host: SshHost, client: paramiko.SSHClient, tmp_path: Path
) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    local = tmp_path / "kit.tar.gz"
    local.write_bytes(payload)
    remote = str(ssh_host.handle.root / "upload.bin")
    sftp = client.open_sftp()
    try:
        sftp.put(str(local), remote)
        back = tmp_path / "back.bin"
        sftp.get(remote, str(back))
        assert back.read_bytes() == payload
        assert sftp.stat(remote).st_size == len(payload)
    finally:
        sftp.close()
    # sftp is a transfer, not a command: nothing journaled for it.
    assert not any("sftp" in str(e.get("command", "")) for e in _journal(ssh_host))


def test_kit_unpacked_and_dirty_backup_deleted_are_journaled(
    ssh_host: SshHost, client: paramiko.SSHClient
) -> None:
    root = ssh_host.handle.root
    backup = (
        root
        / "var"
        / "tc"
        / "tsa-1"
        / "data"
        / "dirty-objectdb-backup"
        / "dirty-objectdb-2024010112000000"
    )
    code, _, err = ssh_run(client, f"mkdir -p {backup}")
    assert code == 0, err
    kit = root / "opt" / "terracotta" / "bigmemory-max-4.2.1"
    code, _, err = ssh_run(
        client,
        f"mkdir -p {kit}/server/lib && echo version=4.2.1 > "
        f"{kit}/server/lib/tc-version.properties && rm -r {backup}",
    )
    assert code == 0, err
    events = _journal(ssh_host)
    kits = [e for e in events if e["event"] == "kit_unpacked"]
    assert kits[-1] == {**kits[-1], "host": ssh_host.address, "path": str(kit), "version": "4.2.1"}
    dirty = [e for e in events if e["event"] == "dirty_backup"]
    assert dirty[-1]["path"] == str(backup)
    assert dirty[-1]["action"] == "deleted"
    # Unchanged afterwards: nothing journaled again.
    ssh_run(client, "true")
    assert len([e for e in _journal(ssh_host) if e["event"] == "kit_unpacked"]) == len(kits)


def test_known_hosts_is_enforced_with_reject_policy(ssh_host: SshHost, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        ssh_connect(
            ssh_host.address, ssh_host.handle.port, ssh_host.user, ssh_host.key.private, empty
        )
    other = sshkeys.create_client_key(tmp_path / "other_host_key")
    wrong = sshkeys.write_known_hosts(
        tmp_path / "wrong_known_hosts",
        [(ssh_host.address, ssh_host.handle.port, other.public_line)],
    )
    with pytest.raises(paramiko.BadHostKeyException):
        ssh_connect(
            ssh_host.address, ssh_host.handle.port, ssh_host.user, ssh_host.key.private, wrong
        )


def test_an_unknown_client_key_is_refused(ssh_host: SshHost, tmp_path: Path) -> None:
    stranger = sshkeys.create_client_key(tmp_path / "stranger")
    with pytest.raises(paramiko.AuthenticationException):
        ssh_connect(
            ssh_host.address,
            ssh_host.handle.port,
            ssh_host.user,
            stranger.private,
            ssh_host.known_hosts,
        )


def test_known_hosts_line_form() -> None:
    assert (
        sshkeys.known_hosts_line("127.1.2.3", 22, "ssh-ed25519 AAAA c")
        == "127.1.2.3 ssh-ed25519 AAAA"
    )
    assert (
        sshkeys.known_hosts_line("127.1.2.3", 2222, "ssh-ed25519 AAAA c")
        == "[127.1.2.3]:2222 ssh-ed25519 AAAA"
    )


def test_stop_ends_the_listener_and_its_sessions(host_tmp: Path, fresh_address: str) -> None:
    tmp_path = host_tmp
    user = logins.login_user()
    key = sshkeys.create_client_key(tmp_path / "id")
    root = tmp_path / "host"
    root.mkdir()
    logins.give_to_user(root, user)
    handle = sshd.start_sshd(
        fresh_address, logins.default_port(), root, authorized_key=key.public, login_user=user
    )
    known = sshkeys.write_known_hosts(tmp_path / "known_hosts", [handle])
    connection = ssh_connect(fresh_address, handle.port, user, key.private, known)
    try:
        session = connection.get_transport().open_session()  # type: ignore[union-attr]
        session.exec_command("sleep 60")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
            Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep")
            for pid in processes.children_of(handle.pid)
        ):
            time.sleep(0.02)
        pids = [handle.pid, *processes.children_of(handle.pid)]
        assert len(pids) >= 4  # listener, connection, wrapper, sleep
        handle.stop()
        assert not [pid for pid in pids if processes.pid_alive(pid)]
        assert not sshd.port_accepts(fresh_address, handle.port)
        handle.stop()  # idempotent
    finally:
        connection.close()


def test_a_second_sshd_on_a_taken_address_fails_with_its_reason(
    ssh_host: SshHost, host_tmp: Path
) -> None:
    tmp_path = host_tmp
    with pytest.raises(logins.SshdError, match=ssh_host.address):
        sshd.start_sshd(
            ssh_host.address,
            ssh_host.handle.port,
            tmp_path / "dup",
            authorized_key=ssh_host.key.public_line,
            login_user=ssh_host.user,
            timeout_s=3,
        )


def test_config_for_an_ordinary_user() -> None:
    text = sshd.sshd_config_text(
        address="127.3.4.5",
        port=2222,
        host_key=Path("/h/key"),
        pid_file=Path("/h/pid"),
        authorized_keys=Path("/h/ak"),
        login_user="alice",
        forced_command="/w x",
        sftp_server="/usr/lib/openssh/sftp-server",
    )
    lines = text.splitlines()
    for expected in (
        "ListenAddress 127.3.4.5:2222",
        "AllowUsers alice",
        "PermitRootLogin no",
        "UsePAM no",
        "StrictModes no",
        "ForceCommand /w x",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
    ):
        assert expected in lines


def test_address_blocks_never_collide(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    block_a, block_b = blocks.reserve_block(first), blocks.reserve_block(second)
    try:
        assert block_a != block_b
        assert blocks.reserve_block(first) == block_a
        assert block_a.startswith("127.") and len(block_a.split(".")) == 3
    finally:
        blocks.release_block(first)
        blocks.release_block(second)
    assert not (blocks.BLOCKS_DIR / block_a).exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become an ordinary user")
def test_an_ordinary_user_runs_its_own_sshd_on_a_high_port(
    host_tmp: Path, fresh_address: str
) -> None:
    """The non-root path for real: bmsandbox starts sshd on port 2222 and logs in as itself."""
    tmp_path = host_tmp
    user = logins.login_user()
    entry = pwd.getpwnam(user)
    base = tmp_path / "nonroot"
    base.mkdir()
    logins.grant_traverse(base)
    sshkeys.create_client_key(base / "id")
    logins.give_to_user(base, user)
    # A copy of the sandbox package the user can read: the checkout itself may sit in a
    # folder only root may enter (CI clones into a fresh 0700 temp folder).
    package_root = base / "pkg"
    shutil.copytree(
        Path(sshd.__file__).resolve().parent,
        package_root / "bm_upgrade" / "sandbox",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (package_root / "bm_upgrade" / "__init__.py").write_text("")
    logins.give_to_user(base, user)
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from bm_upgrade.sandbox import logins, sshd, sshkeys;"
        "b = Path(sys.argv[2]);"
        "h = sshd.start_sshd(sys.argv[3], logins.default_port(), b / 'host',"
        " authorized_key=b / 'id.pub', login_user=logins.login_user(), journal=b / 'j.jsonl');"
        "sshkeys.write_known_hosts(b / 'known_hosts', [h]);"
        "print(json.dumps({'pid': h.pid, 'port': h.port, 'user': h.login_user}))"
    )
    result = subprocess.run(
        [wrapper.wrapper_python(), "-S", "-c", script, str(package_root), str(base), fresh_address],
        capture_output=True,
        text=True,
        user=entry.pw_uid,
        group=entry.pw_gid,
        env={"PATH": "/usr/bin:/bin", "HOME": entry.pw_dir},
        check=False,
        timeout=30,
    )
    if result.returncode != 0 and "Permission denied" in result.stderr:
        pytest.skip(f"the checkout is not readable by {user}: {result.stderr.strip()[-200:]}")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    try:
        assert info["port"] == logins.NON_ROOT_DEFAULT_PORT and info["user"] == user
        connection = ssh_connect(
            fresh_address, info["port"], user, base / "id", base / "known_hosts"
        )
        try:
            assert ssh_run(connection, "id -un")[1].strip() == user
        finally:
            connection.close()
        events = [json.loads(line) for line in (base / "j.jsonl").read_text().splitlines()]
        assert events[-1]["command"] == "id -un"
    finally:
        processes.stop_process_tree(info["pid"])
    assert not processes.pid_alive(info["pid"])
    assert sys.executable  # the test process itself stays root
