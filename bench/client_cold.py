#!/usr/bin/env python
"""Client benchmark, cold start: 1,000 coroutines and 8 threads ask for a token at once.

Counts the token requests each library makes (authkestra, Authlib, httpx-auth).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from _common import (
    AuthkestraLib,
    AuthlibLib,
    HttpxAuthLib,
    Lib,
    fmt_outcomes,
    note,
    run,
    run_burst,
    server,
    table,
)

# -- case 1: cold start ---------------------------------------------------------------------


def case_cold(n_coroutines: int = 1000, n_threads: int = 8) -> None:
    """Cold start: many callers at once, token requests counted."""
    note(
        f"## Case 1 -- cold start: {n_coroutines:,} coroutines + {n_threads} threads "
        "ask at once (each makes one API request through the library)"
    )
    rows: list[list[Any]] = []
    small = 100
    with server(ttl=600) as srv:

        def run(
            label: str,
            variant: str,
            make: Callable[[], Lib],
            mode: str = "plain",
            coroutines: int = n_coroutines,
        ) -> None:
            async def scenario() -> tuple[Counter[str], Counter[str], float, int]:
                lib = make()
                await lib.astart()
                startup = 0
                srv.reset()
                if mode == "prefetch":
                    assert isinstance(lib, AuthlibLib) and lib.aclient is not None
                    await lib.aclient.fetch_token()
                    lib.client.fetch_token()
                    startup = srv.count()
                if mode == "lazy":
                    assert isinstance(lib, AuthlibLib)
                    sync_call, async_call = lib.call_lazy, lib.acall_lazy
                else:
                    sync_call, async_call = lib.call, lib.acall
                loop_out, thread_out, wall = await run_burst(
                    sync_call, async_call, n_threads, coroutines
                )
                await lib.aclose()
                return loop_out, thread_out, wall, startup

            coro_out, thread_out, wall, startup = asyncio.run(scenario())
            burst = srv.count() - startup
            requests = f"{burst}" if not startup else f"{startup} before + {burst} in the burst"
            rows.append(
                [
                    label,
                    variant,
                    fmt_outcomes(coro_out, coroutines),
                    fmt_outcomes(thread_out, n_threads),
                    requests,
                    f"{wall * 1000:.0f} ms",
                ]
            )

        url = srv.token_url
        run("authkestra", "flow.auth() on httpx clients", lambda: AuthkestraLib(url))
        run("Authlib", "no fetch_token(): client.get() only", lambda: AuthlibLib(url))
        run(
            "Authlib",
            "lazy: each caller fetch_token() if no token yet",
            lambda: AuthlibLib(url),
            mode="lazy",
        )
        run(
            "Authlib",
            f"the same, {small} coroutines + {n_threads} threads",
            lambda: AuthlibLib(url),
            mode="lazy",
            coroutines=small,
        )
        run(
            "Authlib",
            "documented: fetch_token() once first (sync + async client)",
            lambda: AuthlibLib(url),
            mode="prefetch",
        )
        run("httpx-auth", "auth on httpx clients", lambda: HttpxAuthLib(url))
    table(
        "Cold start: token requests",
        ["library", "variant", "coroutines", "threads", "token requests", "burst wall time"],
        rows,
    )
    note(
        "Coroutines use the library's async httpx client, threads its sync client; both\n"
        "are released together. Counts are token requests the server received."
    )


if __name__ == "__main__":
    raise SystemExit(run(case_cold, {"n_coroutines": 20, "n_threads": 2}))
