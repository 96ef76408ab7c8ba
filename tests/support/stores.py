"""A server store made the way an operator makes one (``authkestra init``), for tests that
manage clients and keys: the management commands never make a store themselves."""

from __future__ import annotations

from pathlib import Path

from authkestra.server.context import open_store
from authkestra.server.settings import ServerSettings


def made_store(path: Path) -> str:
    """Make the SQLite store at ``path`` (and its master key beside it); its URL."""
    url = f"sqlite:///{path}"
    open_store(ServerSettings(db=url)).close()
    return url
