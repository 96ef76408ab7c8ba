#!/usr/bin/env python
"""Refused client authentications: does a known client id answer as fast as an unknown one?

Run: .venv/bin/python bench/server_timing.py [--samples 200]
     .venv/bin/python bench/server_timing.py --smoke   (a few samples: does it work?)

An attacker who times ``POST /token`` must not learn which client ids exist. For
each method -- ``client_secret_basic`` (a wrong secret) and ``private_key_jwt``
(an ES256 assertion signed by a key that is not the client's) -- the script sends
refused requests for a registered client id and for an unknown one, interleaved,
straight into the server's ASGI app (no socket: loopback jitter would hide a
difference of tens of microseconds), and reports the median time of each. The
client cache is off (``cache_seconds=0``), so every request reads the store, as
the first request for an id does. The goal: known and unknown within 10 % of each
other, for both methods.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import asgi_form_post, machine, table  # noqa: E402
from joserfc import jwt  # noqa: E402
from joserfc.jwk import ECKey  # noqa: E402
from tests.support.authkestra_server import cli  # noqa: E402

from authkestra.server import ServerSettings, create_app  # noqa: E402

ISSUER = "http://127.0.0.1:9"
Request = Callable[[], Awaitable[None]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="requests per case")
    parser.add_argument("--smoke", action="store_true", help="a few samples")
    args = parser.parse_args()
    if args.smoke:
        args.samples = 10
    machine()
    with tempfile.TemporaryDirectory(prefix="authkestra-timing-") as tmp:
        db = f"sqlite:///{tmp}/authkestra.db"
        cli("init", "--db", db)
        cli("clients", "create", "known-secret", "--scope", "read", "--db", db)
        key = ECKey.generate_key("P-256", {"kid": "k1"}, private=True)
        jwks = json.dumps({"keys": [{**key.as_dict(private=False), "kid": "k1"}]})
        cli(
            "clients", "create", "known-key", "--auth-method", "private_key_jwt",
            "--jwks", jwks, "--scope", "read", "--db", db,
        )  # fmt: skip
        settings = ServerSettings(
            db=db, issuer=ISSUER, cache_seconds=0, max_failures_per_address=10**9
        )
        rows = asyncio.run(measure(settings, args.samples))
    table(
        f"Refused client authentication, median of {args.samples} (µs, in process)",
        ["method", "known client id", "unknown client id", "difference"],
        rows,
    )


async def measure(settings: ServerSettings, samples: int) -> list[list[Any]]:
    app = create_app(settings)
    wrong_key = ECKey.generate_key("P-256", {"kid": "k1"}, private=True)  # not the client's
    cases = {
        "client_secret_basic (wrong secret)": (
            _secret_request(app, "known-secret"),
            _secret_request(app, "unknown-secret"),
        ),
        "private_key_jwt ES256 (wrong key)": (
            _assertion_request(app, "known-key", wrong_key),
            _assertion_request(app, "unknown-key", wrong_key),
        ),
    }
    rows = []
    async with app.router.lifespan_context(app):
        for name, (known, unknown) in cases.items():
            for _ in range(20):  # warm: keys parsed, decoy keys made
                await known()
                await unknown()
            times: dict[str, list[float]] = {"known": [], "unknown": []}
            for _ in range(samples):  # interleaved: drift affects both alike
                for label, request in (("known", known), ("unknown", unknown)):
                    started = time.perf_counter()
                    await request()
                    times[label].append(time.perf_counter() - started)
            k, u = (statistics.median(times[x]) * 1e6 for x in ("known", "unknown"))
            rows.append([name, f"{k:.0f}", f"{u:.0f}", f"{(u - k) / k * 100:+.1f} %"])
    return rows


def _secret_request(app: Any, client_id: str) -> Request:
    basic = base64.b64encode(f"{client_id}:{secrets.token_urlsafe(32)}".encode())
    body = b"grant_type=client_credentials"
    return _request(app, body, [(b"authorization", b"Basic " + basic)])


def _assertion_request(app: Any, client_id: str, key: ECKey) -> Request:
    # One assertion, sent again and again: refused at its signature, its jti is never spent.
    now = int(time.time())
    claims = {
        "iss": client_id, "sub": client_id, "aud": ISSUER, "iat": now, "exp": now + 240,
        "jti": secrets.token_urlsafe(16),
    }  # fmt: skip
    body = urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key),
        }
    ).encode()
    return _request(app, body, [])


def _request(app: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> Request:
    post = asgi_form_post(app, "/token", body, headers)

    async def request() -> None:
        status, _ = await post()
        if status not in (400, 401):
            raise RuntimeError(f"a refusal was expected, got {status}")

    return request


if __name__ == "__main__":
    main()
