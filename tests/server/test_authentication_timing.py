"""What a refused client authentication costs must not tell known client ids from unknown ones.

Checked by the work done, not by the clock (no test depends on timing; the timings
themselves are in ``bench/server_timing.py``): every refused assertion gets exactly one
signature check, whoever it names, and a client is read with its secrets in one query.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from authkestra.server import client_assertions
from tests.server.harness import InProcessServer, assert_oauth_error
from tests.server.test_key_client_auth import (
    KEYS,
    OTHER_EC,
    add_key_client,
    add_secret_jwt_client,
    assertion,
    hs_assertion,
    with_assertion,
)


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The algs of every signature check made while authenticating clients."""
    checks: list[str] = []
    real = client_assertions.verify_signature

    def counted(alg: str, *args: Any) -> bool:
        checks.append(alg)
        return real(alg, *args)

    monkeypatch.setattr(client_assertions, "verify_signature", counted)
    return checks


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_an_unknown_client_costs_a_signature_check(
    server: InProcessServer, signature_checks: list[str], alg: str
) -> None:
    answer = with_assertion(server, assertion(KEYS[alg], alg, "nobody"))
    assert_oauth_error(answer, "invalid_client", 400)
    assert signature_checks == [alg]


def test_a_known_client_with_a_wrong_signature_costs_the_same(
    server: InProcessServer, signature_checks: list[str]
) -> None:
    client_id = add_key_client(server, KEYS["ES256"])
    answer = with_assertion(server, assertion(OTHER_EC, "ES256", client_id))
    assert_oauth_error(answer, "invalid_client", 400)
    assert signature_checks == ["ES256"]


def test_a_kid_the_client_lacks_costs_a_signature_check(
    server: InProcessServer, signature_checks: list[str]
) -> None:
    client_id = add_key_client(server, KEYS["ES256"])
    token = assertion(KEYS["ES384"], "ES384", client_id)  # a kid and alg it does not have
    assert_oauth_error(with_assertion(server, token), "invalid_client", 400)
    assert signature_checks == ["ES384"]


def test_a_disabled_client_or_another_method_costs_a_signature_check(
    server: InProcessServer, signature_checks: list[str]
) -> None:
    disabled = add_key_client(server, KEYS["ES256"])
    server.ctx.store.set_enabled(disabled, False)
    assert_oauth_error(
        with_assertion(server, assertion(KEYS["ES256"], "ES256", disabled)), "invalid_client", 400
    )
    _, secret = add_secret_jwt_client(server)
    key_client = add_key_client(server, KEYS["ES256"])
    # An HS256 assertion for a private_key_jwt client: refused before any of its keys.
    assert_oauth_error(
        with_assertion(server, hs_assertion(secret, key_client)), "invalid_client", 400
    )
    assert signature_checks == ["ES256", "HS256"]


def test_an_unknown_client_secret_jwt_costs_an_hmac(
    server: InProcessServer, signature_checks: list[str]
) -> None:
    assert_oauth_error(
        with_assertion(server, hs_assertion("x" * 43, "nobody")), "invalid_client", 400
    )
    assert signature_checks == ["HS256"]


@pytest.fixture
def statements(server: InProcessServer) -> Iterator[list[str]]:
    """The SQL statements the server's store runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(server.ctx.store.engine, "before_cursor_execute", record)
    yield seen
    event.remove(server.ctx.store.engine, "before_cursor_execute", record)


def test_a_client_is_read_with_its_secrets_in_one_query(
    server: InProcessServer, statements: list[str]
) -> None:
    client_id, _ = server.add_client()
    server.ctx.store.rotate_secret(client_id, server.ctx.hasher.hash("new"), timedelta(hours=1))
    statements.clear()
    known = server.ctx.store.find_client(client_id)
    assert known is not None and len(known.secrets) == 2
    assert len(statements) == 1
    statements.clear()
    assert server.ctx.store.find_client("nobody") is None
    assert len(statements) == 1


def test_a_secret_check_for_a_known_or_unknown_id_reads_the_store_once(
    server: InProcessServer, statements: list[str]
) -> None:
    client = server.add_client()
    statements.clear()
    assert server.token((client[0], "wrong")).status_code == 401
    known = len(statements)
    statements.clear()
    assert server.token(("nobody", "wrong")).status_code == 401
    assert len(statements) == known == 1
