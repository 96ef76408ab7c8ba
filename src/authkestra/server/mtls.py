"""Mutual TLS (RFC 8705): clients that authenticate with a certificate, and bound tokens.

Two methods (§2): ``tls_client_auth`` -- a certificate from a CA the server
trusts (``AUTHKESTRA_SERVER_TLS_CLIENT_CA``), whose subject DN or one subject
alternative name is the one registered for the client -- and
``self_signed_tls_client_auth`` -- a certificate registered with the client
itself (an ``x5c`` member of its JWK Set), matched by its SHA-256 thumbprint.

The TLS layer (uvicorn, through :mod:`.tls_server`) asks for a client
certificate and accepts one that chains to the client CAs or is one of the
registered self-signed certificates. Python's ``ssl`` cannot accept a
certificate without a path to a trust anchor, so registered self-signed
certificates are trust anchors there: a certificate signed by one of them
would pass the handshake. That is why ``tls_client_auth`` verifies the chain
again here, against the client CAs only, before its subject counts.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import json
import logging
import ssl
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from .._jose.keys import import_key_object
from .._protocol.client_auth import AuthMethod
from ..tls import ClientCertificate, certificate_thumbprint
from .store import ClientRecord

__all__ = [
    "SUBJECT_KINDS",
    "ClientCAs",
    "MutualTLS",
    "TLSSubject",
    "jwks_for_certificates",
    "public_jwk",
    "self_signed_pems",
]

logger = logging.getLogger("authkestra.server")

#: RFC 8705 §2.1.2: how a tls_client_auth client names its certificate (exactly one).
SUBJECT_KINDS = ("subject_dn", "san_dns", "san_uri", "san_ip", "san_email")


@dataclasses.dataclass(frozen=True)
class TLSSubject:
    """The certificate subject a ``tls_client_auth`` client is registered with."""

    kind: str
    value: str

    def __post_init__(self) -> None:
        if self.kind not in SUBJECT_KINDS:
            raise ValueError(f"unknown certificate subject kind {self.kind!r}")
        if not self.value or len(self.value) > 1024:
            raise ValueError("the certificate subject must be 1-1024 characters")
        if self.kind == "subject_dn":
            _name(self.value)  # ValueError if it is not an RFC 4514 string
        elif self.kind == "san_ip":
            ipaddress.ip_address(self.value)
        elif not self.value.isascii() or not self.value.isprintable():
            # Certificates carry DNS names, URIs and e-mail addresses in ASCII (IDNs as
            # A-labels): a Unicode value could only match through case folding tricks.
            raise ValueError("DNS names, URIs and e-mail addresses are given in ASCII")
        if self.kind == "san_email" and "@" not in self.value:
            raise ValueError("an e-mail address has an @")

    def to_json(self) -> str:
        return json.dumps({self.kind: self.value})

    @classmethod
    def from_json(cls, text: str) -> TLSSubject:
        document = json.loads(text)
        if not isinstance(document, dict) or len(document) != 1:
            raise ValueError("a tls_client_auth subject is one member")
        ((kind, value),) = document.items()
        if not isinstance(value, str):
            raise ValueError("the certificate subject must be a string")
        return cls(kind, value)

    def matches(self, certificate: x509.Certificate) -> bool:
        """Whether ``certificate`` is this subject's (RFC 8705 §2.1.2); False if unreadable."""
        try:
            return self._matches(certificate)
        except ValueError:  # a name cryptography cannot decode (it parses lazily)
            return False

    def _matches(self, certificate: x509.Certificate) -> bool:
        if self.kind == "subject_dn":
            return certificate.subject == _name(self.value)
        try:
            names = certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            ).value
        except x509.ExtensionNotFound:
            return False
        if self.kind == "san_dns":
            wanted = self.value.lower().rstrip(".")
            return any(
                n.lower().rstrip(".") == wanted for n in names.get_values_for_type(x509.DNSName)
            )
        if self.kind == "san_uri":
            return self.value in names.get_values_for_type(x509.UniformResourceIdentifier)
        if self.kind == "san_ip":
            return ipaddress.ip_address(self.value) in names.get_values_for_type(x509.IPAddress)
        # RFC 5280 §4.2.1.6: the local part is compared exactly, the domain without case.
        local, _, domain = self.value.rpartition("@")
        return any(
            n.rpartition("@")[0] == local and n.rpartition("@")[2].lower() == domain.lower()
            for n in names.get_values_for_type(x509.RFC822Name)
        )


