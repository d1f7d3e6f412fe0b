"""Who logs in to the sandbox's hosts, on which port, and the permissions that let them in.

As root, hosts listen on port 22 and log users in as the unprivileged ``bmsandbox`` (created if
missing, with a shell that reads no startup files), and the sandbox's folders are made
reachable and owned by it; as an ordinary user, hosts listen on a port >= 1024 and log that
user in. :class:`SshdError`, raised by every module that sets up a sandbox sshd, is defined
here, the lowest of them.
"""

from __future__ import annotations

import getpass
import os
import pwd
import stat
import subprocess
from pathlib import Path

SANDBOX_USER = "bmsandbox"
SANDBOX_USER_HOME = Path("/var/lib/bmsandbox")
NON_ROOT_DEFAULT_PORT = 2222


class SshdError(Exception):
    """sshd (or a helper it needs) could not be set up or started; the message says why."""


def is_root() -> bool:
    """True when running as root."""
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
