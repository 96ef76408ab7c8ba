"""Mutual TLS end to end: ``authkestra serve`` over TLS, our flow with a client certificate.

RFC 8705 §2 (tls_client_auth, self_signed_tls_client_auth) and §3 (certificate-bound
tokens), against a real server process and real TLS handshakes over loopback.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from authkestra import ClientCredentialsFlow, InvalidClient, NetworkError, RetryPolicy
from authkestra.tls import certificate_thumbprint
from tests.mtls.conftest import client_context
from tests.support.authkestra_server import AuthkestraServer, cli
from tests.support.certificates import Issued, TestPKI, self_signed
from tests.support.stores import made_store

ONCE = RetryPolicy(max_attempts=1)


def claims_of(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def register(server: AuthkestraServer, *args: str) -> str:
    client_id = f"c-{uuid.uuid4().hex[:10]}"
    out = cli(
        "clients",
        "create",
        client_id,
        "--scope",
        "read",
        *args,
        "--format",
        "json",
        "--db",
        server.db,
    )
    assert "client_secret" not in json.loads(out.stdout)
    return client_id


def flow_for(
    server: AuthkestraServer, pki: TestPKI, client_id: str, cert: Issued | None, method: str
) -> ClientCredentialsFlow:
    return ClientCredentialsFlow(
        client_id,
        token_url=server.token_url,
        auth_method=method,
        client_cert=(cert.cert_path, cert.key_path) if cert else None,
        ca_bundle=pki.ca.cert_path,
        retry=ONCE,
    )


def test_metadata_offers_the_tls_methods(tls_server: AuthkestraServer, pki: TestPKI) -> None:
    meta = httpx.get(
        f"{tls_server.issuer}/.well-known/oauth-authorization-server",
        verify=client_context(pki),
    ).json()
    assert meta["issuer"].startswith("https://")
    assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(
        meta["token_endpoint_auth_methods_supported"]
    )
    assert meta["tls_client_certificate_bound_access_tokens"] is True


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--tls-subject-dn", "CN=svc-a,O=Example"),
        ("--tls-san-dns", "SVC-A.internal.example"),
        ("--tls-san-uri", "spiffe://example.org/svc-a"),
        ("--tls-san-ip", "10.1.2.3"),
        ("--tls-san-email", "svc-a@example.org"),
    ],
)
def test_tls_client_auth_by_each_kind_of_subject(
    tls_server: AuthkestraServer, pki: TestPKI, svc_cert: Issued, option: str, value: str
) -> None:
    client_id = register(tls_server, "--auth-method", "tls_client_auth", option, value)
    token = flow_for(tls_server, pki, client_id, svc_cert, "tls_client_auth").get_token_sync()
    claims = claims_of(token.access_token)
    assert claims["client_id"] == client_id
    assert token.token_type == "Bearer"
    # RFC 8705 §3.1: bound to the certificate the client authenticated with.
    assert claims["cnf"] == {"x5t#S256": certificate_thumbprint(svc_cert.der)}


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--tls-subject-dn", "CN=svc-b,O=Example"),  # another client's subject
        ("--tls-subject-dn", "CN=svc-a"),  # a part of the DN is not the DN
        ("--tls-san-dns", "other.internal.example"),
        ("--tls-san-uri", "spiffe://example.org/svc-a/extra"),
        ("--tls-san-ip", "10.1.2.4"),
        ("--tls-san-email", "svc-b@example.org"),
    ],
)
def test_tls_client_auth_refuses_a_certificate_of_another_subject(
    tls_server: AuthkestraServer, pki: TestPKI, svc_cert: Issued, option: str, value: str
) -> None:
    client_id = register(tls_server, "--auth-method", "tls_client_auth", option, value)
    with pytest.raises(InvalidClient):
        flow_for(tls_server, pki, client_id, svc_cert, "tls_client_auth").get_token_sync()


def test_tls_client_auth_without_a_certificate_is_invalid_client(
    tls_server: AuthkestraServer, pki: TestPKI
) -> None:
    client_id = register(
        tls_server, "--auth-method", "tls_client_auth", "--tls-san-dns", "x.example"
    )
    answer = httpx.post(
        tls_server.token_url,
        data={"grant_type": "client_credentials", "client_id": client_id},
        verify=client_context(pki),
    )
    assert answer.status_code in (400, 401)  # 401 is for Basic (RFC 6749 §5.2)
    assert answer.json()["error"] == "invalid_client"


def test_a_secret_does_not_replace_the_certificate(
    tls_server: AuthkestraServer, pki: TestPKI, svc_cert: Issued
) -> None:
    client_id = register(
        tls_server, "--auth-method", "tls_client_auth", "--tls-san-dns", "svc-a.internal.example"
    )
    answer = httpx.post(
        tls_server.token_url,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": "x"},
        verify=client_context(pki, svc_cert),
    )
    assert answer.status_code in (400, 401)  # 401 is for Basic (RFC 6749 §5.2)
    assert answer.json()["error"] == "invalid_client"


def test_a_certificate_from_an_untrusted_ca_fails_the_handshake(
    tls_server: AuthkestraServer, pki: TestPKI, other_pki: TestPKI
) -> None:
    client_id = register(
        tls_server, "--auth-method", "tls_client_auth", "--tls-subject-dn", "CN=svc-a,O=Example"
    )
    stranger = other_pki.issue("stranger", "svc-a", organisation="Example")
    with pytest.raises(NetworkError):
        flow_for(tls_server, pki, client_id, stranger, "tls_client_auth").get_token_sync()


def test_a_certificate_signed_by_a_registered_self_signed_one_is_no_tls_client_auth(
    tls_server: AuthkestraServer, pki: TestPKI, selfie: Issued
) -> None:
    # The TLS layer trusts registered self-signed certificates as anchors (Python's ssl
    # cannot do otherwise), so a certificate they sign passes the handshake; it must not
    # pass as a CA-issued certificate for tls_client_auth.
    register(
        tls_server, "--auth-method", "self_signed_tls_client_auth", "--cert", str(selfie.cert_path)
    )
    victim = register(
        tls_server, "--auth-method", "tls_client_auth", "--tls-subject-dn", "CN=victim,O=Example"
    )
    forged = pki.signed_by(selfie, "forged", "victim", organisation="Example")
    deadline = time.monotonic() + 15
    while True:  # until the server's TLS layer has picked up the self-signed certificate
        try:
            flow_for(tls_server, pki, victim, forged, "tls_client_auth").get_token_sync()
        except InvalidClient:
            break
        except NetworkError:
            assert time.monotonic() < deadline, "the self-signed certificate was never trusted"
            time.sleep(0.3)
            continue
        pytest.fail("a forged certificate authenticated a tls_client_auth client")


def test_self_signed_tls_client_auth(
    tls_server: AuthkestraServer, pki: TestPKI, selfie: Issued, selfie_two: Issued
) -> None:
    client_id = register(
        tls_server, "--auth-method", "self_signed_tls_client_auth", "--cert", str(selfie.cert_path)
    )
    token = _eventually(
        lambda: flow_for(
            tls_server, pki, client_id, selfie, "self_signed_tls_client_auth"
        ).get_token_sync()
    )
    assert claims_of(token.access_token)["cnf"] == {"x5t#S256": certificate_thumbprint(selfie.der)}
    # A registered self-signed certificate authenticates its own client only.
    other = register(
        tls_server,
        "--auth-method",
        "self_signed_tls_client_auth",
        "--cert",
        str(selfie_two.cert_path),
    )
    with pytest.raises(InvalidClient):
        flow_for(tls_server, pki, other, selfie, "self_signed_tls_client_auth").get_token_sync()
    # ... and selfie_two, registered while the server runs, is trusted within the refresh.
    token = _eventually(
        lambda: flow_for(
            tls_server, pki, other, selfie_two, "self_signed_tls_client_auth"
        ).get_token_sync()
    )
    assert claims_of(token.access_token)["client_id"] == other


def test_an_unregistered_self_signed_certificate_fails_the_handshake(
    tls_server: AuthkestraServer, pki: TestPKI, certs_dir
) -> None:  # type: ignore[no-untyped-def]
    client_id = register(
        tls_server,
        "--auth-method",
        "self_signed_tls_client_auth",
        "--cert",
        str(self_signed(certs_dir, "registered", "registered").cert_path),
    )
    stranger = self_signed(certs_dir, "stranger", "registered")  # same name, other key
    with pytest.raises(NetworkError):
        flow_for(
            tls_server, pki, client_id, stranger, "self_signed_tls_client_auth"
        ).get_token_sync()


def test_a_secret_client_over_mtls_gets_a_bound_token(
    tls_server: AuthkestraServer, pki: TestPKI, other_svc_cert: Issued
) -> None:
    client_id, secret = tls_server.create_client(f"s-{uuid.uuid4().hex[:8]}", "--scope", "read")
    with_cert = ClientCredentialsFlow(
        client_id,
        secret,
        tls_server.token_url,
        retry=ONCE,
        ca_bundle=pki.ca.cert_path,
        client_cert=(other_svc_cert.cert_path, other_svc_cert.key_path),
    )
    claims = claims_of(with_cert.get_token_sync().access_token)
    assert claims["cnf"] == {"x5t#S256": certificate_thumbprint(other_svc_cert.der)}
    without = ClientCredentialsFlow(
        client_id, secret, tls_server.token_url, retry=ONCE, ca_bundle=pki.ca.cert_path
    )
    assert "cnf" not in claims_of(without.get_token_sync().access_token)


def test_introspection_shows_the_binding(
    tls_server: AuthkestraServer, pki: TestPKI, svc_cert: Issued
) -> None:
    client_id = register(
        tls_server,
        "--auth-method",
        "tls_client_auth",
        "--tls-san-uri",
        "spiffe://example.org/svc-a",
        "--can-introspect",
        "any",  # its tokens are for the issuer (no audience): the audience right is not enough
    )
    token = flow_for(tls_server, pki, client_id, svc_cert, "tls_client_auth").get_token_sync()
    # The client introspects its own token, authenticating with its certificate again.
    answer = httpx.post(
        f"{tls_server.issuer}/introspect",
        data={"token": token.access_token, "client_id": client_id},
        verify=client_context(pki, svc_cert),
    ).json()
    assert answer["active"] is True
    assert answer["cnf"] == {"x5t#S256": certificate_thumbprint(svc_cert.der)}


def test_async_flow_with_a_certificate(
    tls_server: AuthkestraServer, pki: TestPKI, svc_cert: Issued
) -> None:
    import anyio

    client_id = register(
        tls_server, "--auth-method", "tls_client_auth", "--tls-san-dns", "svc-a.internal.example"
    )
    flow = flow_for(tls_server, pki, client_id, svc_cert, "tls_client_auth")
    token = anyio.run(flow.get_token)
    assert claims_of(token.access_token)["client_id"] == client_id


def _eventually(call, seconds: float = 15.0):  # type: ignore[no-untyped-def]
    """``call()`` once the server's TLS layer trusts a newly registered certificate."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except NetworkError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_worker_processes_serve_mtls_too(
    pki: TestPKI, server_cert: Issued, selfie: Issued, svc_cert: Issued
) -> None:
    # Each worker builds its own TLS context and trust set (the factory crosses the
    # process boundary); every one of them must authenticate and bind.
    server = AuthkestraServer(
        tls=(server_cert.cert_path, server_cert.key_path, pki.ca.cert_path),
        ca_bundle=pki.ca.cert_path,
        workers=2,
    )
    try:
        pki_client = register(
            server, "--auth-method", "tls_client_auth", "--tls-san-dns", "svc-a.internal.example"
        )
        self_client = register(
            server, "--auth-method", "self_signed_tls_client_auth", "--cert", str(selfie.cert_path)
        )
        for _ in range(8):  # new connections, spread over both workers
            for client_id, cert, method in (
                (pki_client, svc_cert, "tls_client_auth"),
                (self_client, selfie, "self_signed_tls_client_auth"),
            ):
                token = _eventually(
                    lambda c=client_id, k=cert, m=method: flow_for(
                        server, pki, c, k, m
                    ).get_token_sync()
                )
                claims = claims_of(token.access_token)
                assert claims["cnf"] == {"x5t#S256": certificate_thumbprint(cert.der)}
    finally:
        server.stop()


