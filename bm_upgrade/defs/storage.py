"""Where an instance keeps its run history: SQLite files in ``DAGSTER_HOME`` (rehearsals), or
PostgreSQL (production: deploy/dagster-postgres.yaml, `make serve`).

For PostgreSQL the database URL, password included, comes from the environment
(:data:`PG_URL_ENV` in bm_upgrade's settings), never from a file. :func:`check_storage` reads
a ``dagster.yaml`` before Dagster opens it and turns what would otherwise surface as a driver
traceback (the variable unset, a URL SQLAlchemy reads as another driver, a password written
into the file, a server that cannot be reached or refuses the login) into one sentence that
never shows the password.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bm_upgrade.errors import UserError
from bm_upgrade.redact import redact_text

PG_URL_ENV = "BM_UPGRADE_PG_URL"
"""The variable deploy/dagster-postgres.yaml reads the database URL from."""
PG_SCHEME = "postgresql+psycopg2"
"""The URL scheme of Dagster's PostgreSQL storage: SQLAlchemy 2.1 reads a bare
``postgresql://`` as the psycopg (3) driver, and dagster-postgres installs psycopg2."""
PG_EXAMPLE = f"{PG_SCHEME}://USER:PASSWORD@HOST:5432/DATABASE"


def postgres_settings(home: Path) -> Mapping[str, Any] | None:
    """The ``storage: postgres:`` block of ``home``'s dagster.yaml, or None (SQLite, or a
    file Dagster itself will judge)."""
    try:
        settings = yaml.safe_load((home / "dagster.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    storage = settings.get("storage") if isinstance(settings, dict) else None
    block = storage.get("postgres") if isinstance(storage, dict) else None
    return block if isinstance(block, dict) else None


def postgres_url(home: Path) -> str | None:
    """The database URL ``home``'s dagster.yaml names, from its variable; None for SQLite.

    Raises:
        UserError: the variable is unset, the URL's scheme is not :data:`PG_SCHEME`, or the
            file holds a password itself.
    """
    block = postgres_settings(home)
    if block is None:
        return None
    where = home / "dagster.yaml"
    url = block.get("postgres_url")
    if isinstance(url, dict) and isinstance(url.get("env"), str):
        name = url["env"]
        value = os.environ.get(name, "")
        if not value:
            raise UserError(
                f"{where} keeps the run history in PostgreSQL at the URL in ${name}, which is "
                f"not set: export {name}={PG_EXAMPLE} (or put it in the service's "
                "environment file)"
            )
        _check_scheme(value, f"${name}")
        return value
    if isinstance(url, str):
        if urlsplit(url).password:
            raise UserError(
                f"{where}: storage.postgres.postgres_url holds a password; read the URL from "
                f"the environment instead (postgres_url: {{env: {PG_URL_ENV}}})"
            )
        _check_scheme(url, f"{where}: storage.postgres.postgres_url")
        return url
    db = block.get("postgres_db")
    if isinstance(db, dict) and isinstance(db.get("password"), str) and db["password"]:
        raise UserError(
            f"{where}: storage.postgres.postgres_db.password is written in the file; read "
            "it from the environment instead (password: {env: VARIABLE})"
        )
    return None


def _check_scheme(url: str, what: str) -> None:
    scheme = url.partition("://")[0]
    if scheme != PG_SCHEME:
        raise UserError(
            f"{what} starts with {scheme + '://'!r}; Dagster's PostgreSQL storage needs "
            f"{PG_SCHEME + '://'!r} (e.g. {PG_EXAMPLE})"
        )


def check_storage(home: Path, timeout_s: int = 10) -> None:
    """For an instance on PostgreSQL, log in to its database once before Dagster does (which
    retries for a while, then fails with a traceback); nothing to check for SQLite.

    Raises:
        UserError: as :func:`postgres_url`, or the server cannot be reached or refuses the
            login, naming the server and the database but never the password.
    """
    url = postgres_url(home)
    if url is None:
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": timeout_s})
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as exc:
        parts = urlsplit(url)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        text = redact_text(reason[0] if reason else type(exc).__name__, url)
        raise UserError(
            f"the PostgreSQL server at {parts.hostname}:{parts.port or 5432} (database "
            f"{parts.path.lstrip('/') or '?'}, named by {home / 'dagster.yaml'}) cannot be "
            f"used: {text}; start it, or fix the URL, the login or the database"
        ) from None
    finally:
        engine.dispose()
