"""Fixtures shared by every test folder: a real PostgreSQL server (tests/pg.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import PostgresServer, postgres_server, server_programs


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the session's own (each test module makes its own database);
    skipped when PostgreSQL's server programs are missing (`make test` installs them)."""
    programs = server_programs()
    if programs is None:
        pytest.skip(
            "PostgreSQL's server programs (initdb, postgres) are missing: install postgresql "
            "(scripts/system-deps.sh does it as root)"
        )
    with postgres_server(programs) as server:
        yield server
