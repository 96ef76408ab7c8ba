"""Signing and signature checks, through joserfc's algorithms -- and one fast path.

:class:`TokenSigner` is the measured exception: the server signs every token with
one key and one header, so it encodes that header once and takes the signature
straight from ``cryptography`` (ES256, EdDSA, RS256), skipping joserfc's per-call
header checks and key lookups -- about a third of the server's time per token
(``bench/README.md``). ``tests/unit/test_token_signer.py`` holds it to joserfc
(the same header and payload, byte for byte; every token verified by joserfc) and
to npm ``jose``. Verification never takes a fast path.

joserfc warns on every use of ``EdDSA`` that RFC 9864 deprecates it in favour
of ``Ed25519``. ``EdDSA`` is what issuers and verifiers use today and what the
operator chose, so that warning (a failure where warnings are errors) is
silenced here, for exactly the algorithm asked for and nothing else.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwt
from joserfc.jwa import JWSAlgModel
from joserfc.jws import JWSRegistry

from . import base64url

__all__ = [
    "SignatureAlgorithm",
    "TokenSigner",
    "jws_registry",
    "sign_jwt",
    "signature_algorithm",
    "verify_signature",
]

#: joserfc's implementation of one algorithm: ``.verify(signing_input, signature, key)``.
SignatureAlgorithm = JWSAlgModel

_lock = threading.Lock()
_registries: dict[str, JWSRegistry] = {}


def _quiet(alg: JWSAlgModel) -> JWSAlgModel:
    alg = copy.copy(alg)
    alg.security_warning = None
    return alg


class _SingleAlgorithm(JWSRegistry):
    def __init__(self, alg: str) -> None:
        super().__init__(algorithms=[alg])
        self.algorithms = {alg: _quiet(JWSRegistry.algorithms[alg])}


def jws_registry(alg: str) -> JWSRegistry:
    """The registry that signs and verifies with exactly ``alg`` (KeyError if joserfc lacks it)."""
    registry = _registries.get(alg)
    if registry is None:
        with _lock:
            registry = _registries.setdefault(alg, _SingleAlgorithm(alg))
    return registry


def signature_algorithm(alg: str) -> SignatureAlgorithm:
    """joserfc's implementation of ``alg``: ``.verify(signing_input, signature, key)``."""
    return jws_registry(alg).algorithms[alg]


def verify_signature(alg: str, signing_input: bytes, signature: bytes, key: Any) -> bool:
    """True when ``signature`` is ``key``'s ``alg`` signature of ``signing_input``.

    Never raises: a signature of the wrong length or shape, or a key of the wrong
    type, is simply not a valid signature.
    """
    try:
        return signature_algorithm(alg).verify(signing_input, signature, key) is True
    except Exception:
        return False


def sign_jwt(header: dict[str, Any], claims: dict[str, Any], key: Any) -> str:
    """A compact JWS of ``claims`` signed with ``key`` by the header's ``alg``.

    Neither dict is changed (joserfc copies the header and serialises the claims).
    """
    return str(jwt.encode(header, claims, key, registry=jws_registry(header["alg"])))


def _compact_json(value: dict[str, Any], *, ascii_only: bool = False) -> bytes:
    """JSON as joserfc writes it: no spaces; the header ASCII, the claims UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only).encode("utf-8")


class TokenSigner:
    """Signs JWTs with one ``key`` under one protected ``header``, fast (see the module).

    For an ``alg`` without a fast path it signs through joserfc, as :func:`sign_jwt`.
    """

    def __init__(self, header: dict[str, Any], key: Any) -> None:
        # "typ" first, as joserfc's jwt.encode writes it: the same bytes either way.
        self.header = {"typ": header["typ"], **header} if "typ" in header else dict(header)
        self.key = key
        self._prefix = base64url.encode(_compact_json(self.header, ascii_only=True)) + "."
        self._signature = _fast_signature(self.header["alg"], key)

    def sign(self, claims: dict[str, Any]) -> str:
        """A compact JWS of ``claims`` (``claims`` is not changed)."""
        if self._signature is None:
            return sign_jwt(self.header, claims, self.key)
        signing_input = self._prefix + base64url.encode(_compact_json(claims))
        signature = self._signature(signing_input.encode("ascii"))
        return f"{signing_input}.{base64url.encode(signature)}"


def _fast_signature(alg: str, key: Any) -> Callable[[bytes], bytes] | None:
    """The raw JWS signature function of ``alg`` with ``key``'s ``cryptography`` key."""
    private = getattr(key, "private_key", None)
    if private is None:
        return None
    if alg == "ES256" and isinstance(private, ec.EllipticCurvePrivateKey):
        if private.curve.name != "secp256r1":
            return None
        algorithm = ec.ECDSA(hashes.SHA256())

        def es256(data: bytes) -> bytes:
            r, s = decode_dss_signature(private.sign(data, algorithm))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # RFC 7518 §3.4: R || S

        return es256
    if alg == "RS256" and isinstance(private, rsa.RSAPrivateKey):
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        return lambda data: bytes(private.sign(data, pkcs1, sha256))
    if alg == "EdDSA" and isinstance(private, ed25519.Ed25519PrivateKey):
        return lambda data: bytes(private.sign(data))
    return None
