"""What one issued token costs the store and Redis (docs/scaling.md builds on these counts).

Counted, not timed: SQL statements through the store's engine, Redis commands through
its client (a pipeline is one round trip). Issuing a JWT writes nothing anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from tests.server.conftest import MakeServer
from tests.server.harness import InProcessServer


class Counter:
    def __init__(self) -> None:
        self.sql: list[str] = []
        self.redis: list[str] = []

    def reset(self) -> None:
        self.sql.clear()
        self.redis.clear()


@pytest.fixture
def counted() -> Iterator[Any]:
    """``counted(server)``: a Counter of the server's store and Redis round trips."""
    undo: list[Any] = []

    def attach(server: InProcessServer) -> Counter:
        counter = Counter()

        def on_sql(*args: Any) -> None:
            counter.sql.append(args[2])

        event.listen(server.ctx.store.engine, "before_cursor_execute", on_sql)
        undo.append(lambda: event.remove(server.ctx.store.engine, "before_cursor_execute", on_sql))
        redis = server.ctx.redis
        if redis is not None:
            command, pipeline = redis.execute_command, redis.pipeline

            def counted_command(*args: Any, **kwargs: Any) -> Any:
                counter.redis.append(str(args[0]))
                return command(*args, **kwargs)

            def counted_pipeline(*args: Any, **kwargs: Any) -> Any:
                pipe = pipeline(*args, **kwargs)
                execute = pipe.execute

                def run(*a: Any, **k: Any) -> Any:
                    counter.redis.append("PIPELINE")
                    return execute(*a, **k)

                pipe.execute = run
                return pipe

            redis.execute_command, redis.pipeline = counted_command, counted_pipeline
        return counter

    yield attach
    for step in undo:
        step()


def warmed(
    make_server: MakeServer, counted: Any, **settings: Any
) -> tuple[InProcessServer, tuple[str, str], Counter]:
    """A server whose client and keys are in memory (one token issued), and its counter."""
    server = make_server(cache_seconds=60, **settings)
    client = server.add_client()
    server.access_token(client)  # reads the client and the keys once
    return server, client, counted(server)


def test_a_token_from_memory_costs_no_round_trip(make_server: MakeServer, counted: Any) -> None:
    """SQLite, no Redis, client and keys cached (the steady state within cache_seconds)."""
    server, client, counter = warmed(make_server, counted)
    for _ in range(10):
        server.access_token(client)
    assert counter.sql == []


def test_a_client_not_in_memory_is_one_read(make_server: MakeServer, counted: Any) -> None:
    server = make_server(cache_seconds=60)
    client = server.add_client()
    server.ctx.keys.signing_key()
    counter = counted(server)
    server.access_token(client)
    assert len(counter.sql) == 1 and counter.sql[0].lstrip().upper().startswith("SELECT")


def test_with_redis_a_token_is_one_redis_read_and_no_write(
    make_server: MakeServer, counted: Any, redis_url: str
) -> None:
    """The failure limit's count for the caller's address: one GET; nothing written."""
    server, client, counter = warmed(make_server, counted, redis=redis_url)
    for _ in range(10):
        server.access_token(client)
    assert counter.sql == []
    assert counter.redis == ["GET"] * 10


def test_a_refused_secret_is_one_redis_write(
    make_server: MakeServer, counted: Any, redis_url: str
) -> None:
    server, client, counter = warmed(make_server, counted, redis=redis_url)
    assert server.token((client[0], "wrong")).status_code == 401
    assert counter.redis == ["GET", "PIPELINE"]  # the count, then INCR + EXPIRE at once
    assert counter.sql == []
