"""DPoP (RFC 9449): proving possession of a key with every token request and API call.

The client holds a private key (ES256 or EdDSA). Each HTTP request it makes
with DPoP carries a ``DPoP`` header: a JWS of type ``dpop+jwt`` whose header
holds the public key and whose claims name the method (``htm``), the URL
without query and fragment (``htu``), the time (``iat``) and a fresh ``jti``;
calls to an API add ``ath``, the hash of the access token. A server may demand
a nonce of its choosing (``use_dpop_nonce`` with a ``DPoP-Nonce`` header): the
latest nonce each origin sent is kept and put in the next proof to it.

Signing is joserfc's; nothing here is hand-made JOSE.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._jose import base64url
from ..errors import ConfigError
from .client_assertion import AssertionKey

__all__ = [
    "DPOP_ALGS",
    "DPoPKey",
    "DPoPState",
    "NonceStore",
    "access_token_hash",
    "dpop_key",
    "generate_dpop_key",
    "htu",
    "is_nonce_challenge",
    "proof",
]

#: The algorithms a DPoP key may sign with here.
DPOP_ALGS = frozenset({"ES256", "EdDSA"})
#: RFC 9449 §8.1: nonce = 1*NQCHAR; a longer one than this is not taken.
_NONCE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,1024}")
#: The public members of each key type (RFC 7638 §3.2), all the proof header needs.
_PUBLIC_MEMBERS = {"EC": ("kty", "crv", "x", "y"), "OKP": ("kty", "crv", "x")}
#: Origins remembered at most, so a client calling many hosts does not grow without bound.
_MAX_ORIGINS = 256


@dataclasses.dataclass(frozen=True, repr=False)
class DPoPKey:
    """A DPoP signing key: the joserfc private key, its algorithm, public JWK and thumbprint."""

    key: Any
    alg: str
    public_jwk: Mapping[str, str]
    thumbprint: str

    def __repr__(self) -> str:
        return f"DPoPKey(alg={self.alg!r}, jkt={self.thumbprint!r})"


def dpop_key(signer: AssertionKey) -> DPoPKey:
    """A DPoP key from a loaded private key; ConfigError unless it signs ES256 or EdDSA."""
    if signer.alg not in DPOP_ALGS:
        raise ConfigError(
            f"a DPoP key must sign with ES256 (EC P-256) or EdDSA (Ed25519), not {signer.alg!r}"
        )
    public = signer.key.as_dict(private=False)
    members = _PUBLIC_MEMBERS[str(public["kty"])]
    jwk = {name: str(public[name]) for name in members}
    return DPoPKey(signer.key, signer.alg, jwk, str(signer.key.thumbprint()))


def generate_dpop_key() -> DPoPKey:
    """A new EC P-256 key, for a flow that was given none."""
    from .._jose.keys import generate_key

    return dpop_key(AssertionKey(generate_key("ES256"), "ES256"))


def htu(url: str) -> str:
    """The ``htu`` of a request URL: without query, fragment and userinfo (RFC 9449 §4.2).

    Receivers compare it after one normalisation (case, default port), that of
    :func:`authkestra._protocol.dpop_proof.normalized_htu`.
    """
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # userinfo is not part of the target URI
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url (no padding) of the SHA-256 of the access token's ASCII."""
    return base64url.encode(hashlib.sha256(access_token.encode("ascii")).digest())


def proof(
    key: DPoPKey,
    htm: str,
    url: str,
    *,
    now: int,
    nonce: str | None = None,
    access_token: str | None = None,
) -> str:
    """A DPoP proof JWT for one request (a new ``jti`` on every call)."""
    from .._jose.signing import sign_jwt

    header = {"typ": "dpop+jwt", "alg": key.alg, "jwk": dict(key.public_jwk)}
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(24),
        "htm": htm.upper(),
        "htu": htu(url),
        "iat": now,
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    return sign_jwt(header, claims, key.key)


def is_nonce_challenge(status_code: int, www_authenticate: str | None) -> bool:
    """An API's DPoP nonce challenge (RFC 9449 §9): 401, ``DPoP error="use_dpop_nonce"``."""
    if status_code != 401 or not www_authenticate:
        return False
    challenge = www_authenticate.lstrip().lower()
    return challenge.startswith("dpop") and "use_dpop_nonce" in challenge


class NonceStore:
    """The latest valid ``DPoP-Nonce`` each origin (scheme, host, port) sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nonces: dict[str, str] = {}

    def get(self, url: str) -> str | None:
        return self._nonces.get(_origin(url))

    def remember(self, url: str, nonce: str | None) -> bool:
        """Keep ``nonce`` for ``url``'s origin; False when it is absent or malformed."""
        if nonce is None:
            return False
        nonce = nonce.strip()
        if not _NONCE.fullmatch(nonce):
            return False
        origin = _origin(url)
        with self._lock:
            if origin not in self._nonces and len(self._nonces) >= _MAX_ORIGINS:
                self._nonces.pop(next(iter(self._nonces)))
            self._nonces[origin] = nonce
        return True


@dataclasses.dataclass(frozen=True)
class DPoPState:
    """A flow's DPoP key and the nonces its servers sent."""

    key: DPoPKey
    nonces: NonceStore = dataclasses.field(default_factory=NonceStore)

    def proof(self, htm: str, url: str, *, now: int, access_token: str | None = None) -> str:
        """A proof for this request, carrying the nonce last seen from its origin."""
        return proof(
            self.key, htm, url, now=now, nonce=self.nonces.get(url), access_token=access_token
        )

    def observe(self, url: str, headers: Mapping[str, str]) -> bool:
        """Remember a ``DPoP-Nonce`` in an answer from ``url``; True when there was one."""
        return self.nonces.remember(url, headers.get("dpop-nonce") or headers.get("DPoP-Nonce"))