def test_self_signed_clients_without_any_client_ca(
    pki: TestPKI, server_cert: Issued, selfie: Issued, selfie_two: Issued, tmp_path: Path
) -> None:
    # No --tls-client-ca: the registered self-signed certificates are the only anchors,
    # those registered before the server starts and those registered later alike.
    db = made_store(tmp_path / "authkestra.db")
    cli(
        "clients",
        "create",
        "early",
        "--scope",
        "read",
        "--auth-method",
        "self_signed_tls_client_auth",
        "--cert",
        str(selfie.cert_path),
        "--db",
        db,
    )
    server = AuthkestraServer(
        db=db,
        tls=(server_cert.cert_path, server_cert.key_path, None),
        ca_bundle=pki.ca.cert_path,
        extra_env={"AUTHKESTRA_SERVER_TLS_TRUST_REFRESH": "0.5"},
    )
    try:
        token = flow_for(
            server, pki, "early", selfie, "self_signed_tls_client_auth"
        ).get_token_sync()
        assert claims_of(token.access_token)["cnf"] == {
            "x5t#S256": certificate_thumbprint(selfie.der)
        }
        late = register(
            server,
            "--auth-method",
            "self_signed_tls_client_auth",
            "--cert",
            str(selfie_two.cert_path),
        )
        token = _eventually(
            lambda: flow_for(
                server, pki, late, selfie_two, "self_signed_tls_client_auth"
            ).get_token_sync()
        )
        assert claims_of(token.access_token)["client_id"] == late
    finally:
        server.stop()
