"""One real OpenSSH sshd per sandbox host, on a loopback address.

Usable on its own (tests of the SSH layer) and by :mod:`bm_upgrade.sandbox.cluster`::

    key = create_client_key(tmp / "id_ed25519")
    handle = start_sshd("127.1.2.3", default_port(), tmp / "host",
                        authorized_key=key.public_line, login_user=login_user())
    write_known_hosts(tmp / "known_hosts", [handle])
    ...
    handle.stop()

Each sshd has its own host key, config, pid file, log and authorized_keys under its root
folder, ``UsePAM no``, ``StrictModes no`` (so keys under /tmp work) and a ``ForceCommand``
that runs :mod:`bm_upgrade.sandbox.cmdwrap`: every command is journaled before it runs, the
sftp subsystem is exec'ed unchanged. As root it listens on port 22 and logs users in as the
unprivileged ``bmsandbox`` (created if missing, with a shell that reads no startup files);
as an ordinary user it listens on a port >= 1024 and logs that user in.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bm_upgrade.sandbox.processes import pid_alive, stop_process_tree

SSHD = "/usr/sbin/sshd"
SFTP_SERVER_CANDIDATES = (
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
)
SANDBOX_USER = "bmsandbox"
SANDBOX_USER_HOME = Path("/var/lib/bmsandbox")
NON_ROOT_DEFAULT_PORT = 2222
CMDWRAP_SOURCE = Path(__file__).with_name("cmdwrap.py")
CMDWRAP_C_SOURCE = Path(__file__).with_name("cmdwrap.c")


class SshdError(Exception):
    """sshd (or a helper it needs) could not be set up or started; the message says why."""


@dataclass(frozen=True)
class ClientKey:
    """An ed25519 key pair the tool logs in with."""

    private: Path
    public: Path
    public_line: str


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


# -- users and permissions --------------------------------------------------------------------
def is_root() -> bool:
    return os.geteuid() == 0


def login_user() -> str:
    """The user sandbox hosts log in as: ``bmsandbox`` as root (created if missing), else
    the current user."""
    if is_root():
        return ensure_sandbox_user()
    return getpass.getuser()


def default_port() -> int:
    """22 as root; an unprivileged port otherwise (only root may bind below 1024)."""
    return 22 if is_root() else NON_ROOT_DEFAULT_PORT


def ensure_sandbox_user(name: str = SANDBOX_USER, home: Path = SANDBOX_USER_HOME) -> str:
    """Create (if missing) the unprivileged system user sandbox logins use.

    Its shell is /bin/sh and its home holds no startup file, so a command does not pay for a
    login shell that reads a heavy .bashrc. Its password field is
    ``*`` (no password, yet not "locked": with ``UsePAM no`` sshd refuses locked accounts even
    for key logins).
    """
    if not is_root():
        raise SshdError(f"only root can create the sandbox user {name!r}")
    try:
        pwd.getpwnam(name)
    except KeyError:
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--shell",
                "/bin/sh",
                "--home-dir",
                str(home),
                "--no-create-home",
                "--user-group",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        # Another process may have created it at the same time: only its absence is an error.
        try:
            pwd.getpwnam(name)
        except KeyError:
            raise SshdError(
                f"cannot create the sandbox user {name!r}: "
                f"{result.stderr.strip() or result.returncode}"
            ) from None
    subprocess.run(["usermod", "-p", "*", name], capture_output=True, check=False)
    entry = pwd.getpwnam(name)
    home = Path(entry.pw_dir)
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    home.chmod(0o755)
    return name


def grant_traverse(path: Path) -> None:
    """Let every user traverse (not list) each existing ancestor of ``path``.

    pytest's tmp folders (``/tmp/pytest-of-root``) are mode 0700; the login user must reach
    authorized_keys, the command wrapper and the sandbox folder below them.
    """
    for folder in [path, *path.parents]:
        if not folder.exists() or folder == Path("/"):
            continue
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def give_to_user(path: Path, user: str) -> None:
    """Make ``path`` (recursively) owned by ``user`` when running as root; no-op otherwise."""
    if not is_root() or user == "root":
        return
    entry = pwd.getpwnam(user)
    for folder, dirs, files in os.walk(path):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in [*dirs, *files]:
            os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


# -- keys and known_hosts ---------------------------------------------------------------------
def _keygen(path: Path, comment: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".pub")):
        stale.unlink(missing_ok=True)
    result = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SshdError(f"ssh-keygen failed for {path}: {result.stderr.strip()}")


def create_client_key(path: Path, comment: str = "bm_upgrade-sandbox") -> ClientKey:
    """Create an ed25519 key pair without passphrase at ``path`` and ``path.pub``."""
    _keygen(path, comment)
    public = path.with_name(path.name + ".pub")
    return ClientKey(
        private=path, public=public, public_line=public.read_text(encoding="utf-8").strip()
    )


def known_hosts_line(address: str, port: int, host_key_pub: str) -> str:
    """``addr key`` for port 22, ``[addr]:port key`` otherwise (what ssh and paramiko look up)."""
    name = address if port == 22 else f"[{address}]:{port}"
    key_type, key_b64 = host_key_pub.split()[:2]
    return f"{name} {key_type} {key_b64}"


def write_known_hosts(path: Path, hosts: Iterable[SshdHandle | tuple[str, int, str]]) -> Path:
    """Write a known_hosts file for ``hosts`` (handles or ``(address, port, host_key_pub)``)."""
    lines = []
    for host in hosts:
        if isinstance(host, SshdHandle):
            lines.append(host.known_hosts_line())
        else:
            lines.append(known_hosts_line(*host))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    path.chmod(0o644)
    return path


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
    for candidate in SFTP_SERVER_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise SshdError(
        "no sftp-server found (looked in "
        f"{', '.join(SFTP_SERVER_CANDIDATES)}); install openssh-server"
    )


def wrapper_python() -> str:
    """A python3 every login user can run (the venv's may live under a private home)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


WRAPPER_ENV = "BM_SANDBOX_CMDWRAP"
"""``python`` makes sandboxes use the Python command wrapper even where a C compiler exists."""


def c_compiler() -> str | None:
    """A C compiler to build the command wrapper with (``$CC``, cc, gcc, clang), if any."""
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def install_wrapper(folder: Path, python: str | None = None) -> Path:
    """Install the command wrapper into ``folder`` (readable by every user); returns what
    the ForceCommand runs (see :func:`force_command`).

    The wrapper is compiled from ``cmdwrap.c`` when a C compiler is at hand (it skips
    Python's start-up on every command, and a sandbox upgrade runs hundreds of commands;
    ``bench/bench_sandbox.py`` prints both wrappers' cost), unless
    ``BM_SANDBOX_CMDWRAP=python``. ``cmdwrap.py`` is installed either
    way, byte-compiled: it is the fallback, and the compiled wrapper hands it the rare
    dirty-backup deletions. Running the ``.pyc`` saves the compiling Python does for a
    script on every start (a main script is never cached); the ``.py`` is used if byte-compiling
    fails.
    """
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "cmdwrap.py"
    shutil.copyfile(CMDWRAP_SOURCE, source)
    source.chmod(0o644)
    compiled = folder / "cmdwrap.pyc"
    result = subprocess.run(
        [
            python or wrapper_python(),
            "-S",
            "-I",
            "-c",
            "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], "
            "doraise=True)",
            str(source),
            str(compiled),
        ],
        capture_output=True,
        check=False,
    )
    python_wrapper = compiled if result.returncode == 0 and compiled.exists() else source
    python_wrapper.chmod(0o644)
    compiler = c_compiler()
    if compiler is None or os.environ.get(WRAPPER_ENV) == "python":
        return python_wrapper
    binary = folder / "cmdwrap"
    built = subprocess.run(
        [compiler, "-O2", "-o", str(binary), str(CMDWRAP_C_SOURCE)],
        capture_output=True,
        check=False,
    )
    if built.returncode != 0 or not binary.exists():
        return python_wrapper
    binary.chmod(0o755)
    return binary


def force_command(
    wrapper: Path,
    *,
    host: str,
    scan_root: Path | None,
    journal: Path | None,
    python: str | None = None,
) -> str:
    """The ForceCommand line running the command wrapper (a shell command, quoted)."""
    python = python or wrapper_python()
    if wrapper.suffix in (".py", ".pyc"):
        args = [python, "-S", "-I", str(wrapper), "--host", host]
    else:
        fallback = wrapper.with_name("cmdwrap.pyc")
        if not fallback.exists():
            fallback = wrapper.with_name("cmdwrap.py")
        args = [str(wrapper), "--python", python, "--pyc", str(fallback), "--host", host]
    if journal is not None:
        args += ["--journal", str(journal)]
    if scan_root is not None:
        args += ["--scan-root", str(scan_root)]
    return shlex.join(args)


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
) -> str:
    """The sshd_config of one sandbox host."""
    root_login = "prohibit-password" if login_user == "root" else "no"
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
) -> SshdHandle:
    """Start one real /usr/sbin/sshd on ``address:port`` with its files under ``root``.

    Args:
        address: a loopback address such as 127.5.6.7 (any 127.x.y.z works without setup).
        port: 22 needs root; see :func:`default_port`.
        root: the host's folder; sshd's files go to ``root/etc/ssh``, ``root/run``,
            ``root/logs``.
        authorized_key: the client's public key line, or a path to its ``.pub`` file.
        login_user: the only user allowed in (see :func:`login_user`).
        journal: journal file commands are appended to before they run (none: not journaled).
        scan_root: folder the wrapper scans for unpacked kits / deleted dirty backups after
            each command (default: ``root``).
        wrapper: the command wrapper from :func:`install_wrapper`, shared by several hosts
            (default: installed into ``root/etc/ssh``).

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
        _keygen(host_key, f"sandbox-host-{address}")
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
