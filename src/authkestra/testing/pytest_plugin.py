"""The pytest plugin of :mod:`authkestra.testing` (registered as ``authkestra`` when
authkestra is installed): fixtures for testing code that uses authkestra.

- ``authkestra_issuer``: a fresh :class:`~authkestra.testing.LocalIssuer` per test;
- ``make_token``: its :meth:`~authkestra.testing.LocalIssuer.token`, to mint tokens with
  the scopes, audience, lifetime and claims a test chooses.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .issuer import LocalIssuer

__all__ = ["authkestra_issuer", "make_token"]


@pytest.fixture
def authkestra_issuer() -> LocalIssuer:
    """An in-process issuer: its key, its metadata, JWKS and token endpoint."""
    return LocalIssuer()


@pytest.fixture
def make_token(authkestra_issuer: LocalIssuer) -> Callable[..., str]:
    """``make_token(scopes=[...], audience=..., expires_in=..., **claims)``: a token of
    ``authkestra_issuer``."""
    return authkestra_issuer.token
