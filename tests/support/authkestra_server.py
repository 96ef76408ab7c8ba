"""Runs ``authkestra serve`` as a real process on loopback, and registers clients in its store."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.redis_server import free_port

BIN = Path(sys.executable).parent / "authkestra"


def cli(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``authkestra`` command."""
    return subprocess.run(
        [str(BIN), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=check,
        timeout=60,
    )


class AuthkestraServer:
    """``authkestra serve`` on 127.0.0.1 with its own store (SQLite by default)."""

    def __init__(
        self,
        db: str | None = None,
        *,
        redis: str | None = None,
        extra_env: dict[str, str] | None = None,
        tls: tuple[Path, Path, Path | None] | None = None,
        ca_bundle: Path | None = None,
        workers: int | None = 1,
        log_level: str = "warning",
        extra_args: tuple[str, ...] = (),
        admin: bool = False,
    ) -> None:
        """``tls``: (certificate, key, client CA or None) to serve HTTPS; ``ca_bundle``
        verifies the server's certificate then. ``admin``: with the admin API on a port
        of its own (:attr:`admin_url`)."""
        self._dir = tempfile.TemporaryDirectory(prefix="authkestra-server-")
        self.db = db or f"sqlite:///{self._dir.name}/authkestra.db"
        self.port = free_port()
        self.issuer = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle else True
        )
        self.token_url = f"{self.issuer}/token"
        args = [
            str(BIN),
            "serve",
            "--port",
            str(self.port),
            "--db",
            self.db,
            "--log-level",
            log_level,
            *extra_args,
        ]
        if redis:
            args += ["--redis", redis]
        # One worker unless asked (None: serve's own default, one per core).
        if workers is not None:
            args += ["--workers", str(workers)]
        self.admin_url: str | None = None
        if admin:
            admin_port = free_port()
            args += ["--admin-port", str(admin_port)]
            self.admin_url = f"http://127.0.0.1:{admin_port}"
        if tls:
            args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
            if tls[2] is not None:
                args += ["--tls-client-ca", str(tls[2])]
        self.log_path = Path(self._dir.name) / "server.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(extra_env or {})},
        )
        self._wait()

    def _wait(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                answer = httpx.get(f"{self.issuer}/readyz", timeout=1, verify=self.verify)
                if answer.status_code == 200 and (
                    self.admin_url is None
                    or httpx.get(f"{self.admin_url}/healthz", timeout=1).status_code == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        log = self.log_path.read_text()
        self.stop()  # closes the log (and may remove its directory): read it first
        raise RuntimeError(f"authkestra serve did not start: {log[-3000:]}")

    def create_client(self, name: str, *args: str) -> tuple[str, str]:
        """``authkestra clients create NAME ARGS --format json``: (client_id, secret)."""
        out = cli("clients", "create", name, *args, "--format", "json", "--db", self.db)
        document = json.loads(out.stdout)
        return document["client_id"], document["client_secret"]

    def admin_token(self, scope: str = "authkestra:admin") -> str:
        """A token of this server with ``scope``, for a new client registered for it."""
        client_id, secret = self.create_client(f"ops-{os.urandom(4).hex()}", "--scope", scope)
        answer = httpx.post(
            self.token_url,
            data={"grant_type": "client_credentials", "scope": scope},
            auth=(client_id, secret),
            timeout=10,
            verify=self.verify,
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def admin_request(self, method: str, path: str, token: str, **kwargs: object) -> httpx.Response:
        """A request to the admin API with ``token`` as Bearer."""
        assert self.admin_url is not None, "started without admin=True"
        return httpx.request(
            method,
            f"{self.admin_url}{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            **kwargs,  # type: ignore[arg-type]
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        self._dir.cleanup()
