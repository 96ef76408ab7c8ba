"""Verifying client assertions (RFC 7523 §3): ``private_key_jwt`` and ``client_secret_jwt``.

What an assertion must be, checked in this order:

1. its claims (no key needed): ``iss`` = ``sub`` = the client id (checked when it is
   read, see :mod:`.oauth_request`); ``aud`` the issuer identifier -- the sole value,
   as draft-ietf-oauth-rfc7523bis asks -- or, for clients written to RFC 7523's
   older advice, the token endpoint URL; ``exp`` present, not past, and not further
   ahead than ``assertion_max_lifetime``; ``nbf`` and ``iat``, when present, not in
   the future; a ``jti``. Each with ``assertion_leeway`` seconds for clock skew.
2. its signature, with a key of the client's: for ``private_key_jwt`` one of its
   public keys (inline JWK Set or ``jwks_uri``) picked by ``kid``, and only with an
   algorithm that key verifies; for ``client_secret_jwt`` HMAC under the client
   secret. The header's ``alg`` selects, never widens: an HS256 assertion for a
   ``private_key_jwt`` client, ES256 against an RSA key, ``none`` -- all refused.
3. its ``jti``, first use only (per client, remembered until ``exp`` + leeway).

Failures in 1 say what was wrong (they depend only on what the caller sent);
failures in 2 are the one "client authentication failed" every other client
authentication failure gets; 3 says "already used".
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from joserfc.jwk import OctKey

from .._jose.algorithms import ALGORITHMS, ASYMMETRIC, HMAC
from .._jose.claims import ClaimError, TimeRules
from .._jose.keys import generate_key, hmac_key
from .._jose.signing import verify_signature
from .._protocol.client_auth import AuthMethod
from ..errors import InvalidClient
from .client_keys import ClientKey, ParsedKeySets, matching_keys
from .jwks_uri import JwksUriError, RemoteKeySets
from .oauth_request import ClientAssertion
from .secret_box import SecretBox
from .shared_state import AssertionReplayCache
from .store import ClientRecord

__all__ = ["AssertionVerifier", "assertion_failed"]

MAX_JTI_CHARS = 256
#: How many keys without a kid match are tried for one assertion without a kid.
MAX_CANDIDATE_KEYS = 5
#: Header "typ" values an assertion may carry (RFC 7523 sets none; rfc7523bis one).
_TYPES = {"jwt", "client-authentication+jwt"}


def assertion_failed(description: str) -> InvalidClient:
    return InvalidClient("invalid client assertion", status_code=401, error_description=description)


class AssertionVerifier:
    """Checks client assertions against the clients' registered keys or secrets."""

    def __init__(
        self,
        *,
        issuer: str,
        token_endpoint: str,
        box: SecretBox,
        replay: AssertionReplayCache,
        remote: RemoteKeySets,
        max_lifetime: int,
        leeway: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audiences = (issuer, token_endpoint)
        self.box = box
        self.replay = replay
        self.remote = remote
        self.max_lifetime = max_lifetime
        self.leeway = leeway
        self.clock = clock
        self._times = TimeRules(leeway=leeway, max_ahead=max_lifetime)
        self._inline = ParsedKeySets()
        self._secrets: dict[str, OctKey | None] = {}
        self._decoys: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- 1. the claims ---------------------------------------------------------------------

    def check_claims(self, assertion: ClientAssertion) -> float:
        """The assertion's ``exp``, if its header and claims are acceptable (no key needed)."""
        header, claims = assertion.header, assertion.claims
        typ = header.get("typ")
        if typ is not None and (
            not isinstance(typ, str) or typ.lower().removeprefix("application/") not in _TYPES
        ):
            raise assertion_failed("the client assertion has a typ that is not a client assertion")
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) == 1:
            aud = aud[0]  # RFC 7523 allowed an array; rfc7523bis wants the sole value
        if not isinstance(aud, str) or aud not in self.audiences:
            raise assertion_failed(
                f"the client assertion's aud must be this server's issuer identifier, {self.issuer}"
            )
        try:
            exp, _iat = self._times.check(claims, self.clock())
        except ClaimError as exc:
            raise assertion_failed(exc.describe("the client assertion")) from None
        assert exp is not None  # required by the rules
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
            raise assertion_failed(
                f"the client assertion needs a jti (a string of at most {MAX_JTI_CHARS} characters)"
            )
        return float(exp)

    # -- 2. the signature ------------------------------------------------------------------

    def verify_signature(self, client: ClientRecord, assertion: ClientAssertion) -> bool:
        """True if a key or secret of ``client`` verifies the assertion, with an allowed alg."""
        alg = assertion.header.get("alg")
        if not isinstance(alg, str):
            return False
        if client.method is AuthMethod.CLIENT_SECRET_JWT:
            if alg not in HMAC:
                return False
            # Every current secret (a rotated-out one works through its grace period).
            verified = False
            for secret in self._secret_keys(client):
                verified |= self._verify(assertion, secret, alg)
            return verified
        if client.method is not AuthMethod.PRIVATE_KEY_JWT or alg not in ASYMMETRIC:
            return False
        kid = assertion.header.get("kid")
        if kid is not None and not isinstance(kid, str):
            return False
        candidates = self._public_keys(client, kid, alg)
        if not candidates:
            self.decoy_signature_check(assertion)  # as long as a wrong key would take
            return False
        return any(self._verify(assertion, c.key, alg) for c in candidates)

    def decoy_signature_check(self, assertion: ClientAssertion) -> None:
        """Spend on an assertion refused before its signature (unknown, disabled or
        other-method client; no key of its kid) what checking the signature costs, with a
        throwaway key of its alg: the answer's timing does not tell which client ids exist."""
        alg = assertion.header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            return  # refused before any key by every client too
        key = self._decoys.get(alg)
        if key is None:
            with self._lock:
                key = self._decoys.get(alg)
                if key is None:
                    key = hmac_key(secrets.token_urlsafe(32)) if alg in HMAC else generate_key(alg)
                    self._decoys[alg] = key
        self._verify(assertion, key, alg)

    def _public_keys(self, client: ClientRecord, kid: str | None, alg: str) -> Sequence[ClientKey]:
        if client.jwks:
            return matching_keys(self._inline.keys(client.jwks), kid, alg)[:MAX_CANDIDATE_KEYS]
        if not client.jwks_uri:
            return []
        try:
            keys = self.remote.keys(client.client_id, client.jwks_uri)
            found = matching_keys(keys, kid, alg)
            if not found and kid is not None and not any(k.kid == kid for k in keys):
                # A kid the set lacks: the client may have rotated its keys. Ask again.
                keys = self.remote.keys(client.client_id, client.jwks_uri, refresh=True)
                found = matching_keys(keys, kid, alg)
        except JwksUriError:
            return []
        return found[:MAX_CANDIDATE_KEYS]

    def _secret_keys(self, client: ClientRecord) -> list[OctKey]:
        keys = []
        for secret in client.secrets:
            if secret.encrypted is None:
                continue
            cache_key = f"{client.client_id}\x00{secret.encrypted}"
            key = self._secrets.get(cache_key)
            if key is None and cache_key not in self._secrets:
                plain = self.box.decrypt(secret.encrypted, client.client_id)
                key = hmac_key(plain) if plain else None
                with self._lock:
                    if len(self._secrets) > 10_000:
                        self._secrets.clear()
                    self._secrets[cache_key] = key
            if key is not None:
                keys.append(key)
        return keys

    @staticmethod
    def _verify(assertion: ClientAssertion, key: Any, alg: str) -> bool:
        jws = assertion.jws
        return verify_signature(alg, jws.signing_input, jws.signature, key)

    # -- 3. first use ----------------------------------------------------------------------

    def first_use(self, client_id: str, assertion: ClientAssertion, exp: float) -> bool:
        jti = assertion.claims["jti"]
        return self.replay.first_use(client_id, jti, exp + self.leeway)
