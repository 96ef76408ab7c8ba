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

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence

from .._jose import base64url
from .._protocol.dpop_proof import DPOP_PROOF_ALGS, ProofError, normalized_htu, read_proof
from ..errors import OAuthError
from .shared_state import AssertionReplayCache

__all__ = [
    "DPOP_SIGNING_ALGS",
    "DPoPNonces",
    "DPoPVerifier",
    "InvalidDPoPProof",
    "UseDPoPNonce",
    "normalized_htu",
]

#: Algorithms a DPoP proof may be signed with: asymmetric only, never none or HS*.
DPOP_SIGNING_ALGS = DPOP_PROOF_ALGS


class InvalidDPoPProof(OAuthError):
    """RFC 9449 §5: the DPoP proof is missing parts, malformed, or does not check."""

    error = "invalid_dpop_proof"


class UseDPoPNonce(OAuthError):
    """RFC 9449 §8: the proof must carry a (current) nonce of the server's."""

    error = "use_dpop_nonce"


def _invalid(description: str) -> InvalidDPoPProof:
    return InvalidDPoPProof("invalid DPoP proof", status_code=400, error_description=description)


class DPoPNonces:
    """Time-windowed HMAC nonces: the same on every instance that shares the server key."""

    def __init__(
        self, server_key: bytes, *, window: int = 300, clock: Callable[[], float] | None = None
    ) -> None:
        self._key = hmac.new(server_key, b"authkestra dpop nonce key", hashlib.sha256).digest()
        self.window = window
        self._clock = clock or time.time

    def _for(self, window: int) -> str:
        return base64url.encode(hmac.new(self._key, str(window).encode(), hashlib.sha256).digest())

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
    """Checks the DPoP proof of a token request; returns the JWK thumbprint to bind to.

    The proof itself is read by :func:`authkestra._protocol.dpop_proof.read_proof`;
    kept here are what only the token endpoint has: the one-use ``jti`` (in the
    store or Redis, so every instance sees it) and the server's nonces.
    """

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
        try:
            checked = read_proof(
                headers[0],
                method=htm,
                url=self.htu,
                now=self._clock(),
                max_age=self.max_age,
                max_future=self.max_future,
                nonce_is_valid=self.nonces.is_valid if self.require_nonce else None,
            )
        except ProofError as exc:
            if exc.use_nonce:
                raise UseDPoPNonce(
                    "DPoP nonce required", status_code=400, error_description=exc.reason
                ) from None
            raise _invalid(exc.reason) from None
        # Last, so that a proof refused for another reason does not use up its jti.
        expires = int(checked.iat) + self.max_age + 1
        if not self.replay.first_use("dpop:" + checked.jkt, checked.jti, expires):
            raise _invalid("the DPoP proof was used before (jti)")
        return checked.jkt
