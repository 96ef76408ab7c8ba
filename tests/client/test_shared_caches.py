"""Tokens shared beyond one flow: a 0600 file for processes on a machine, Redis for a fleet."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import stat
from pathlib import Path

import pytest
import redis

from authkestra import ClientCredentialsFlow, RetryPolicy
from authkestra.cache import CachedToken, FileCache, RedisCache, TokenCache
from tests.support.clock import FakeClock
from tests.support.fleet import fetch_token
from tests.support.redis_server import RedisServer, free_port
from tests.support.token_server import TokenServer

FAST = RetryPolicy(max_attempts=1, total_timeout=5)


def flow_with(
    server: TokenServer, cache: TokenCache, clock: FakeClock | None = None
) -> ClientCredentialsFlow:
    return ClientCredentialsFlow(
        "svc", "secret-value-123", server.url, cache=cache, retry=FAST, clock=clock
    )


def run_fleet(server: TokenServer, kind: str, arg: str, processes: int = 8) -> list[str]:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(processes)
        with context.Pool(processes) as pool:
            results = [
                pool.apply_async(fetch_token, (server.url, kind, arg, barrier))
                for _ in range(processes)
            ]
            return [r.get(timeout=60) for r in results]


# -- FileCache -------------------------------------------------------------------------------


def test_file_cache_is_private_and_shared(token_server: TokenServer, tmp_path: Path) -> None:
    path = tmp_path / "cache" / "tokens.json"
    one = flow_with(token_server, FileCache(path))
    two = flow_with(token_server, FileCache(path))  # another process, as far as the cache knows
    assert one.get_token_sync(["read"]).access_token == two.get_token_sync(["read"]).access_token
    assert token_server.requests == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    assert "secret-value-123" not in content


def test_file_cache_ignores_corrupt_and_world_readable_files(
    token_server: TokenServer, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("{not json")
    os.chmod(path, 0o600)
    assert flow_with(token_server, FileCache(path)).get_token_sync().access_token == "tok-1"
    # Someone else could have planted this: a readable-by-others file is not trusted.
    planted = CachedToken.from_json(next(iter(json.loads(path.read_text()).values())))
    os.chmod(path, 0o644)
    assert FileCache(path).load(next(iter(json.loads(path.read_text())))) is None
    assert planted.token.access_token == "tok-1"
    assert flow_with(token_server, FileCache(path)).get_token_sync().access_token == "tok-2"


def test_a_corrupt_file_cache_is_reported_once_per_call(
    token_server: TokenServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("{not json")
    os.chmod(path, 0o600)
    with caplog.at_level("WARNING", logger="authkestra"):
        flow_with(token_server, FileCache(path)).get_token_sync()
    said = [r.getMessage() for r in caplog.records if "corrupt" in r.getMessage()]
    assert said == [f"authkestra: token cache {path} is corrupt; starting afresh"]


def test_file_cache_drops_expired_records(tmp_path: Path) -> None:
    import time

    from authkestra import Token

    cache = FileCache(tmp_path / "tokens.json")
    now = time.time()
    cache.save("old", CachedToken(Token("old-token"), now - 100, now - 50, now - 1))
    cache.save("new", CachedToken(Token("new-token"), now, now + 50, now + 100))
    assert cache.load("old") is None
    assert cache.load("new") is not None
    assert set(json.loads((tmp_path / "tokens.json").read_text())) == {"new"}  # pruned on write
    cache.delete("new")
    assert cache.load("new") is None


def test_file_cache_fleet_makes_one_request(tmp_path: Path) -> None:
    server = TokenServer(delay=0.5)
    try:
        tokens = run_fleet(server, "file", str(tmp_path / "tokens.json"))
        assert server.requests == 1
        assert set(tokens) == {"tok-1"}
    finally:
        server.stop()


def test_file_cache_unwritable_falls_back(
    token_server: TokenServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    flow = flow_with(token_server, FileCache(blocker / "tokens.json"))
    assert flow.get_token_sync().access_token == "tok-1"
    assert "token cache" in caplog.text


# -- RedisCache --------------------------------------------------------------------------------


def test_redis_cache_shares_one_token(token_server: TokenServer, redis_url: str) -> None:
    one = flow_with(token_server, RedisCache(redis_url))
    two = flow_with(token_server, RedisCache(redis.Redis.from_url(redis_url)))
    assert one.get_token_sync(["read"]).access_token == two.get_token_sync(["read"]).access_token
    assert token_server.requests == 1
    client = redis.Redis.from_url(redis_url)
    (key,) = client.keys("authkestra:token:*")
    ttl = client.pttl(key)
    assert 0 < ttl <= 300_000
    assert b"secret-value-123" not in client.get(key)


def test_redis_fleet_makes_one_request(redis_url: str) -> None:
    server = TokenServer(delay=0.5)
    try:
        tokens = run_fleet(server, "redis", redis_url)
        assert server.requests == 1
        assert set(tokens) == {"tok-1"}
    finally:
        server.stop()


def test_redis_fleet_refresh_is_one_request(redis_url: str, clock: FakeClock) -> None:
    server = TokenServer(expires_in=100)
    try:
        flows = [flow_with(server, RedisCache(redis_url), clock) for _ in range(5)]
        assert {f.get_token_sync().access_token for f in flows} == {"tok-1"}
        clock.advance(99)  # expired for everyone (wall clock in the records too)
        assert {f.get_token_sync().access_token for f in flows} == {"tok-2"}
        assert server.requests == 2
    finally:
        server.stop()


def test_redis_lock_is_exclusive_and_released_only_by_its_owner(redis_url: str) -> None:
    cache, other = RedisCache(redis_url), RedisCache(redis_url)
    with cache.lock("k", 10) as held:
        assert held
        with other.lock("k", 10) as second:
            assert not second  # a second process does not get it
    with other.lock("k", 0.05) as again:
        assert again  # released by its owner
        client = redis.Redis.from_url(redis_url)
        client.set("authkestra:lock:k", "someone-else")  # ours expired; another took it
    assert client.get("authkestra:lock:k") == b"someone-else"  # not released by us


def test_redis_down_never_fails_the_caller(
    token_server: TokenServer, caplog: pytest.LogCaptureFixture
) -> None:
    flow = flow_with(token_server, RedisCache(f"redis://127.0.0.1:{free_port()}/0"))
    assert flow.get_token_sync().access_token == "tok-1"
    assert "token cache" in caplog.text and "continuing without it" in caplog.text


def test_redis_dying_mid_life(token_server: TokenServer) -> None:
    server = RedisServer()
    flow = flow_with(token_server, RedisCache(server.url))
    first = flow.get_token_sync()
    server.stop()
    assert flow.get_token_sync() is first  # served from memory
    assert flow.get_token_sync(force_refresh=True).access_token == "tok-2"


def test_corrupt_redis_record_is_ignored(token_server: TokenServer, redis_url: str) -> None:
    flow = flow_with(token_server, RedisCache(redis_url))
    flow.get_token_sync()
    client = redis.Redis.from_url(redis_url)
    (key,) = client.keys("authkestra:token:*")
    client.set(key, b"\xff garbage")
    other = flow_with(token_server, RedisCache(redis_url))
    assert other.get_token_sync().access_token == "tok-2"


def test_invalidated_token_is_not_adopted_back(token_server: TokenServer, redis_url: str) -> None:
    flow = flow_with(token_server, RedisCache(redis_url))
    bad = flow.get_token_sync()
    assert flow.invalidate(token=bad)
    assert flow.get_token_sync().access_token == "tok-2"


def test_custom_backend_contract(token_server: TokenServer) -> None:
    class DictCache(TokenCache):
        blocking = False

        def __init__(self) -> None:
            self.data: dict[str, str] = {}

        def load(self, key: str) -> CachedToken | None:
            raw = self.data.get(key)
            return CachedToken.from_json(raw) if raw else None

        def save(self, key: str, record: CachedToken) -> None:
            self.data[key] = record.to_json()

        def delete(self, key: str) -> None:
            self.data.pop(key, None)

    cache = DictCache()
    assert flow_with(token_server, cache).get_token_sync().access_token == "tok-1"
    assert flow_with(token_server, cache).get_token_sync().access_token == "tok-1"
    assert token_server.requests == 1


def test_cached_token_record_round_trip_and_repr() -> None:
    from authkestra import Token

    record = CachedToken(
        Token("abc-secret-token", expires_in=5, scope="a b", raw={"x": 1}), 1.0, 2.0, 3.0
    )
    again = CachedToken.from_json(record.to_json())
    assert again.token == record.token and again.refresh_after == 2.0
    assert "abc-secret-token" not in repr(record)
    for bad in ["", "[]", '{"v": 2}', '{"v": 1}', '{"v":1,"access_token":""}']:
        with pytest.raises(ValueError):
            CachedToken.from_json(bad)


def test_logs_do_not_leak_tokens(
    token_server: TokenServer, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="authkestra")
    flow_with(token_server, RedisCache(redis_url)).get_token_sync()
    assert "tok-1" not in caplog.text and "secret-value-123" not in caplog.text


def test_file_cache_leaves_no_lock_files_behind(token_server: TokenServer, tmp_path: Path) -> None:
    flow_with(token_server, FileCache(tmp_path / "tokens.json")).get_token_sync()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json"]


def _count_under_lock(path: str, counter: str, times: int) -> None:
    from authkestra.cache._lockfile import held

    for _ in range(times):
        with held(Path(path), blocking=True) as got:
            assert got
            value = int(Path(counter).read_text() or "0")
            Path(counter).write_text(str(value + 1))


def test_the_lock_file_excludes_other_processes_and_goes_away(tmp_path: Path) -> None:
    """Processes that increment a counter under the lock lose no increment, although each
    holder removes the lock file on the way out; and none is left at the end."""
    import multiprocessing

    counter = tmp_path / "counter"
    counter.write_text("0")
    lock = tmp_path / "counter.lock"
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_count_under_lock, args=(str(lock), str(counter), 60))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert counter.read_text() == "240"
    assert not lock.exists()
