"""``JWTVerifier``: checks JWT access tokens (RFC 9068) the way RFC 8725 says to, by default."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

import httpx
from joserfc.jwa import JWSAlgModel
from joserfc.jws import JWSRegistry

from .._clock import Clock, SystemClock
from .._protocol.urls import check_endpoint_url
from ..errors import ConfigError, InvalidToken
from ._io import issuer_io
from ._jwt import parse_compact, read_compact
from .access_token import AccessToken
from .jwks import ALGORITHM_KEYS, JWKSCache
from .token_cache import VerifiedTokenCache

__all__ = ["DEFAULT_ALGORITHMS", "RFC9068_CLAIMS", "JWTVerifier"]

DEFAULT_ALGORITHMS = ("ES256", "ES384", "EdDSA", "RS256", "PS256")
#: Claims RFC 9068 §2.2 makes required in a JWT access token.
RFC9068_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
_AT_JWT = ("at+jwt", "application/at+jwt")
#: With the typ check off, these still cannot pass as access tokens: they are other things.
_OTHER_TYPES = ("dpop+jwt", "logout+jwt", "secevent+jwt", "jwk-set+jwt", "token-introspection+jwt")


#: Most header segments remembered per verifier (forged headers cannot fill memory).
_MAX_HEADERS = 64
_UTC = timezone.utc
#: Integer times below this (in absolute value) are exact as floats.
_INT_TIME = 2**53


def _number(value: Any, name: str) -> float | None:
    """A time claim's value as a float; None when absent. InvalidToken for anything else."""
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:  # an integer float cannot hold (over 10**308)
            raise InvalidToken(f"the {name} claim is out of range") from None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidToken(f"the {name} claim is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidToken(f"the {name} claim is out of range") from None
    if not math.isfinite(number):
        raise InvalidToken(f"the {name} claim is not a number")
    return number


def _scopes(claims: Mapping[str, Any]) -> tuple[str, ...]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return tuple(scope.split())
    scp = claims.get("scp")  # some issuers send an array
    if isinstance(scp, list) and all(isinstance(s, str) for s in scp):
        return tuple(scp)
    if isinstance(scp, str):
        return tuple(scp.split())
    if scope is not None:
        raise InvalidToken("the scope claim is not a string")
    return ()


class _Header:
    """A header segment read and checked once: what every token carrying it shares."""

    __slots__ = ("alg", "header", "kid", "signer")

    def __init__(self, header: dict[str, Any], alg: str, kid: str | None, signer: Any) -> None:
        self.header = header
        self.alg = alg
        self.kid = kid
        self.signer: JWSAlgModel = signer


#: What :meth:`JWTVerifier._parse` gives: (header, claims, signing input, signature).
_Parsed = tuple[_Header, dict[str, Any], bytes, bytes]


class JWTVerifier:
    """Verifies JWT access tokens from one issuer, for one API (audience).

    ::

        verifier = JWTVerifier(issuer="https://auth.example.com", audience="https://api.example.com")
        token = await verifier.verify(bearer)         # or verifier.verify_sync(bearer)
        token.client_id, token.scopes                 # an AccessToken

    Checks, all on by default (RFC 9068 §4, RFC 8725): ``typ`` is ``at+jwt``;
    the algorithm is in ``algorithms`` and matches the key's type (``none`` and
    HMAC are never accepted); the key is found by ``kid`` in the issuer's JWKS
    only (``jku``, ``x5u`` and embedded ``jwk`` headers are ignored); ``iss`` is
    exactly ``issuer``; ``aud`` contains ``audience``; ``exp``, ``nbf`` and ``iat``
    hold within ``leeway`` seconds; the RFC 9068 claims are present.

    Args:
        issuer: the issuer, exactly as in the tokens' ``iss``.
        audience: this API's identifier, or several accepted ones.
        jwks_url: where the keys are; by default the ``jwks_uri`` of the
            issuer's metadata (RFC 8414, then OpenID Connect Discovery).
        algorithms: accepted signature algorithms.
        leeway: seconds of clock skew tolerated on ``exp``/``nbf``/``iat``.
        require_at_jwt_typ: check ``typ: at+jwt``; turn off only for issuers that
            do not set it (other JWT types are still refused).
        required_claims: claims a token must carry (default: RFC 9068's).
        cache_tokens: remember verified tokens until they expire (or
            ``cache_max_age``), so a token presented again costs a dict lookup.
            A token revoked at the issuer stays accepted until then: lower
            ``cache_max_age`` or turn this off if that matters more than speed.
        cache_max_age: the longest a verified token is remembered, in seconds.
        max_cached_tokens: bound on remembered tokens.
        jwks_max_age: the longest the key set is kept before it is fetched again.
        jwks_cooldown: the least time between two fetches of the key set.
        max_token_length: longer tokens are refused unread.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Iterable[str],
        jwks_url: str | None = None,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: float = 30.0,
        require_at_jwt_typ: bool = True,
        required_claims: Iterable[str] = RFC9068_CLAIMS,
        cache_tokens: bool = True,
        cache_max_age: float = 300.0,
        max_cached_tokens: int = 10_000,
        jwks_max_age: float = 3600.0,
        jwks_cooldown: float = 30.0,
        max_token_length: int = 16_384,
        timeout: float | httpx.Timeout = 5.0,
        allow_insecure_http: bool = False,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(issuer, str) or not issuer:
            raise ConfigError("issuer must be the issuer's identifier, exactly as in the tokens")
        audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ConfigError("audience must name this API (a non-empty string or several)")
        self.algorithms = tuple(algorithms)
        for alg in self.algorithms:
            if alg not in ALGORITHM_KEYS:
                raise ConfigError(
                    f"algorithm {alg!r} is not allowed: use asymmetric ones"
                    f" ({', '.join(ALGORITHM_KEYS)}); 'none' and HMAC never verify access tokens"
                )
        if jwks_url is not None:
            check_endpoint_url(jwks_url, what="jwks_url", allow_insecure_http=allow_insecure_http)
        else:
            check_endpoint_url(issuer, what="issuer", allow_insecure_http=allow_insecure_http)
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        self.leeway = leeway
        self.require_at_jwt_typ = require_at_jwt_typ
        self.required_claims = tuple(required_claims)
        self._required = frozenset(self.required_claims)
        #: Header segments (base64url, as bytes) already decoded and checked: an issuer
        #: uses a handful, so each is read once.
        self._headers: dict[bytes, _Header] = {}
        self.max_token_length = max_token_length
        self.clock: Clock = clock or SystemClock()
        self._signers = {
            alg: JWSRegistry.algorithms[alg]
            for alg in self.algorithms
            if alg in JWSRegistry.algorithms
        }
        ctx, drivers = issuer_io(
            clock=self.clock,
            timeout=timeout,
            max_body=256 * 1024,
            allow_insecure_http=allow_insecure_http,
            http_client=http_client,
            async_http_client=async_http_client,
        )
        self.jwks = JWKSCache(
            issuer=issuer,
            jwks_url=jwks_url,
            drivers=drivers,
            ctx=ctx,
            clock=self.clock,
            max_age=jwks_max_age,
            cooldown=jwks_cooldown,
        )
        self.cache = (
            VerifiedTokenCache(max_cached_tokens, cache_max_age, self.clock)
            if cache_tokens
            else None
        )

    # -- the API -------------------------------------------------------------------------

    async def verify(self, token: str) -> AccessToken:
        """The verified token, or :class:`~authkestra.InvalidToken` saying why not.

        A failure to reach the issuer for its keys (with none cached) raises
        ``NetworkError``/``ProviderError`` instead: that is not the client's fault.
        """
        if self.cache is not None:
            hit = self.cache.get(token)
            if hit is not None:
                return hit
        parsed = self._parse(token)
        key = await self.jwks.key_async(parsed[0].kid, parsed[0].alg)
        return self._finish(token, parsed, key)

    def verify_sync(self, token: str) -> AccessToken:
        """Blocking twin of :meth:`verify`."""
        if self.cache is not None:
            hit = self.cache.get(token)
            if hit is not None:
                return hit
        parsed = self._parse(token)
        key = self.jwks.key_sync(parsed[0].kid, parsed[0].alg)
        return self._finish(token, parsed, key)

    # -- the checks ----------------------------------------------------------------------

    def _parse(self, token: str) -> _Parsed:
        """The token's parts, its header checked; InvalidToken when it is malformed."""
        parsed = read_compact(token, self.max_token_length, self._headers)
        # Anything the fast path leaves -- a new header, a malformed token -- is read by the
        # reference parser, which accepts it or says what is wrong.
        return parsed if parsed is not None else self._parse_fully(token)

    def _parse_fully(self, token: str) -> _Parsed:
        parsed = parse_compact(token, max_length=self.max_token_length)
        header = self._check_header(parsed.header)
        head = token.split(".", 1)[0].encode("ascii")  # parse_compact checked it is base64url
        if head not in self._headers and len(self._headers) < _MAX_HEADERS:
            self._headers[head] = header
        return header, parsed.claims, parsed.signing_input, parsed.signature

    def _check_header(self, header: dict[str, Any]) -> _Header:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._signers:
            raise InvalidToken(f"the token's algorithm {str(alg)[:20]!r} is not accepted")
        typ = header.get("typ")
        typ = typ.lower() if isinstance(typ, str) else typ
        if self.require_at_jwt_typ:
            if typ not in _AT_JWT:
                raise InvalidToken("the token is not an access token (typ is not at+jwt)")
        elif typ is not None and (not isinstance(typ, str) or typ in _OTHER_TYPES):
            raise InvalidToken("the token's typ says it is not an access token")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the token's kid is not a string")
        return _Header(header, alg, kid, self._signers[alg])

    def _finish(self, token: str, parsed: _Parsed, key: Any) -> AccessToken:
        """Check the signature, then the claims: the AccessToken, or InvalidToken."""
        header, claims, signing_input, signature = parsed
        try:
            valid = header.signer.verify(signing_input, signature, key)
        except Exception:
            valid = False
        if not valid:
            raise InvalidToken("the token's signature is not valid")
        access = self._check_claims(claims)
        if self.cache is not None:
            self.cache.put(token, access)
        return access

    def _check_claims(self, claims: dict[str, Any]) -> AccessToken:
        # This runs for every token not in the cache, so it is written for the common case
        # (every claim there, of the usual type); anything unusual takes the long way, to
        # the same outcome.
        get = claims.get
        if not claims.keys() >= self._required:
            for name in self.required_claims:
                if name not in claims:
                    raise InvalidToken(f"the token has no {name} claim")
        if get("iss") != self.issuer:
            raise InvalidToken("the token was issued by another issuer")
        aud = get("aud")
        if isinstance(aud, str):
            audience: tuple[str, ...] = (aud,)
            if aud not in self.audiences:
                raise InvalidToken("the token is for another audience")
        else:
            if not isinstance(aud, list) or not all(isinstance(a, str) for a in aud):
                raise InvalidToken("the token's aud claim is missing or malformed")
            audience = tuple(aud)
            if self.audiences.isdisjoint(audience):
                raise InvalidToken("the token is for another audience")

        clock = self.clock
        now = time.time() if type(clock) is SystemClock else clock.now().timestamp()
        leeway = self.leeway
        # Integer times (the usual kind) are compared as they are, which for integers of
        # this size is the same as comparing float(value); anything else goes through
        # _number, which says what is wrong with it.
        exp: float | None = get("exp")
        if type(exp) is not int or not -_INT_TIME < exp < _INT_TIME:
            exp = _number(exp, "exp")
            if exp is None:
                raise InvalidToken("the token has no exp claim")
        if now >= exp + leeway:
            raise InvalidToken("the token has expired")
        nbf = _number(get("nbf"), "nbf") if "nbf" in claims else None
        if nbf is not None and now + leeway < nbf:
            raise InvalidToken("the token is not valid yet (nbf)")
        iat: float | None = get("iat")
        if type(iat) is not int or not -_INT_TIME < iat < _INT_TIME:
            iat = _number(iat, "iat")
        if iat is not None and iat > now + leeway:
            raise InvalidToken("the token was issued in the future (iat)")

        subject, client_id, jwt_id = get("sub"), get("client_id"), get("jti")
        if not (
            isinstance(subject, str) and isinstance(client_id, str) and isinstance(jwt_id, str)
        ):
            for name in ("sub", "client_id", "jti"):  # absent is fine; present, a string
                if name in claims and not isinstance(claims[name], str):
                    raise InvalidToken(f"the token's {name} claim is not a string")
        scope = get("scope")
        try:
            expires_at = datetime.fromtimestamp(exp, _UTC)
        except (OverflowError, OSError, ValueError):  # past year 9999, or past time_t
            raise InvalidToken("the token's exp claim is out of range") from None
        return AccessToken._verified(
            subject=subject,
            client_id=client_id,
            scopes=tuple(scope.split()) if isinstance(scope, str) else _scopes(claims),
            audience=audience,
            expires_at=expires_at,
            jwt_id=jwt_id,
            issuer=self.issuer,
            claims=MappingProxyType(claims),
        )

    def __repr__(self) -> str:
        return f"JWTVerifier(issuer={self.issuer!r}, audience={sorted(self.audiences)!r})"
