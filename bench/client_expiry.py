#!/usr/bin/env python
"""Client benchmark, at expiry: 100 concurrent callers once the token has expired.

Counts the token requests each library makes (authkestra, Authlib, httpx-auth).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from _common import (
    PEER_EARLY_SECONDS,
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

# -- case 2: at expiry ------------------------------------------------------------------------


def case_expiry(n_callers: int = 100, ttl: int = 3) -> None:
    """At expiry: concurrent callers once a short token has expired."""
    note(
        f"## Case 2 -- at expiry: {n_callers} concurrent callers once a {ttl} s token "
        "has expired (real time)"
    )
    rows: list[list[Any]] = []
    with server(ttl=ttl) as srv:
        url = srv.token_url
        for make in (
            lambda: AuthkestraLib(url),
            lambda: AuthlibLib(url),
            lambda: HttpxAuthLib(url),
        ):
            for kind in ("coroutines", "threads"):

                async def scenario(make: Callable[[], Lib] = make, kind: str = kind) -> list[Any]:
                    lib = make()
                    await lib.astart()
                    # Prime: one token, through the same path the callers will use.
                    if isinstance(lib, AuthlibLib):
                        assert lib.aclient is not None
                        if kind == "coroutines":
                            await lib.aclient.fetch_token()
                        else:
                            await asyncio.to_thread(lib.client.fetch_token)
                    elif kind == "coroutines":
                        await lib.acall()
                    else:
                        await asyncio.to_thread(lib.call)
                    await asyncio.sleep(ttl + 0.3)  # past expiry for every library
                    srv.reset()
                    if kind == "coroutines":
                        out, _, wall = await run_burst(None, lib.acall, 0, n_callers)
                    else:
                        _, out, wall = await run_burst(lib.call, None, n_callers, 0)
                    await lib.aclose()
                    return [
                        lib.name,
                        f"{n_callers} {kind}",
                        fmt_outcomes(out, n_callers),
                        srv.count(),
                        f"{wall * 1000:.0f} ms",
                    ]

                rows.append(asyncio.run(scenario()))
    table(
        "At expiry: token requests",
        ["library", "callers", "outcomes", "token requests", "wall time"],
        rows,
    )
    note(
        f"Authlib leeway and httpx-auth early_expiry are set to {PEER_EARLY_SECONDS} s "
        f"(their defaults, 60 s and 30 s, exceed a {ttl} s token's life and would refetch "
        "on every call); authkestra uses its defaults (usable until 90% of the lifetime)."
    )


if __name__ == "__main__":
    raise SystemExit(run(case_expiry, {"n_callers": 10, "ttl": 2}))
