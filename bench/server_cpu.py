#!/usr/bin/env python
"""CPU per issued token: ``POST /token`` through the server's ASGI app, in process, no network.

Run: .venv/bin/python bench/server_cpu.py [--tokens 5000] [--rounds 5]
     .venv/bin/python bench/server_cpu.py --smoke   (a few hundred tokens: does it work?)

The app is ``authkestra.server.create_app`` on a fresh SQLite store (``authkestra
init``); the client is registered with ``authkestra clients create``. Each token request goes
straight into the ASGI app (no socket, no uvicorn, no HTTP parsing): what is
left is the server's own work per token -- form parsing, client
authentication, the grant, the ES256 signature, the JSON answer. The figure is
process CPU time per token, the best of ``--rounds`` rounds (a shared machine's
noise only ever adds). ``bench/server_bench.py`` measures the whole server
under load instead.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import asgi_form_post  # noqa: E402
from tests.support.authkestra_server import cli  # noqa: E402

from authkestra.server import ServerSettings, create_app  # noqa: E402

RESOURCE = "https://api.bench.test/"
ISSUER = "http://127.0.0.1:9"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=5000, help="tokens per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="a few hundred tokens")
    args = parser.parse_args()
    if args.smoke:
        args.tokens, args.rounds = 100, 2
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="authkestra-cpu-") as tmp:
        db = f"sqlite:///{tmp}/authkestra.db"
        cli("init", "--db", db)
        created = json.loads(
            cli(
                "clients", "create", "bench", "--scope", "read", "--audience", RESOURCE,
                "--format", "json", "--db", db,
            ).stdout
        )  # fmt: skip
        settings = ServerSettings(db=db, issuer=ISSUER)
        print(f"{asyncio.run(per_token(settings, created, args)):.1f} µs CPU per token")


async def per_token(settings: ServerSettings, created: dict[str, str], args: Any) -> float:
    app = create_app(settings)
    basic = base64.b64encode(f"bench:{created['client_secret']}".encode())
    body = f"grant_type=client_credentials&scope=read&resource={RESOURCE}".encode()
    post = asgi_form_post(app, "/token", body, [(b"authorization", b"Basic " + basic)])

    async def token() -> None:
        status, answer = await post()
        if status != 200:
            raise RuntimeError(f"POST /token answered {status}: {answer!r}")

    async with app.router.lifespan_context(app):
        for _ in range(min(300, args.tokens)):  # warm: keys parsed, the client in memory
            await token()
        best = float("inf")
        for _ in range(args.rounds):
            started = time.process_time()
            for _ in range(args.tokens):
                await token()
            best = min(best, (time.process_time() - started) / args.tokens)
    return best * 1e6


if __name__ == "__main__":
    main()