def _name(text: str) -> x509.Name:
    try:
        return x509.Name.from_rfc4514_string(text)
    except Exception as exc:  # cryptography raises ValueError or its own parse errors
        raise ValueError(f"not an RFC 4514 distinguished name: {exc}") from None


#: The end-entity rules of the Web PKI profile, less two that many client certificates
#: do not meet: a subject alternative name (a client known by its subject DN needs
#: none) and an authority key identifier. Signature, validity, basic constraints and
#: the clientAuth purpose (when the certificate names purposes) are still checked.
_CLIENT_POLICY = (
    ExtensionPolicy.webpki_defaults_ee()
    .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    .may_be_present(x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None)
)


class ClientCAs:
    """The certificate authorities ``tls_client_auth`` certificates must chain to.

    Python gives the application the client's leaf certificate only, so any
    intermediate CA must be in the file too (it is then trusted as an anchor).
    """

    def __init__(self, pem: bytes) -> None:
        certificates = x509.load_pem_x509_certificates(pem)
        if not certificates:
            raise ValueError("no certificate in the client CA file")
        self._store = Store(certificates)
        self._intermediates = certificates

    @classmethod
    def from_file(cls, path: Path) -> ClientCAs:
        return cls(path.read_bytes())

    def verifies(self, certificate: ClientCertificate) -> bool:
        """Whether the certificate has a valid path to one of these CAs, for client use."""
        verifier = (
            PolicyBuilder()
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_CLIENT_POLICY
            )
            .store(self._store)
            .time(datetime.now(timezone.utc))
            .build_client_verifier()
        )
        try:
            verifier.verify(certificate.x509, self._intermediates)
        except (VerificationError, ValueError) as exc:
            logger.info("client certificate refused: %s", exc)
            return False
        return True


def _x5c_ders(jwks_text: str) -> list[bytes]:
    """The first ``x5c`` certificate of each key of a JWK Set (JSON text)."""
    try:
        document = json.loads(jwks_text)
    except ValueError:
        return []
    keys = document.get("keys") if isinstance(document, dict) else None
    ders: list[bytes] = []
    for key in keys if isinstance(keys, list) else []:
        chain = key.get("x5c") if isinstance(key, dict) else None
        if isinstance(chain, list) and chain and isinstance(chain[0], str):
            try:
                ders.append(base64.b64decode(chain[0], validate=True))
            except (binascii.Error, ValueError):
                continue
    return ders


def self_signed_pems(jwks_texts: Iterable[str]) -> list[str]:
    """The registered self-signed certificates, as PEM, for the TLS layer's trust store."""
    return [ssl.DER_cert_to_PEM_cert(der) for text in jwks_texts for der in _x5c_ders(text)]


def public_jwk(certificate: x509.Certificate) -> Any:
    """The certificate's public key as a joserfc key; ValueError for a kind JOSE lacks."""
    return import_key_object(certificate.public_key())


def jwks_for_certificates(pems: Iterable[str]) -> dict[str, Any]:
    """A public JWK Set with one key per certificate, each with its ``x5c`` (RFC 8705 §2.2)."""
    keys = []
    for pem in pems:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        key = public_jwk(certificate)
        der = certificate.public_bytes(Encoding.DER)
        jwk = key.as_dict(private=False)
        jwk["x5c"] = [base64.b64encode(der).decode("ascii")]
        jwk["kid"] = certificate_thumbprint(der)
        keys.append(jwk)
    if not keys:
        raise ValueError("no certificate given")
    return {"keys": keys}


class MutualTLS:
    """Authenticates certificate clients; knows whether tokens are bound to certificates."""

    def __init__(self, client_cas: ClientCAs | None, *, bind_tokens: bool) -> None:
        self.client_cas = client_cas
        self.bind_tokens = bind_tokens

    def authenticates(self, client: ClientRecord, certificate: ClientCertificate) -> bool:
        """Whether ``certificate`` authenticates ``client`` by the client's TLS method."""
        if client.auth_method == AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH:
            return certificate.der in _x5c_ders(client.jwks or "")
        if client.auth_method != AuthMethod.TLS_CLIENT_AUTH or client.tls_client_auth is None:
            return False
        if self.client_cas is None or not self.client_cas.verifies(certificate):
            return False
        try:
            subject = TLSSubject.from_json(client.tls_client_auth)
        except ValueError:
            return False
        return subject.matches(certificate.x509)
