"""Fixtures for several ``authkestra serve`` instances sharing one PostgreSQL and one Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres_server import PostgresServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL on loopback, for the whole session."""
    server = PostgresServer()
    yield server
    server.stop()
