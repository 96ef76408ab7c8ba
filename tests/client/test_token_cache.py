"""Token management in one process: cache, one fetch in flight, refresh ahead, outages, back-off."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import anyio
import pytest

from authkestra import ClientCredentialsFlow, NetworkError, ProviderError, RetryPolicy, Token
from authkestra.cache import MemoryCache
from authkestra.flow.events import TokenEvent, TokenEventKind
from tests.support.clock import FakeClock
from tests.support.token_server import TokenServer

FAST = RetryPolicy(max_attempts=1, total_timeout=5)


def make_flow(
    server: TokenServer, clock: FakeClock | None = None, **kwargs: object
) -> ClientCredentialsFlow:
    options: dict[str, object] = {"retry": FAST, "clock": clock}
    options.update(kwargs)
    return ClientCredentialsFlow("svc", "secret-value-123", server.url, **options)  # type: ignore[arg-type]


def eventually(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Wait (bounded) for something a background thread or task does."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.005)


def test_second_call_is_served_from_the_cache(token_server: TokenServer, clock: FakeClock) -> None:
    flow = make_flow(token_server, clock)
    first = flow.get_token_sync(["read"])
    assert flow.get_token_sync(["read"]) is first
    assert flow.get_token_sync("read") is first
    assert anyio.run(flow.get_token, ["read"]) is first
    assert token_server.requests == 1


def test_different_parameters_are_different_tokens(
    token_server: TokenServer, clock: FakeClock
) -> None:
    flow = make_flow(token_server, clock)
    a = flow.get_token_sync(["read"])
    b = flow.get_token_sync(["read", "write"])
    c = flow.get_token_sync(["write", "read"])  # same set, other order: same token
    d = flow.get_token_sync(["read"], audience="api-2")
    e = flow.get_token_sync(["read"], resource="https://r/")
    assert len({a.access_token, b.access_token, d.access_token, e.access_token}) == 4
    assert c is b
    assert token_server.requests == 4


def test_force_refresh_and_invalidate(token_server: TokenServer, clock: FakeClock) -> None:
    flow = make_flow(token_server, clock)
    first = flow.get_token_sync()
    second = flow.get_token_sync(force_refresh=True)
    assert second.access_token != first.access_token
    assert flow.invalidate(token=first) is False  # no longer the cached one
    assert flow.invalidate(token=second) is True
    third = flow.get_token_sync()
    assert third.access_token not in (first.access_token, second.access_token)
    assert flow.invalidate() is True
    assert flow.invalidate() is False
    assert token_server.requests == 3


def test_the_secret_is_not_part_of_the_key(token_server: TokenServer) -> None:
    shared = MemoryCache()
    one = ClientCredentialsFlow("svc", "secret-A-123456", token_server.url, cache=shared)
    two = ClientCredentialsFlow("svc", "secret-B-123456", token_server.url, cache=shared)
    assert one.get_token_sync().access_token == two.get_token_sync().access_token
    assert token_server.requests == 1
    (key,) = shared._records
    assert "secret" not in key and len(key) == 64


def test_cold_start_many_coroutines_and_threads_one_request() -> None:
    server = TokenServer(delay=0.3)
    try:
        flow = make_flow(server)
        results: list[Token] = []
        lock = threading.Lock()

        def thread_caller() -> None:
            token = flow.get_token_sync(["read"])
            with lock:
                results.append(token)

        async def main() -> None:
            async def one() -> None:
                token = await flow.get_token(["read"])
                with lock:
                    results.append(token)

            async with anyio.create_task_group() as tg:
                for _ in range(1000):
                    tg.start_soon(one)

        # 8 threads and 1000 coroutines ask at once, while the one request is slow.
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(thread_caller) for _ in range(8)]
            anyio.run(main)
            for f in futures:
                f.result()
        assert server.requests == 1
        assert len(results) == 1008
        assert len({t.access_token for t in results}) == 1
    finally:
        server.stop()


def test_at_expiry_many_callers_one_request(clock: FakeClock) -> None:
    server = TokenServer(expires_in=60, delay=0.2)
    try:
        flow = make_flow(server, clock)
        flow.get_token_sync()
        clock.advance(61)  # expired: every caller must wait for the new one

        async def main() -> list[Token]:
            tokens: list[Token] = []

            async def one() -> None:
                tokens.append(await flow.get_token())

            async with anyio.create_task_group() as tg:
                for _ in range(100):
                    tg.start_soon(one)
            return tokens

        tokens = anyio.run(main)
        assert server.requests == 2
        assert {t.access_token for t in tokens} == {"tok-2"}
    finally:
        server.stop()


def test_errors_reach_every_waiting_caller_and_are_not_cached_for_good(clock: FakeClock) -> None:
    server = TokenServer(delay=0.2)
    server.down = True
    try:
        flow = make_flow(server, clock)
        with ThreadPoolExecutor(20) as pool:
            outcomes = list(pool.map(lambda _: _outcome(flow.get_token_sync), range(20)))
        assert all(isinstance(o, ProviderError) for o in outcomes)
        assert server.requests == 1
        # Within the back-off window the failure is answered again, at once, without a request.
        with pytest.raises(ProviderError):
            flow.get_token_sync()
        assert server.requests == 1
        server.down = False
        clock.advance(2)  # past the first back-off (1 s at most)
        assert flow.get_token_sync().access_token == "tok-1"
        assert server.requests == 2
    finally:
        server.stop()


def _outcome(call: Callable[[], object]) -> object:
    try:
        return call()
    except Exception as exc:
        return exc


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_refresh_ahead_serves_the_current_token_without_waiting(
    mode: str, clock: FakeClock
) -> None:
    server = TokenServer(expires_in=100)
    try:
        flow = make_flow(server, clock)
        first = flow.get_token_sync()
        clock.advance(70)  # before the renewal window (75-85%)
        assert flow.get_token_sync() is first
        assert server.requests == 1
        clock.advance(16)  # 86%: past any renewal point, still usable
        server.delay = 0.3  # the renewal is slow; the caller must not wait for it
        if mode == "sync":
            assert flow.get_token_sync() is first
        else:

            async def call_and_wait() -> Token:
                token = await flow.get_token()
                # Keep the loop alive until the background renewal lands.
                with anyio.fail_after(10):
                    while server.requests < 2 or flow.get_token_sync() is first:  # noqa: ASYNC110 - polls another server
                        await anyio.sleep(0.01)
                return token

            assert anyio.run(call_and_wait) is first
        eventually(lambda: server.requests == 2, "a background renewal")
        eventually(
            lambda: flow.get_token_sync().access_token == "tok-2", "the renewed token served"
        )
        assert server.requests == 2
    finally:
        server.stop()


def test_outage_during_refresh_keeps_serving_then_fails_promptly(clock: FakeClock) -> None:
    server = TokenServer(expires_in=100)
    events: list[TokenEvent] = []
    try:
        flow = make_flow(server, clock, on_event=events.append)
        first = flow.get_token_sync()
        server.down = True
        clock.advance(86)
        assert flow.get_token_sync() is first  # renewal starts in the background and fails
        eventually(
            lambda: any(e.kind is TokenEventKind.REFRESH_FAILED for e in events), "refresh failure"
        )
        for _ in range(50):
            assert flow.get_token_sync() is first  # still valid: still served
        assert server.requests == 2  # and the failing endpoint is not hammered
        clock.advance(14)  # expired now
        started = time.monotonic()
        with pytest.raises(ProviderError):
            flow.get_token_sync()
        assert time.monotonic() - started < 5  # prompt, not a hang (generous bound on a loaded box)
    finally:
        server.stop()


def test_short_lived_token_still_works(clock: FakeClock) -> None:
    server = TokenServer(expires_in=5)
    try:
        flow = make_flow(server, clock)
        first = flow.get_token_sync()
        clock.advance(3.5)  # 70%: served as is
        assert flow.get_token_sync() is first
        clock.advance(1.1)  # 4.6 s: inside the 0.5 s margin, so renewed before use
        assert flow.get_token_sync().access_token != first.access_token
    finally:
        server.stop()


def _jwt(exp: float) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'exp': exp})}.sig"


def test_no_expires_in_uses_the_jwt_exp(clock: FakeClock) -> None:
    server = TokenServer(expires_in=None)
    server.access_token_factory = lambda n: _jwt(clock.now().timestamp() + 40) + str(n)
    try:
        flow = make_flow(server, clock)
        first = flow.get_token_sync()
        assert first.expires_in is None
        clock.advance(30)
        assert flow.get_token_sync() is first
        clock.advance(7)  # 37 s of 40: inside the margin
        assert flow.get_token_sync() is not first
    finally:
        server.stop()


def test_no_expiry_at_all_uses_the_default_ttl_never_forever(clock: FakeClock) -> None:
    server = TokenServer(expires_in=None)
    try:
        flow = make_flow(server, clock, default_token_ttl=50)
        first = flow.get_token_sync()
        clock.advance(44)
        assert flow.get_token_sync() is first
        clock.advance(2)  # past 50 - 5 (margin)
        assert flow.get_token_sync() is not first
    finally:
        server.stop()


def test_events(token_server: TokenServer, clock: FakeClock) -> None:
    events: list[TokenEvent] = []
    flow = make_flow(token_server, clock, on_event=events.append)
    flow.get_token_sync(["read"])
    flow.get_token_sync(["read"])
    kinds = [e.kind for e in events]
    assert kinds == [TokenEventKind.CACHE_MISS, TokenEventKind.ACQUIRED, TokenEventKind.CACHE_HIT]
    acquired = events[1]
    assert (
        acquired.scopes == ("read",)
        and acquired.source == "network"
        and acquired.client_id == "svc"
    )
    assert "tok-" not in repr(events)


def test_a_failing_event_hook_is_ignored(
    token_server: TokenServer, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_event: TokenEvent) -> None:
        raise RuntimeError("metrics backend down")

    flow = make_flow(token_server, on_event=broken)
    assert flow.get_token_sync().access_token == "tok-1"
    assert "on_event hook raised" in caplog.text


def test_cancelled_leader_does_not_strand_followers() -> None:
    server = TokenServer(delay=0.5)
    try:
        flow = make_flow(server)

        async def main() -> Token:
            async def leader() -> None:
                with anyio.move_on_after(0.1):
                    await flow.get_token()

            async with anyio.create_task_group() as tg:
                tg.start_soon(leader)
                await anyio.sleep(0.02)
                follower = await flow.get_token()  # joins, sees the leader abandon, fetches itself
            return follower

        assert anyio.run(main).access_token.startswith("tok-")
    finally:
        server.stop()


def test_works_under_trio(token_server: TokenServer) -> None:
    flow = make_flow(token_server)

    async def main() -> list[Token]:
        tokens: list[Token] = []

        async def one() -> None:
            tokens.append(await flow.get_token())

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(one)
        return tokens

    tokens = anyio.run(main, backend="trio")
    assert {t.access_token for t in tokens} == {"tok-1"}
    assert token_server.requests == 1


def test_background_tasks_do_not_leak_into_closed_loops(clock: FakeClock) -> None:
    server = TokenServer(expires_in=100)
    try:
        flow = make_flow(server, clock)
        flow.get_token_sync()
        clock.advance(86)

        async def main() -> None:
            await flow.get_token()
            await asyncio.sleep(0.5)

        asyncio.run(main())
        eventually(lambda: server.requests == 2, "renewal")
    finally:
        server.stop()


def test_unreachable_endpoint_fails_with_network_error(clock: FakeClock) -> None:
    flow = ClientCredentialsFlow(
        "svc", "s-123456", "http://127.0.0.1:9/token", retry=FAST, clock=clock
    )
    with pytest.raises(NetworkError):
        flow.get_token_sync()


def _wait_for_renewal_in_flight(flow: ClientCredentialsFlow) -> None:
    eventually(
        lambda: any(s.flight is not None for s in flow._tokens.tokens._slots.values()),
        "a renewal in flight",
    )


def test_a_renewal_left_on_a_closed_event_loop_does_not_block_later_callers(
    clock: FakeClock,
) -> None:
    server = TokenServer(expires_in=100, delay=1.0)
    try:
        flow = make_flow(server, clock)
        flow.get_token_sync()
        clock.advance(86)
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(flow.get_token())  # starts the renewal as a task on this loop
        finally:
            loop.close()  # ...and drops the loop with the task still pending
        _wait_for_renewal_in_flight(flow)
        clock.advance(14)  # expired: the next caller must fetch, not wait for the dead renewal
        started = time.monotonic()
        assert flow.get_token_sync().access_token.startswith("tok-")
        assert (
            time.monotonic() - started < 20
        )  # far below the 15 s a stuck wait would take plus a fetch
    finally:
        server.stop()


def test_a_forked_child_does_not_wait_for_the_parents_renewal(clock: FakeClock) -> None:
    import os

    server = TokenServer(expires_in=100, delay=1.0)
    try:
        flow = make_flow(server, clock)
        flow.get_token_sync()
        clock.advance(86)
        flow.get_token_sync()  # starts a renewal thread, which a child does not inherit
        _wait_for_renewal_in_flight(flow)
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status only
            code = 1
            try:
                clock.advance(14)
                code = 0 if flow.get_token_sync().access_token.startswith("tok-") else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        server.stop()
