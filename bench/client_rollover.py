#!/usr/bin/env python
"""Client benchmark, rollover: steady load across the token's renewal.

How many callers of each library wait on the network while the token is renewed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from _common import (
    AuthkestraLib,
    AuthlibLib,
    HttpxAuthLib,
    Lib,
    Server,
    new_request,
    note,
    run,
    server,
    table,
)

# -- case 5: rollover under load -------------------------------------------------------------


#: No library renews a 4 s token in its first 1.9 s: calls before then are the
#: quiet baseline (scheduler, GC, other tenants); calls after span the renewal.
QUIET_UNTIL = 1.9
SLOW = 0.001
#: The token endpoint answers this much later, like a remote authorization server;
#: a call that took half of it or more was waiting for a token request.
NETWORK_DELAY_MS = 100
BLOCKED = NETWORK_DELAY_MS / 2000


def case_rollover(ttl: int = 4, threads: int = 8, coroutines: int = 100) -> None:
    """Rollover under load: callers that waited on the network at renewal."""
    window = ttl + 0.6
    note(
        f"## Case 5 -- rollover under steady load: {ttl} s tokens, token endpoint "
        f"{NETWORK_DELAY_MS} ms away; callers run for {window:.1f} s after the first "
        "token, which spans one renewal in each library"
    )
    rows: list[list[Any]] = []
    with server(ttl=ttl, delay_ms=NETWORK_DELAY_MS) as srv:
        url = srv.token_url
        for make in (
            lambda: AuthkestraLib(url),
            lambda: AuthlibLib(url),
            lambda: HttpxAuthLib(url),
        ):
            rows.append(_rollover_threads(make(), srv, threads, window, period=0.005))
            rows.append(asyncio.run(_rollover_async(make, srv, coroutines, window, period=0.05)))
    table(
        "Rollover: callers that waited on the network",
        [
            "library",
            "callers",
            "calls",
            f"calls > 1 ms: quiet (0-{QUIET_UNTIL} s) / renewal window",
            f"callers blocked >= {BLOCKED * 1000:.0f} ms",
            "slowest call",
            "token requests",
            "max event-loop stall: quiet / renewal",
        ],
        rows,
    )
    note(
        "Each call is one request's auth step, as in case 4. Threads call every 5 ms,\n"
        "coroutines every 50 ms (light load for all three). No library renews in the quiet\n"
        "window: its slow calls are this machine's noise floor (and, for Authlib's async\n"
        "client, the event-loop turn its lock takes on every call). 'Blocked' counts the\n"
        "callers with a call that lasted at least half the token round trip. Token requests\n"
        "include the first token. 'Max event-loop stall': how late a 1 ms timer fired (a\n"
        "blocked loop delays every coroutine, even those whose own call was quick)."
    )


Sample = tuple[float, float, int]  # (start since the first token, duration, caller)


def _summary(
    name: str,
    callers: str,
    n: int,
    samples: list[Sample],
    requests: int,
    stalls: list[tuple[float, float]] | None,
) -> list[Any]:
    if not samples:
        return [name, callers, 0, "-", "-", "-", requests, "-"]
    quiet = sum(1 for start, d, _ in samples if start < QUIET_UNTIL and d > SLOW)
    late = sum(1 for start, d, _ in samples if start >= QUIET_UNTIL and d > SLOW)
    blocked = {who for _, d, who in samples if d >= BLOCKED}
    return [
        name,
        callers,
        len(samples),
        f"{quiet} / {late}",
        f"{len(blocked)} of {n}",
        f"{max(d for _, d, _ in samples) * 1000:.1f} ms",
        requests,
        "-" if stalls is None else f"{_worst(stalls, False):.1f} / {_worst(stalls, True):.1f} ms",
    ]


def _worst(stalls: list[tuple[float, float]], renewal: bool) -> float:
    return 1000 * max((d for t, d in stalls if (t >= QUIET_UNTIL) == renewal), default=0.0)


def _rollover_threads(lib: Lib, srv: Server, n: int, window: float, period: float) -> list[Any]:
    if isinstance(lib, AuthlibLib):
        lib.client.fetch_token()
    srv.reset()
    request, response = new_request()
    lib.step(request, response)  # the first token
    t0 = time.perf_counter()
    samples: list[Sample] = []
    lock = threading.Lock()

    def caller(who: int) -> None:
        req, resp = new_request()
        mine: list[Sample] = []
        time.sleep(period * who / n)
        while (s := time.perf_counter()) - t0 < window:
            lib.step(req, resp)
            mine.append((s - t0, time.perf_counter() - s, who))
            time.sleep(period)
        with lock:
            samples.extend(mine)

    workers = [threading.Thread(target=caller, args=(i,)) for i in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    time.sleep(0.2)  # a background renewal in flight lands before counting
    row = _summary(lib.name, f"{n} threads", n, samples, srv.count(), None)
    asyncio.run(lib.aclose())
    return row


async def _rollover_async(
    make: Callable[[], Lib], srv: Server, n: int, window: float, period: float
) -> list[Any]:
    lib = make()
    await lib.astart()
    if isinstance(lib, AuthlibLib):
        assert lib.aclient is not None
        await lib.aclient.fetch_token()
    srv.reset()
    request, response = new_request()
    await lib.astep(request, response)
    t0 = time.perf_counter()
    samples: list[Sample] = []
    stalls: list[tuple[float, float]] = []

    async def ticker() -> None:
        await asyncio.sleep(0.1)  # the callers' first turns are not a stall
        while (s := time.perf_counter()) - t0 < window:
            await asyncio.sleep(0.001)
            stalls.append((s - t0, time.perf_counter() - s - 0.001))

    async def caller(who: int) -> None:
        req, resp = new_request()
        await asyncio.sleep(period * who / n)
        while (s := time.perf_counter()) - t0 < window:
            await lib.astep(req, resp)
            samples.append((s - t0, time.perf_counter() - s, who))
            await asyncio.sleep(period)

    await asyncio.gather(ticker(), *(caller(i) for i in range(n)))
    await asyncio.sleep(0.2)
    await lib.aclose()
    return _summary(lib.name, f"{n} coroutines", n, samples, srv.count(), stalls)


if __name__ == "__main__":
    raise SystemExit(run(case_rollover, {"ttl": 4, "threads": 2, "coroutines": 10}))
