"""``authkestra serve --workers N``: worker processes share one store, keys and port."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from authkestra import ClientCredentialsFlow
from authkestra.server.settings import ServerSettings
from tests.support.authkestra_server import BIN, AuthkestraServer, cli
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


def test_serve_uses_every_core_by_default(tmp_path: object) -> None:
    """No --workers: one worker per core this process may run on, as its start line says,
    with their metrics summed (a private multiprocess directory is made)."""
    cores = len(os.sched_getaffinity(0))
    server = AuthkestraServer(workers=None, log_level="info", extra_args=("--log-format", "json"))
    try:
        started = [
            json.loads(line)
            for line in server.log_path.read_text().splitlines()
            if '"message": "starting"' in line
        ]
        assert started and started[0]["workers"] == cores
        client_id, secret = server.create_client("svc", "--scope", "read")
        for _ in range(10):
            answer = httpx.post(
                server.token_url,
                data={"grant_type": "client_credentials"},
                auth=(client_id, secret),
            )
            assert answer.status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize("value", ["0", "65", "many", "2.5"])
def test_a_bad_workers_value_is_one_line(value: str, tmp_path: Path) -> None:
    result = cli(
        "serve", "--workers", value, "--port", str(free_port()), "--db",
        f"sqlite:///{tmp_path}/a.db", check=False,
    )  # fmt: skip
    assert result.returncode == 3
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("authkestra: error: --workers (AUTHKESTRA_SERVER_WORKERS): ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("workers", "redis", "limit"), [(None, False, 100), (1, False, 100), (2, False, 50),
                                    (3, False, 34), (2, True, 100)],
)  # fmt: skip
def test_without_redis_each_worker_enforces_its_share_of_the_failure_limit(
    workers: int | None, redis: bool, limit: int
) -> None:
    from authkestra.server.context import _failures_per_process

    settings = ServerSettings(db="sqlite:///x.db", workers=workers, max_failures_per_address=100)
    assert _failures_per_process(settings, redis) == limit


def test_auto_is_the_cores_this_process_may_use() -> None:
    assert ServerSettings(db="sqlite:///x.db", workers="auto").worker_count() == len(
        os.sched_getaffinity(0)
    )
    assert ServerSettings(db="sqlite:///x.db", workers=3).worker_count() == 3
