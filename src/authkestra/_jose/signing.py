"""Signing and signature checks, through joserfc's algorithms.

joserfc warns on every use of ``EdDSA`` that RFC 9864 deprecates it in favour
of ``Ed25519``. ``EdDSA`` is what issuers and verifiers use today and what the
operator chose, so that warning (a failure where warnings are errors) is
silenced here, for exactly the algorithm asked for and nothing else.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from joserfc import jwt
from joserfc.jwa import JWSAlgModel
from joserfc.jws import JWSRegistry

__all__ = [
    "SignatureAlgorithm",
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
