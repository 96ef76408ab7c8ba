"""The admin API of instance A changes what instance B serves (one PostgreSQL, one Redis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.multi_instance.test_two_instances import (
    LENIENT_ENV,
    eventually,
    get_token,
    header_kid,
    kids,
    refused,
    unique,
    works,
)
from tests.support.authkestra_server import AuthkestraServer
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def pair(
    postgres_server: PostgresServer, redis_server: RedisServer
) -> Iterator[tuple[AuthkestraServer, AuthkestraServer]]:
    """A with its admin API, B without, on one fresh database and the session's Redis."""
    db = postgres_server.create_database(unique("admin").replace("-", "_"))
    a = AuthkestraServer(db, redis=redis_server.url, extra_env=LENIENT_ENV, admin=True)
    b = AuthkestraServer(db, redis=redis_server.url, extra_env=LENIENT_ENV)
    yield a, b
    a.stop()
    b.stop()


def test_a_client_created_through_a_works_on_b_at_once(
    pair: tuple[AuthkestraServer, AuthkestraServer],
) -> None:
    a, b = pair
    token = a.admin_token()
    client_id = unique("made-on-a")
    made = a.admin_request(
        "POST", "/admin/clients", token, json={"client_id": client_id, "scope": "read"}
    )
    assert made.status_code == 201, made.text
    secret = made.json()["client_secret"]
    assert works(b, client_id, secret)  # never looked up on B before: read at once

    # Disabled through A: B refuses it once its client cache (2 s) has moved on.
    changed = a.admin_request(
        "PATCH", f"/admin/clients/{client_id}", token, json={"enabled": False}
    )
    assert changed.status_code == 200
    eventually(lambda: refused(b, client_id, secret), "B refuses the client A disabled")


def test_a_key_withdrawn_on_a_leaves_b_jwks_within_the_refresh(
    pair: tuple[AuthkestraServer, AuthkestraServer],
) -> None:
    a, b = pair
    token = a.admin_token()
    rotated = a.admin_request(
        "POST", "/admin/keys/rotate", token, json={"publish_ahead": 0, "keep_old_for": 600}
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()["kid"]
    eventually(lambda: new in kids(b), "B publishes the key rotated on A")
    old = [kid for kid in kids(b) if kid != new]
    assert old
    token = a.admin_token()  # signed by the new key: survives the withdrawal below
    for kid in old:
        answer = a.admin_request("DELETE", f"/admin/keys/{kid}", token)
        assert answer.status_code == 200, answer.text
    eventually(lambda: kids(b) == [new], "B's JWKS holds only the key left")
    client = a.create_client(unique("after"), "--scope", "read")
    assert header_kid(get_token(b, *client)) == new
