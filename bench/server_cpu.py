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
noise only ever adds). ``bench/server_throughput.py`` measures the whole server
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
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/token", "raw_path": b"/token", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 9),
        "headers": [
            (b"host", b"127.0.0.1:9"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", b"Basic " + basic),
        ],
    }  # fmt: skip

    async def token() -> None:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({**scope, "state": {}}, receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"POST /token answered {sent[0]['status']}: {sent[1]['body']!r}")

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
