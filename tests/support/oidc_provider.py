"""Runs npm oidc-provider, a real third-party authorization server, on loopback."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

PEERS = Path(__file__).resolve().parent.parent / "interop" / "peers"
SERVER_SCRIPT = PEERS / "oidc_provider_server.mjs"


def client(
    client_id: str,
    secret: str,
    *,
    method: str = "client_secret_basic",
    scope: str = "read write",
) -> dict[str, Any]:
    """oidc-provider client metadata for a Client Credentials client."""
    return {
        "client_id": client_id,
        "client_secret": secret,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
        "token_endpoint_auth_method": method,
        "scope": scope,
    }


class OidcProvider:
    """A running oidc-provider; ``issuer`` and ``token_url`` point at it."""

    def __init__(self, config: dict[str, Any]) -> None:
        if not (PEERS / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError(
                f"npm packages missing in {PEERS}: run 'make test' (it runs npm ci there)"
            )
        self._dir = tempfile.TemporaryDirectory(prefix="authkestra-op-")
        config_path = Path(self._dir.name) / "config.json"
        config_path.write_text(json.dumps(config))
        self.log_path = Path(self._dir.name) / "stderr.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            ["node", str(SERVER_SCRIPT), str(config_path)],
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=PEERS,
            env={**os.environ, "NODE_ENV": "test"},
        )
        self.issuer = self._wait_ready()
        self.token_url = f"{self.issuer}/token"

    def _wait_ready(self, timeout: float = 30.0) -> str:
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if selector.select(timeout=0.5):
                line = self.process.stdout.readline()
                if line:
                    return str(json.loads(line)["issuer"])
            if self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"oidc-provider did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        self._log.close()
        self._dir.cleanup()


def signing_jwks() -> dict[str, Any]:
    """Fresh private signing keys for oidc-provider: RS256 (first: its default), ES256, EdDSA."""
    from joserfc.jwk import ECKey, OKPKey, RSAKey

    keys = [
        RSAKey.generate_key(2048, {"alg": "RS256", "use": "sig"}, private=True),
        ECKey.generate_key("P-256", {"alg": "ES256", "use": "sig"}, private=True),
        OKPKey.generate_key("Ed25519", {"alg": "EdDSA", "use": "sig"}, private=True),
    ]
    out = []
    for key in keys:
        key.ensure_kid()
        out.append(key.as_dict(private=True))
    return {"keys": out}
