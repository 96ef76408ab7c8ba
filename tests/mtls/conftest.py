"""A test PKI and an ``authkestra serve`` over TLS that asks for client certificates."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.authkestra_server import AuthkestraServer
from tests.support.certificates import Issued, TestPKI, self_signed


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """A CA the server does not trust."""
    return TestPKI(tmp_path_factory.mktemp("other-pki"), name="untrusted CA")


@pytest.fixture(scope="session")
def server_cert(pki: TestPKI) -> Issued:
    return pki.server()


@pytest.fixture(scope="session")
def certs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("client-certs")


@pytest.fixture(scope="session")
def svc_cert(pki: TestPKI) -> Issued:
    """A CA-issued client certificate: CN=svc-a, O=Example, SAN dns and uri."""
    return pki.issue(
        "svc-a",
        "svc-a",
        organisation="Example",
        dns=("svc-a.internal.example",),
        uris=("spiffe://example.org/svc-a",),
        ips=("10.1.2.3",),
        emails=("svc-a@example.org",),
    )


@pytest.fixture(scope="session")
def other_svc_cert(pki: TestPKI) -> Issued:
    return pki.issue("svc-b", "svc-b", organisation="Example", dns=("svc-b.internal.example",))


@pytest.fixture(scope="session")
def selfie(certs_dir: Path) -> Issued:
    return self_signed(certs_dir, "selfie", "selfie")


@pytest.fixture(scope="session")
def selfie_two(certs_dir: Path) -> Issued:
    return self_signed(certs_dir, "selfie-two", "selfie-two")


@pytest.fixture(scope="module")
def tls_server(
    pki: TestPKI, server_cert: Issued, selfie: Issued, svc_cert: Issued
) -> Iterator[AuthkestraServer]:
    server = AuthkestraServer(
        tls=(server_cert.cert_path, server_cert.key_path, pki.ca.cert_path),
        ca_bundle=pki.ca.cert_path,
        extra_env={"AUTHKESTRA_SERVER_TLS_TRUST_REFRESH": "0.5"},
    )
    try:
        yield server
    finally:
        server.stop()


def client_context(pki: TestPKI, cert: Issued | None = None) -> ssl.SSLContext:
    """What a client uses: trusts the test CA, presents ``cert`` if given."""
    context = ssl.create_default_context(cafile=str(pki.ca.cert_path))
    if cert is not None:
        context.load_cert_chain(cert.cert_path, cert.key_path)
    return context
