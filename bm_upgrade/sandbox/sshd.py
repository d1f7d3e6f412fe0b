"""One real OpenSSH sshd per sandbox host, on a loopback address.

Usable on its own (tests of the SSH layer) and by :mod:`bm_upgrade.sandbox.cluster`::

    key = sshkeys.create_client_key(tmp / "id_ed25519")
    handle = start_sshd("127.1.2.3", logins.default_port(), tmp / "host",
                        authorized_key=key.public_line, login_user=logins.login_user())
    sshkeys.write_known_hosts(tmp / "known_hosts", [handle])
    ...
    handle.stop()

Each sshd has its own host key, config, pid file, log and authorized_keys under its root
folder, ``UsePAM no``, ``StrictModes no`` (so keys under /tmp work) and a ``ForceCommand``
that runs the command wrapper (:mod:`bm_upgrade.sandbox.wrapper`): every command is journaled
before it runs, the sftp subsystem is exec'ed unchanged. Who logs in, and on which port:
:mod:`bm_upgrade.sandbox.logins`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bm_upgrade.sandbox.logins import SshdError, grant_traverse, is_root
from bm_upgrade.sandbox.processes import pid_alive, stop_process_tree
from bm_upgrade.sandbox.sshkeys import keygen, known_hosts_line
from bm_upgrade.sandbox.wrapper import force_command, install_wrapper

SSHD = "/usr/sbin/sshd"
SFTP_SERVER_CANDIDATES = (
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
)


@dataclass
class SshdHandle:
    """A running sshd: stop it with :meth:`stop` (by PID)."""

    address: str
    port: int
    root: Path
    pid: int
    host_key_pub: str
    config_path: Path
    log_path: Path
    login_user: str

    def known_hosts_line(self) -> str:
        """This host's line for a known_hosts file."""
        return known_hosts_line(self.address, self.port, self.host_key_pub)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the listener and every session it spawned (by PID); idempotent."""
        stop_process_tree(self.pid, timeout_s, root=self.root)


# -- ports ------------------------------------------------------------------------------------
def port_accepts(address: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when a TCP connection to ``address:port`` succeeds."""
    try:
        with socket.create_connection((address, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_port(address: str, port: int, timeout_s: float = 10.0) -> None:
    """Wait until ``address:port`` accepts connections; raises SshdError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not port_accepts(address, port):
        if time.monotonic() > deadline:
            raise SshdError(
                f"nothing accepts connections on {address}:{port} after {timeout_s:g} s"
            )
        time.sleep(0.02)


# -- sshd -------------------------------------------------------------------------------------
def sftp_server_path() -> str:
    """The machine's OpenSSH sftp-server (sshd's sftp subsystem)."""
    for candidate in SFTP_SERVER_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise SshdError(
        "no sftp-server found (looked in "
        f"{', '.join(SFTP_SERVER_CANDIDATES)}); install openssh-server"
    )


def sshd_config_text(
    *,
    address: str,
    port: int,
    host_key: Path,
    pid_file: Path,
    authorized_keys: Path,
    login_user: str,
    forced_command: str,
    sftp_server: str,
    environment: dict[str, str] | None = None,
) -> str:
    """The sshd_config of one sandbox host; ``environment`` is set in every session
    (``SetEnv``, e.g. the JAVA_HOME of a topology's ``java_home: login``)."""
    root_login = "prohibit-password" if login_user == "root" else "no"
    set_env = [f'SetEnv "{name}={value}"' for name, value in (environment or {}).items()]
    return "\n".join(
        [
            f"ListenAddress {address}:{port}",
            f"HostKey {host_key}",
            f"PidFile {pid_file}",
            f"AuthorizedKeysFile {authorized_keys}",
            f"AllowUsers {login_user}",
            f"PermitRootLogin {root_login}",
            "UsePAM no",
            # Keys and the sandbox folder live under /tmp-like folders other users can write.
            "StrictModes no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "AllowTcpForwarding yes",
            "PermitUserEnvironment no",
            # The tool fans out: many sessions per connection, many connections at once.
            "MaxSessions 64",
            "MaxStartups 200:30:400",
            "LoginGraceTime 30",
            "LogLevel INFO",
            f"Subsystem sftp {sftp_server}",
            *set_env,
            f"ForceCommand {forced_command}",
            "",
        ]
    )


def start_sshd(
    address: str,
    port: int,
    root: Path,
    *,
    authorized_key: str | Path,
    login_user: str,
    journal: Path | None = None,
    scan_root: Path | None = None,
    wrapper: Path | None = None,
    timeout_s: float = 10.0,
    environment: dict[str, str] | None = None,
) -> SshdHandle:
    """Start one real /usr/sbin/sshd on ``address:port`` with its files under ``root``.

    Args:
        address: a loopback address such as 127.5.6.7 (any 127.x.y.z works without setup).
        port: 22 needs root; see :func:`~bm_upgrade.sandbox.logins.default_port`.
        root: the host's folder; sshd's files go to ``root/etc/ssh``, ``root/run``,
            ``root/logs``.
        authorized_key: the client's public key line, or a path to its ``.pub`` file.
        login_user: the only user allowed in (see
            :func:`~bm_upgrade.sandbox.logins.login_user`).
        journal: journal file commands are appended to before they run (none: not journaled).
        scan_root: folder the wrapper scans for unpacked kits / deleted dirty backups after
            each command (default: ``root``).
        wrapper: the command wrapper from
            :func:`~bm_upgrade.sandbox.wrapper.install_wrapper`, shared by several hosts
            (default: installed into ``root/etc/ssh``).
        environment: variables set in every session (``SetEnv``; default: none, so a
            session has only what sshd itself gives a login).

    Raises:
        SshdError: sshd refused its config, could not bind, or did not come up in time;
            the message carries the tail of its log.
    """
    root = root.resolve()
    ssh_dir, run_dir, log_dir = root / "etc" / "ssh", root / "run", root / "logs"
    for folder in (ssh_dir, run_dir, log_dir):
        folder.mkdir(parents=True, exist_ok=True)
    if is_root():
        # sshd's privilege separation needs it; it vanishes with a tmpfs /run.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    host_key = ssh_dir / "ssh_host_ed25519_key"
    if not host_key.exists():
        keygen(host_key, f"sandbox-host-{address}")
    host_key_pub = (ssh_dir / "ssh_host_ed25519_key.pub").read_text(encoding="utf-8").strip()

    key_line = (
        Path(authorized_key).read_text(encoding="utf-8").strip()
        if isinstance(authorized_key, Path)
        else authorized_key.strip()
    )
    authorized_keys = ssh_dir / "authorized_keys"
    authorized_keys.write_text(key_line + "\n", encoding="utf-8")
    authorized_keys.chmod(0o644)

    if wrapper is None:
        wrapper = install_wrapper(ssh_dir)
    if journal is not None:
        _prepare_journal(journal, login_user)

    config = ssh_dir / "sshd_config"
    pid_file = run_dir / "sshd.pid"
    log_path = log_dir / "sshd.log"
    config.write_text(
        sshd_config_text(
            address=address,
            port=port,
            host_key=host_key,
            pid_file=pid_file,
            authorized_keys=authorized_keys,
            login_user=login_user,
            forced_command=force_command(
                wrapper, host=address, journal=journal, scan_root=scan_root or root
            ),
            sftp_server=sftp_server_path(),
            environment=environment,
        ),
        encoding="utf-8",
    )
    if is_root() and login_user != "root":
        # sshd reads authorized_keys as the login user, and the wrapper runs as that user.
        grant_traverse(ssh_dir)
    pid_file.unlink(missing_ok=True)
    log_path.unlink(missing_ok=True)

    # sshd daemonizes: the parent exits once the config is read (errors: non-zero), the
    # daemon binds, then writes its pid file.
    result = subprocess.run(
        [SSHD, "-f", str(config), "-E", str(log_path)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise SshdError(
            f"sshd for {address}:{port} refused to start: "
            f"{(result.stderr.strip() or _log_tail(log_path))}"
        )
    pid = _wait_for_pid(pid_file, address, port, log_path, timeout_s)
    deadline = time.monotonic() + timeout_s
    while not port_accepts(address, port):
        if not pid_alive(pid) or time.monotonic() > deadline:
            stop_process_tree(pid)
            raise SshdError(f"sshd for {address}:{port} did not come up: {_log_tail(log_path)}")
        time.sleep(0.01)
    return SshdHandle(
        address=address,
        port=port,
        root=root,
        pid=pid,
        host_key_pub=host_key_pub,
        config_path=config,
        log_path=log_path,
        login_user=login_user,
    )


def _prepare_journal(journal: Path, user: str) -> None:
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.touch(exist_ok=True)
    if is_root() and user != "root":
        entry = pwd.getpwnam(user)
        grant_traverse(journal.parent)
        # The wrapper runs as the login user; other sandbox programs append too.
        os.chown(journal, entry.pw_uid, entry.pw_gid)
        journal.chmod(0o666)


def _wait_for_pid(pid_file: Path, address: str, port: int, log_path: Path, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(FileNotFoundError, ValueError):
            text = pid_file.read_text(encoding="ascii").strip()
            if text:
                return int(text)
        tail = _log_tail(log_path).lower()
        if any(word in tail for word in _FATAL_LOG_WORDS) or time.monotonic() > deadline:
            raise SshdError(f"sshd for {address}:{port} did not start: {_log_tail(log_path)}")
        time.sleep(0.01)


_FATAL_LOG_WORDS = ("fatal", "cannot bind", "failed", "error")


def _log_tail(log_path: Path, lines: int = 5) -> str:
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"
