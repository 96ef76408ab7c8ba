"""Fixtures for several ``authkestra serve`` instances sharing one PostgreSQL and one Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres_server import PostgresServer

VARIABLE = "AUTHKESTRA_SERVER_MASTER_KEY_FILE"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL on loopback, for the whole session."""
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture(scope="package", autouse=True)
def master_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One master key for every instance and command on the shared PostgreSQL store, as an
    operator gives it (a PostgreSQL store has no file to keep one beside)."""
    from authkestra.server.master_key import MasterKey

    path = tmp_path_factory.mktemp("master-key") / "master.key"
    MasterKey.generate(path)
    previous = os.environ.get(VARIABLE)
    os.environ[VARIABLE] = str(path)
    yield path
    if previous is None:
        del os.environ[VARIABLE]
    else:
        os.environ[VARIABLE] = previous
