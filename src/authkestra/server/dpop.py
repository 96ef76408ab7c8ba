"""DPoP at the token endpoint (RFC 9449 §4.3, §5, §8): checking proofs and issuing nonces.

A token request with a ``DPoP`` header gets a token bound to the proof's key
(``cnf.jkt``, ``token_type: DPoP``) once the proof is checked: one header, a
compact JWS of type ``dpop+jwt`` signed with an asymmetric algorithm by the
public key in its header, naming this endpoint (``htm``, ``htu``), recent
(``iat``), never seen before (``jti``, remembered in the store or Redis), and,
when the server requires it, carrying a nonce of the server's.

Nonces need no shared state: each is an HMAC, under a key derived from the
server key, of the current time window; the current and the previous window's
are accepted, so every instance sharing the server key accepts every other's.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from .._jose import jws_registry
from ..errors import OAuthError
from .shared_state import AssertionReplayCache

__all__ = [
    "DPOP_SIGNING_ALGS",
    "DPoPNonces",
    "DPoPVerifier",
    "InvalidDPoPProof",
    "UseDPoPNonce",
]

#: Algorithms a DPoP proof may be signed with: asymmetric only, never none or HS*.
DPOP_SIGNING_ALGS = ("ES256", "EdDSA", "Ed25519", "RS256", "PS256")
#: The key type (and curve) each algorithm needs.
_KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "EdDSA": ("OKP", "Ed25519"),
    "Ed25519": ("OKP", "Ed25519"),
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
}
_IMPORTERS: dict[str, Any] = {"EC": ECKey, "OKP": OKPKey, "RSA": RSAKey}
#: JWK members only a private (or symmetric) key has.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: A proof longer than this is refused before any parsing.
_MAX_PROOF = 8192
_MAX_JTI = 256
_MIN_RSA_BITS = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: joserfc refuses headers over 512 bytes; an RSA jwk in the header needs more.
_MAX_HEADER = 2048


def _registry(alg: str) -> JWSRegistry:
    registry = copy.copy(jws_registry(alg))
    registry.max_header_length = _MAX_HEADER
    return registry


_REGISTRIES = {alg: _registry(alg) for alg in DPOP_SIGNING_ALGS}


class InvalidDPoPProof(OAuthError):
    """RFC 9449 §5: the DPoP proof is missing parts, malformed, or does not check."""

    error = "invalid_dpop_proof"


class UseDPoPNonce(OAuthError):
    """RFC 9449 §8: the proof must carry a (current) nonce of the server's."""

    error = "use_dpop_nonce"


