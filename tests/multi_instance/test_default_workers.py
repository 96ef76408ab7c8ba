"""``authkestra serve`` with its default workers (one per core) on PostgreSQL + Redis: what
the workers must share, they share -- failure counts, spent assertions, keys, metrics."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.multi_instance.test_two_instances import COMMON_ENV, request_token, unique
from tests.support.authkestra_server import AuthkestraServer
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer

LIMIT = 3


@pytest.fixture(scope="module")
def server(
    postgres_server: PostgresServer, redis_server: RedisServer
) -> Iterator[AuthkestraServer]:
    db = postgres_server.create_database(unique("workers").replace("-", "_"))
    env = {
        **COMMON_ENV,
        "AUTHKESTRA_SERVER_MAX_FAILURES_PER_ADDRESS": str(LIMIT),
        "AUTHKESTRA_SERVER_FAILURE_WINDOW": "86400",
    }
    started = AuthkestraServer(db, redis=redis_server.url, extra_env=env, workers=None, admin=True)
    yield started
    started.stop()


def _fresh_post(server: AuthkestraServer, client: tuple[str, str]) -> httpx.Response:
    with httpx.Client() as fresh:  # a new connection: the kernel picks the worker
        return fresh.post(server.token_url, data={"grant_type": "client_credentials"}, auth=client)


def test_tokens_and_metrics_over_every_worker(server: AuthkestraServer) -> None:
    client = server.create_client("svc", "--scope", "read")
    for _ in range(30):
        assert _fresh_post(server, client).status_code == 200
    text = server.admin_request("GET", "/metrics", server.admin_token("authkestra:metrics")).text
    count = re.search(
        r'authkestra_token_requests_total\{client_id="svc",outcome="issued"\} (\S+)', text
    )
    assert count is not None and float(count.group(1)) == 30


def test_failures_count_once_over_every_worker(server: AuthkestraServer) -> None:
    """With Redis each worker enforces the whole limit on the shared count: the 429 comes
    after LIMIT failures, whichever workers saw them."""
    client = server.create_client("target", "--scope", "read")
    answers = [_fresh_post(server, (client[0], "wrong")).status_code for _ in range(LIMIT + 1)]
    assert answers[:LIMIT] == [401] * LIMIT
    assert answers[LIMIT] in (401, 429)  # "more than" the limit: the next one at the latest
    assert _fresh_post(server, (client[0], "wrong")).status_code == 429
    assert request_token(server, *client).status_code == 429
