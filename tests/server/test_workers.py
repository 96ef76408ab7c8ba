"""``authkestra serve --workers N``: worker processes share one store, keys and port."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time

import httpx

from authkestra import ClientCredentialsFlow
from authkestra.server.settings import ServerSettings
from tests.support.authkestra_server import BIN, cli
from tests.support.redis_server import free_port


def test_settings_round_trip_through_the_environment() -> None:
    settings = ServerSettings(db="sqlite:///x.db", port=9, secret_key="k" * 20, signing_alg="EdDSA")
    env = settings.to_environment(migrate=False)
    assert env["AUTHKESTRA_SERVER_ISSUER"] == "http://127.0.0.1:9"
    assert env["AUTHKESTRA_SERVER_MIGRATE"] == "false"
    assert all(name.startswith("AUTHKESTRA_SERVER_") for name in env)
    again = ServerSettings.from_environment(env)
    assert again.signing_alg == "EdDSA" and again.secret_key is not None
    assert again.secret_key.get_secret_value() == "k" * 20 and again.port == 9 and not again.migrate


def test_two_workers_serve_one_issuer() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/a.db"
        port = free_port()
        process = subprocess.Popen(
            [
                str(BIN),
                "serve",
                "--db",
                db,
                "--port",
                str(port),
                "--workers",
                "2",
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ),
        )
        try:
            issuer = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{issuer}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "workers did not start"
                time.sleep(0.2)
            created = json.loads(
                cli(
                    "clients", "create", "svc", "--scope", "read", "--format", "json", "--db", db
                ).stdout
            )
            flow = ClientCredentialsFlow("svc", created["client_secret"], issuer=issuer)
            kids = set()
            for _ in range(20):  # spread over both workers; all must sign with the one shared key
                token = flow.get_token_sync(["read"], force_refresh=True)
                header = json.loads(httpx.get(f"{issuer}/jwks.json").text)
                kids.add(token.access_token.split(".")[0])
                assert len(header["keys"]) >= 1
            assert len(kids) == 1
        finally:
            process.terminate()
            process.wait(timeout=20)
