"""A real PostgreSQL server of the tests' own, for Dagster's storage on PostgreSQL.

The server's programs are PostgreSQL's own (``initdb``, ``postgres``: Debian's
/usr/lib/postgresql/<version>/bin, or on PATH). The cluster lives in a fresh temporary folder,
listens on 127.0.0.1 on a free port (its Unix socket in that folder), and needs a password
(scram-sha-256), so the URL the tests hand to Dagster carries a secret as a real one does.
``initdb`` refuses to run as root: as root the cluster is created and run by an unprivileged
user (``postgres`` when it exists). The server is stopped by its PID (fast shutdown, then
immediate), and the folder removed.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEME = "postgresql+psycopg2"
"""SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3; Dagster's storage uses psycopg2."""
SUPERUSER = "bm_upgrade"
FALLBACK_USERS = ("postgres", "nobody")


def server_programs() -> Path | None:
    """The folder holding ``initdb`` and ``postgres`` (the newest version), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run the cluster as when root, or None (not root)."""
    if os.geteuid() != 0:
        return None
    for name in FALLBACK_USERS:
        with suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) exists")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    """A running cluster: where it listens and how to log in."""

    pid: int
    port: int
    password: str
    folder: Path

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL for ``database`` (psycopg2, password included)."""
        return f"{SCHEME}://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> Any:
        """A psycopg2 connection (autocommit) to ``database``."""
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname=database,
        )
        conn.autocommit = True
        return conn

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its URL."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def query(self, database: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """The rows of one query on ``database``."""
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                rows: list[tuple[Any, ...]] = cur.fetchall()
                return rows
        finally:
            conn.close()


def _ready(server: PostgresServer) -> bool:
    try:
        server.connect().close()
    except Exception:
        return False
    return True


@contextmanager
def postgres_server(programs: Path, timeout_s: float = 60.0) -> Iterator[PostgresServer]:
    """A PostgreSQL cluster initialised and started in a fresh folder, stopped after."""
    user = _run_as()
    ids: dict[str, Any] = {"user": user.pw_uid, "group": user.pw_gid} if user else {}
    folder = Path(tempfile.mkdtemp(prefix="bm-upgrade-pg-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        if user:
            os.chown(folder, user.pw_uid, user.pw_gid)
        password = secrets.token_urlsafe(16)
        pwfile = folder / "pw"
        pwfile.write_text(password + "\n")
        if user:
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        data = folder / "data"
        subprocess.run(
            [
                str(programs / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
            ],
            cwd=folder,
            check=True,
            capture_output=True,
            **ids,
        )
        pwfile.unlink()
        port = _free_port()
        log = folder / "postgres.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [
                    str(programs / "postgres"),
                    "-D",
                    str(data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-k",
                    str(folder),
                    # A test database: durability is not the point, speed is.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                cwd=folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **ids,
            )
        server = PostgresServer(proc.pid, port, password, folder)
        deadline = time.monotonic() + timeout_s
        while not _ready(server):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(folder, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL to its process group."""
    for sig in (signal.SIGINT, signal.SIGQUIT):
        with suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=15)