def _invalid(description: str) -> InvalidDPoPProof:
    return InvalidDPoPProof("invalid DPoP proof", status_code=400, error_description=description)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_segment(segment: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _invalid("the proof is not a compact JWS") from None


def normalized_htu(url: str) -> str:
    """``url`` without query and fragment, scheme and host lower-cased, default port dropped."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = -1
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


class DPoPNonces:
    """Time-windowed HMAC nonces: the same on every instance that shares the server key."""

    def __init__(
        self, server_key: bytes, *, window: int = 300, clock: Callable[[], float] | None = None
    ) -> None:
        self._key = hmac.new(server_key, b"authkestra dpop nonce key", hashlib.sha256).digest()
        self.window = window
        self._clock = clock or time.time

    def _for(self, window: int) -> str:
        return _b64url(hmac.new(self._key, str(window).encode(), hashlib.sha256).digest())

    def current(self) -> str:
        """The nonce to send now."""
        return self._for(int(self._clock() // self.window))

    def is_valid(self, nonce: str) -> bool:
        """True for this window's nonce or the previous one's."""
        window = int(self._clock() // self.window)
        candidate = nonce.encode("utf-8", "replace")
        return any(
            hmac.compare_digest(candidate, self._for(w).encode()) for w in (window, window - 1)
        )


class DPoPVerifier:
    """Checks the DPoP proof of a token request; returns the JWK thumbprint to bind to."""

    def __init__(
        self,
        *,
        token_endpoint: str,
        replay: AssertionReplayCache,
        nonces: DPoPNonces,
        require_nonce: bool = False,
        max_age: int = 60,
        max_future: int = 5,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.htu = normalized_htu(token_endpoint)
        self.replay = replay
        self.nonces = nonces
        self.require_nonce = require_nonce
        self.max_age = max_age
        self.max_future = max_future
        self._clock = clock or time.time

    def verify(self, headers: Sequence[str], *, htm: str = "POST") -> str:
        """The RFC 7638 thumbprint of the proof's key; InvalidDPoPProof or UseDPoPNonce if not."""
        if len(headers) != 1:
            raise _invalid("exactly one DPoP header is required")
        token = headers[0].strip()
        if not token or len(token) > _MAX_PROOF or not token.isascii():
            raise _invalid("the proof is empty or too long")
        segments = token.split(".")
        if len(segments) != 3 or not all(segments):
            raise _invalid("the proof is not a compact JWS")
        header = _json_segment(segments[0])
        if not isinstance(header, dict):
            raise _invalid("the proof header is not a JSON object")
        if header.get("typ") != "dpop+jwt":
            raise _invalid("the proof typ must be dpop+jwt")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in _KEY_TYPES:
            raise _invalid(f"the proof alg must be one of {', '.join(DPOP_SIGNING_ALGS)}")
        key = self._public_key(header.get("jwk"), alg)
        try:
            obj = jws.deserialize_compact(token, key, registry=_REGISTRIES[alg])
        except (JoseError, ValueError, TypeError):
            raise _invalid("the proof signature does not verify") from None
        try:
            claims = json.loads(obj.payload)
        except (ValueError, UnicodeDecodeError):
            raise _invalid("the proof claims are not JSON") from None
        if not isinstance(claims, dict):
            raise _invalid("the proof claims are not a JSON object")
        iat = self._check_claims(claims, htm)
        self._check_nonce(claims.get("nonce"))
        jkt = str(key.thumbprint())
        jti = claims["jti"]
        if not self.replay.first_use("dpop:" + jkt, jti, iat + self.max_age + 1):
            raise _invalid("the proof was used before")
        return jkt

    def _public_key(self, jwk: Any, alg: str) -> Any:
        if not isinstance(jwk, dict):
            raise _invalid("the proof header must carry the public key (jwk)")
        if _PRIVATE_MEMBERS & jwk.keys():
            raise _invalid("the proof jwk must be a public key")
        kty, crv = _KEY_TYPES[alg]
        if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
            raise _invalid(f"the proof jwk does not fit alg {alg}")
        try:
            key = _IMPORTERS[kty].import_key(jwk)
        except (JoseError, ValueError, TypeError, KeyError):
            raise _invalid("the proof jwk is not a valid public key") from None
        if key.is_private:
            raise _invalid("the proof jwk must be a public key")
        if kty == "RSA" and key.raw_value.key_size < _MIN_RSA_BITS:
            raise _invalid(f"an RSA proof key must have at least {_MIN_RSA_BITS} bits")
        return key

    def _check_claims(self, claims: dict[str, Any], htm: str) -> int:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI:
            raise _invalid("the proof needs a jti")
        if claims.get("htm") != htm:
            raise _invalid(f"the proof htm must be {htm}")
        claimed_htu = claims.get("htu")
        if not isinstance(claimed_htu, str) or normalized_htu(claimed_htu) != self.htu:
            raise _invalid("the proof htu must be the token endpoint")
        iat = claims.get("iat")
        if isinstance(iat, bool) or not isinstance(iat, (int, float)):
            raise _invalid("the proof needs a numeric iat")
        now = self._clock()
        if iat < now - self.max_age or iat > now + self.max_future:
            raise _invalid("the proof iat is too old or in the future")
        return int(iat)

    def _check_nonce(self, nonce: Any) -> None:
        if not self.require_nonce:
            return
        if not isinstance(nonce, str) or not self.nonces.is_valid(nonce):
            raise UseDPoPNonce(
                "DPoP nonce required",
                status_code=400,
                error_description="the proof must carry the nonce of the DPoP-Nonce header",
            )
