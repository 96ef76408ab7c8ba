"""A client's TLS certificate, as the ASGI TLS extension hands it to an app."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import ssl
from collections.abc import Mapping
from typing import Any

from cryptography import x509

from .._jose import base64url

__all__ = ["ClientCertificate", "certificate_thumbprint", "presented_certificate"]


def certificate_thumbprint(der: bytes) -> str:
    """RFC 8705 §3.1 ``x5t#S256``: base64url (no padding) SHA-256 of the DER certificate."""
    return base64url.encode(hashlib.sha256(der).digest())


@dataclasses.dataclass(frozen=True, eq=False)
class ClientCertificate:
    """The leaf certificate a client presented on its TLS connection (verified by the TLS layer)."""

    der: bytes

    @functools.cached_property
    def thumbprint(self) -> str:
        """Its ``x5t#S256`` thumbprint."""
        return certificate_thumbprint(self.der)

    @functools.cached_property
    def x509(self) -> x509.Certificate:
        """The parsed certificate (cryptography)."""
        return x509.load_der_x509_certificate(self.der)

    @classmethod
    def from_pem(cls, pem: str) -> ClientCertificate:
        """From one PEM ``CERTIFICATE`` block; ValueError if it is not one."""
        return cls(ssl.PEM_cert_to_DER_cert(pem))

    def __repr__(self) -> str:
        return f"ClientCertificate(x5t#S256={self.thumbprint!r})"


#: Where the certificate read from a scope is kept, so a request parses it once.
_SCOPE_KEY = "authkestra.client_certificate"


def presented_certificate(scope: Mapping[str, Any]) -> ClientCertificate | None:
    """The client certificate of the connection a request came on, or None.

    Read from the ASGI TLS extension (``scope["extensions"]["tls"]
    ["client_cert_chain"][0]``, a PEM string), which :mod:`authkestra.tls.uvicorn`
    adds under uvicorn. None for a plain-HTTP connection, a TLS connection
    without a client certificate, a certificate the server says did not verify
    (``client_cert_error``), or a server that does not provide it.
    """
    cached = scope.get(_SCOPE_KEY)
    if isinstance(cached, ClientCertificate):
        return cached
    extensions = scope.get("extensions")
    tls = extensions.get("tls") if isinstance(extensions, Mapping) else None
    if not isinstance(tls, Mapping) or tls.get("client_cert_error"):
        return None  # no TLS, or a server that let an unverified certificate through
    chain = tls.get("client_cert_chain")
    if not chain or not isinstance(chain[0], str):
        return None
    try:
        certificate = ClientCertificate.from_pem(chain[0])
    except ValueError:
        return None
    if isinstance(scope, dict):
        scope[_SCOPE_KEY] = certificate
    return certificate
