"""``authkestra token`` and ``from_env`` without a secret: private_key_jwt and mutual TLS.

Against real ``authkestra serve`` processes: plain HTTP on loopback for
private_key_jwt, HTTPS with client certificates for tls_client_auth.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from joserfc.jwk import ECKey

from authkestra import ClientCredentialsFlow, ConfigError
from authkestra.flow.environment import flow_arguments_from_env
from authkestra.tls import certificate_thumbprint
from tests.support.authkestra_server import BIN, AuthkestraServer, cli
from tests.support.certificates import Issued, TestPKI


def claims_of(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def token_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command, with only the given AUTHKESTRA_* variables."""
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTHKESTRA_")}
    return subprocess.run(
        [str(BIN), "token", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def plain_server() -> Iterator[AuthkestraServer]:
    server = AuthkestraServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def key_client(
    plain_server: AuthkestraServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    key = ECKey.generate_key("P-256", private=True)
    directory = tmp_path_factory.mktemp("keys")
    key_path = directory / "client-key.pem"
    key_path.write_bytes(key.as_pem(private=True))
    key_path.chmod(0o600)
    jwks = json.dumps({"keys": [key.as_dict(private=False)]})
    client_id = f"k-{uuid.uuid4().hex[:8]}"
    cli(
        "clients",
        "create",
        client_id,
        "--scope",
        "read",
        "--auth-method",
        "private_key_jwt",
        "--jwks",
        jwks,
        "--db",
        plain_server.db,
    )
    return client_id, key_path


def test_token_command_with_a_private_key_file(
    plain_server: AuthkestraServer, key_client: tuple[str, Path]
) -> None:
    client_id, key_path = key_client
    out = token_cli(
        "--token-url",
        plain_server.token_url,
        "--client-id",
        client_id,
        "--auth-method",
        "private_key_jwt",
        "--private-key-file",
        str(key_path),
        "--format",
        "json",
    )
    assert out.returncode == 0, out.stderr
    assert claims_of(json.loads(out.stdout)["access_token"])["client_id"] == client_id
    # the same from the environment
    out = token_cli(
        env={
            "AUTHKESTRA_TOKEN_URL": plain_server.token_url,
            "AUTHKESTRA_CLIENT_ID": client_id,
            "AUTHKESTRA_AUTH_METHOD": "private_key_jwt",
            "AUTHKESTRA_PRIVATE_KEY_FILE": str(key_path),
        }
    )
    assert out.returncode == 0, out.stderr
    assert claims_of(out.stdout.strip())["client_id"] == client_id


def test_a_missing_key_file_is_a_configuration_error(
    plain_server: AuthkestraServer, tmp_path: Path
) -> None:
    out = token_cli(
        "--token-url",
        plain_server.token_url,
        "--client-id",
        "x",
        "--auth-method",
        "private_key_jwt",
        "--private-key-file",
        str(tmp_path / "nope.pem"),
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and "nope.pem" in out.stderr


def test_client_key_needs_client_cert(tmp_path: Path) -> None:
    out = token_cli(
        "--token-url",
        "https://as.example/token",
        "--client-id",
        "x",
        "--client-key",
        str(tmp_path / "k.pem"),
    )
    assert out.returncode == 2
    assert "--client-key goes with --client-cert" in out.stderr


@pytest.fixture(scope="module")
def tls_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("token-pki"))


@pytest.fixture(scope="module")
def tls_setup(tls_pki: TestPKI) -> Iterator[tuple[AuthkestraServer, str, Issued]]:
    server_cert = tls_pki.server()
    client_cert = tls_pki.issue("job", "job", dns=("job.internal.example",))
    server = AuthkestraServer(
        tls=(server_cert.cert_path, server_cert.key_path, tls_pki.ca.cert_path),
        ca_bundle=tls_pki.ca.cert_path,
    )
    client_id = f"t-{uuid.uuid4().hex[:8]}"
    cli(
        "clients",
        "create",
        client_id,
        "--scope",
        "read",
        "--auth-method",
        "tls_client_auth",
        "--tls-san-dns",
        "job.internal.example",
        "--db",
        server.db,
    )
    yield server, client_id, client_cert
    server.stop()


def test_token_command_with_a_client_certificate(
    tls_setup: tuple[AuthkestraServer, str, Issued], tls_pki: TestPKI
) -> None:
    server, client_id, cert = tls_setup
    out = token_cli(
        "--token-url",
        server.token_url,
        "--client-id",
        client_id,
        "--auth-method",
        "tls_client_auth",
        "--client-cert",
        str(cert.cert_path),
        "--client-key",
        str(cert.key_path),
        "--ca-bundle",
        str(tls_pki.ca.cert_path),
    )
    assert out.returncode == 0, out.stderr
    claims = claims_of(out.stdout.strip())
    assert claims["cnf"] == {"x5t#S256": certificate_thumbprint(cert.der)}


def test_from_env_with_a_client_certificate(
    tls_setup: tuple[AuthkestraServer, str, Issued], tls_pki: TestPKI
) -> None:
    server, client_id, cert = tls_setup
    flow = ClientCredentialsFlow.from_env(
        {
            "AUTHKESTRA_TOKEN_URL": server.token_url,
            "AUTHKESTRA_CLIENT_ID": client_id,
            "AUTHKESTRA_AUTH_METHOD": "tls_client_auth",
            "AUTHKESTRA_CLIENT_CERT_FILE": str(cert.cert_path),
            "AUTHKESTRA_CLIENT_KEY_FILE": str(cert.key_path),
            "AUTHKESTRA_CA_BUNDLE": str(tls_pki.ca.cert_path),
        }
    )
    assert claims_of(flow.get_token_sync().access_token)["client_id"] == client_id


def test_environment_arguments_for_keys() -> None:
    base = {"AUTHKESTRA_TOKEN_URL": "https://as.example/token", "AUTHKESTRA_CLIENT_ID": "svc"}
    args = flow_arguments_from_env(
        {
            **base,
            "AUTHKESTRA_AUTH_METHOD": "private_key_jwt",
            "AUTHKESTRA_PRIVATE_KEY_FILE": "/k.pem",
            "AUTHKESTRA_KEY_ID": "2026",
            "AUTHKESTRA_DPOP": "true",
        }
    )
    assert args["private_key"] == "/k.pem" and args["key_id"] == "2026" and args["dpop"] is True
    assert "client_secret" not in args
    args = flow_arguments_from_env(
        {**base, "AUTHKESTRA_CLIENT_SECRET": "s3cret", "AUTHKESTRA_CLIENT_CERT_FILE": "/both.pem"}
    )
    assert args["client_cert"] == "/both.pem"
    with pytest.raises(ConfigError, match="CLIENT_CERT_FILE"):
        flow_arguments_from_env(
            {**base, "AUTHKESTRA_CLIENT_SECRET": "s", "AUTHKESTRA_CLIENT_KEY_FILE": "/k.pem"}
        )
    with pytest.raises(ConfigError, match="AUTHKESTRA_DPOP"):
        flow_arguments_from_env(
            {**base, "AUTHKESTRA_CLIENT_SECRET": "s", "AUTHKESTRA_DPOP": "maybe"}
        )
    # A secret method still needs its secret.
    with pytest.raises(ConfigError, match="CLIENT_SECRET"):
        flow_arguments_from_env({**base, "AUTHKESTRA_AUTH_METHOD": "client_secret_post"})
