"""Fixtures of the authorization server tests: in-process servers on fresh stores."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.harness import InProcessServer, migrated_store

MakeServer = Callable[..., InProcessServer]


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated empty SQLite store, copied for each server (migrating costs 0.1 s)."""
    return migrated_store(tmp_path_factory.mktemp("template") / "authkestra.db")


@pytest.fixture
def make_server(tmp_path: Path, store_template: Path) -> Iterator[MakeServer]:
    """``make_server(**settings)``: an in-process server on a store of its own."""
    made: list[InProcessServer] = []

    def make(**overrides: Any) -> InProcessServer:
        directory = tmp_path / f"server-{len(made)}"
        server = InProcessServer(directory, template=store_template, **overrides)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


@pytest.fixture
def server(make_server: MakeServer) -> InProcessServer:
    return make_server()


@pytest.fixture(scope="module")
def shared_server(
    tmp_path_factory: pytest.TempPathFactory, store_template: Path
) -> Iterator[InProcessServer]:
    """One in-process server for a whole module (tests that register their own clients)."""
    server = InProcessServer(tmp_path_factory.mktemp("shared"), template=store_template)
    yield server
    server.close()
