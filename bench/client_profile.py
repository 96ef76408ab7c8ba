#!/usr/bin/env python
"""Client benchmark, the hot path taken apart: where authkestra's time per request goes.

Through the public API only: the whole auth step httpx takes per request, the
parts it is made of (the token lookup of ``flow.token_source()``, the header
value, the header write), and a cProfile of many steps.
"""

from __future__ import annotations

import cProfile
import io
import pstats
from collections.abc import Callable, Iterator
from typing import Any

from _common import (
    CLIENT_ID,
    ROOT,
    SCOPES,
    SECRET,
    _next_only,
    _sync_cycle,
    measure,
    new_request,
    note,
    run,
    server,
    table,
)

from authkestra import ClientCredentialsFlow


def case_profile(steps: int = 200_000) -> None:
    """The hot path taken apart: µs per part, then a cProfile of ``steps`` auth steps."""
    note("## authkestra hot path, taken apart")
    with server(ttl=600) as srv:
        flow = ClientCredentialsFlow(CLIENT_ID, SECRET, srv.token_url)
        token = flow.get_token_sync(SCOPES)
        auth = flow.auth(SCOPES)
        source = flow.token_source(SCOPES)
        request, response = new_request()
        value = token.authorization
        headers = request.headers
        srv.reset()

        def empty_gen() -> Iterator[None]:
            yield None

        step = _next_only(auth, request)
        parts: list[tuple[str, Callable[[], Any]]] = [
            ("next(auth.sync_auth_flow(req)) -- the whole step", step),
            ("  source.current() -- the token lookup the step makes", source.current),
            (
                "  flow.get_token_sync(scopes) -- the same lookup through the flow's arguments",
                lambda: flow.get_token_sync(SCOPES),
            ),
            ("  token.authorization -- the header value, made once per token", lambda: value),
            (
                "  req.headers['Authorization'] = value -- httpx's public write (for comparison)",
                lambda: headers.__setitem__("Authorization", value),
            ),
            ("  create + next + close a one-yield generator", lambda: next(empty_gen())),
            ("full cycle: next() + send(200)", lambda: _sync_cycle(auth, request, response)),
        ]
        timings = measure(dict(parts))
        table(
            "authkestra hot path: µs per call (best loop, CPU time)",
            ["operation", "µs"],
            [[label, f"{timings[label]:.3f}"] for label, _ in parts],
        )
        if srv.count():
            raise RuntimeError("the hot path made token requests")

        # cProfile: call counts and where the time is (inflated by the profiler itself).
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(steps):
            step()
        profile.disable()
        buffer = io.StringIO()
        pstats.Stats(profile, stream=buffer).sort_stats("tottime").print_stats(12)
        note(f"cProfile, {steps:,} auth steps (next() only), by own time:\n")
        lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
        print("\n".join(line.replace(str(ROOT) + "/", "") for line in lines))


if __name__ == "__main__":
    raise SystemExit(run(case_profile, {"steps": 2_000}))
