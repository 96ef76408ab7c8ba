#!/usr/bin/env python
"""Revocation that reaches APIs: the delay from revoke to refusal, and its cost per verification.

Run: .venv/bin/python bench/revocation_delay.py [--rounds 10] [--refresh 2] [--seconds 3]
     .venv/bin/python bench/revocation_delay.py --smoke   (seconds: does it work?)

A real ``authkestra serve`` (with a real ``redis-server``) issues tokens; an API's
``JWTVerifier(revocations=...)`` follows its revocation list. Per round a token is
verified (and so cached by the verifier), revoked at ``POST /revoke``, and verified
again in a loop until it is refused: the time from the revocation's answer to the
first refusal. Two ways: the list polled every ``--refresh`` seconds, and the same
with the server's Redis nudge (``Revocations(redis=...)``). Then the cost on the hot
path: a cached token verified again, with and without a revocation list held (best of
several turns; one thread).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import redis as redis_py  # noqa: E402
from bench._common import machine, table  # noqa: E402
from tests.support.authkestra_server import AuthkestraServer  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

from authkestra import InvalidToken  # noqa: E402
from authkestra.resource import JWTVerifier, Revocations  # noqa: E402

API = "https://api.bench.test/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--refresh", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=3.0, help="per cost measurement")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.refresh, args.seconds = 1, 0.5, 0.05
    machine()
    redis = RedisServer()
    server = AuthkestraServer(redis=redis.url)
    try:
        client = server.create_client("bench", "--scope", "read", "--audience", API)
        delays = {
            f"polled every {args.refresh:g} s": delay_rounds(server, client, args, None),
            "polled, and the Redis nudge": delay_rounds(
                server, client, args, redis_py.Redis.from_url(redis.url)
            ),
        }
        table(
            "Revoke to refusal (ms)",
            ["list followed", "median", "max", "rounds"],
            [[name, f"{statistics.median(v):.0f}", f"{max(v):.0f}", len(v)]
             for name, v in delays.items()],
        )  # fmt: skip
        costs = cost(server, client, args.seconds)
        table(
            "Cost of a cached verification (ns)",
            ["verifier", "ns per verification", "vs without"],
            [[name, f"{ns:.0f}", f"{ns / costs['without a revocation list']:.2f}x"]
             for name, ns in costs.items()],
        )  # fmt: skip
    finally:
        server.stop()
        redis.stop()


def token_for(server: AuthkestraServer, client: tuple[str, str]) -> str:
    answer = httpx.post(
        server.token_url, data={"grant_type": "client_credentials"}, auth=client, timeout=10
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def delay_rounds(
    server: AuthkestraServer, client: tuple[str, str], args: Any, redis: Any
) -> list[float]:
    verifier = JWTVerifier(
        issuer=server.issuer,
        audience=API,
        allow_insecure_http=True,
        revocations=Revocations(refresh=args.refresh, redis=redis),
    )
    delays = []
    for _ in range(args.rounds):
        token = token_for(server, client)
        verifier.verify_sync(token)  # accepted, and cached
        revoked = httpx.post(
            f"{server.issuer}/revoke", data={"token": token}, auth=client, timeout=10
        )
        assert revoked.status_code == 200, revoked.text
        started = time.perf_counter()
        deadline = started + args.refresh * 5 + 10
        while True:
            try:
                verifier.verify_sync(token)
            except InvalidToken:
                break
            if time.perf_counter() > deadline:
                raise RuntimeError("the revoked token was never refused")
            time.sleep(0.001)
        delays.append((time.perf_counter() - started) * 1000)
    verifier.close()
    return delays


def cost(server: AuthkestraServer, client: tuple[str, str], seconds: float) -> dict[str, float]:
    token = token_for(server, client)
    verifiers = {
        "without a revocation list": JWTVerifier(
            issuer=server.issuer, audience=API, allow_insecure_http=True
        ),
        "with the revocation list": JWTVerifier(
            issuer=server.issuer, audience=API, allow_insecure_http=True, revocations=True
        ),
    }
    for verifier in verifiers.values():
        verifier.verify_sync(token)
    best = dict.fromkeys(verifiers, float("inf"))
    turns = max(1, int(seconds / 0.25))
    for _ in range(turns):
        for name, verifier in verifiers.items():
            verify = verifier.verify_sync
            n = 0
            started = time.perf_counter()
            until = started + min(0.25, seconds)
            while True:
                for _ in range(1000):
                    verify(token)
                n += 1000
                now = time.perf_counter()
                if now >= until:
                    break
            best[name] = min(best[name], (now - started) / n * 1e9)
    for verifier in verifiers.values():
        verifier.close()
    return best


if __name__ == "__main__":
    main()
