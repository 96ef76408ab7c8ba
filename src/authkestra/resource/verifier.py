"""``JWTVerifier``: checks JWT access tokens (RFC 9068) the way RFC 8725 says to, by default."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

import httpx

from .._clock import Clock, SystemClock
from .._jose.algorithms import ASYMMETRIC
from .._jose.claims import ClaimError, TimeRules
from .._jose.compact import MalformedJWS, parse_compact, read_compact
from .._jose.signing import SignatureAlgorithm, signature_algorithm
from .._protocol.scope import split_scope
from .._protocol.urls import check_endpoint_url
from ..errors import ConfigError, InvalidToken
from . import _options as options
from ._issuer_io import issuer_io
from .access_token import AccessToken
from .jwks import JWKSCache
from .revocations import Revocations, RevokedSet
from .revocations import for_verifier as revocation_watch
from .token_cache import VerifiedTokenCache

__all__ = ["DEFAULT_ALGORITHMS", "RFC9068_CLAIMS", "JWTVerifier"]

DEFAULT_ALGORITHMS = ("ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256")
#: Claims RFC 9068 §2.2 makes required in a JWT access token.
RFC9068_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
_AT_JWT = ("at+jwt", "application/at+jwt")
#: With the typ check off, these still cannot pass as access tokens: they are other things
#: (compared without case, an "application/" prefix or surrounding whitespace).
_OTHER_TYPES = frozenset(
    ("dpop+jwt", "logout+jwt", "secevent+jwt", "jwk-set+jwt", "token-introspection+jwt", "id+jwt")
)
#: Claims only an OpenID Connect ID token carries (OIDC Core §2, §3.1.3.6, §3.3.2.11): with
#: the typ check off, a token with one is an ID token presented as an access token.
_ID_TOKEN_CLAIMS = ("nonce", "at_hash", "c_hash", "s_hash")


#: Most header segments remembered per verifier (forged headers cannot fill memory).
_MAX_HEADERS = 64
_UTC = timezone.utc


def _scopes(claims: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, ...]:
    """The granted scopes: from the first of the ``names`` claims the token has.

    ``scope`` is a space-separated string (RFC 9068 §2.2.3); the others (``scp``,
    ``roles``...) may also be arrays of strings, as issuers send them.
    """
    for name in names:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, str):
            return split_scope(value)
        if name == "scope":  # RFC 9068 §2.2.3: a string, always
            raise InvalidToken("the token's scope claim is not a string")
        if not (isinstance(value, list) and all(isinstance(s, str) and s for s in value)):
            raise InvalidToken(f"the token's {name} claim is not a list of scopes")
        return tuple(value)
    return ()


def _not_a_string(token: object) -> InvalidToken:
    return InvalidToken(f"the token is not a string but {type(token).__name__}")


def _shown(value: object) -> str:
    """A claim's value for an error message: its repr, cut short (tokens are anyone's input)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Header:
    """A header segment read and checked once: what every token carrying it shares."""

    __slots__ = ("alg", "header", "kid", "segment", "signer")

    def __init__(
        self, header: dict[str, Any], alg: str, kid: str | None, signer: Any, segment: bytes
    ) -> None:
        self.header = header
        self.alg = alg
        self.kid = kid
        self.signer: SignatureAlgorithm = signer
        #: The header segment (base64url), until the verifier remembers it; then None.
        self.segment: bytes | None = segment


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
        scope_claims: where the granted scopes are: the first of these claims the
            token has (``scope``, a space-separated string; else ``scp``, a string
            or an array). Azure AD puts an application's permissions in ``roles``.
        cache_tokens: remember verified tokens until they expire (or
            ``cache_max_age``), so a token presented again costs a dict lookup.
            Cached tokens are checked against the revocation list too.
        cache_max_age: the longest a verified token is remembered, in seconds.
        max_cached_tokens: bound on remembered tokens.
        jwks_max_age: the longest the key set is kept before it is fetched again.
        jwks_cooldown: the least time between two fetches of the key set.
        max_token_length: longer tokens are refused unread.
        revocations: follow the issuer's revocation list and refuse the tokens it
            names (revoked, or of a disabled client), cached ones included: ``True``
            (the ``revocation_list_endpoint`` of the issuer's metadata, every 5 s),
            the list's URL, or a :class:`~authkestra.resource.revocations.Revocations`
            (its refresh interval, a Redis client for the server's nudges). See
            :mod:`authkestra.resource.revocations`. Without it a JWT is accepted until
            its ``exp`` whatever the issuer revoked since.
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
        scope_claims: Iterable[str] = ("scope", "scp"),
        cache_tokens: bool = True,
        cache_max_age: float = 300.0,
        max_cached_tokens: int = 10_000,
        jwks_max_age: float = 3600.0,
        jwks_cooldown: float = 30.0,
        max_token_length: int = 16_384,
        revocations: bool | str | Revocations | None = None,
        timeout: float | httpx.Timeout = 5.0,
        allow_insecure_http: bool = False,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(issuer, str) or not issuer:
            raise ConfigError("issuer must be the issuer's identifier, exactly as in the tokens")
        audiences = options.audience_names(audience)
        self.algorithms = options.name_list(algorithms, "algorithms")
        if not self.algorithms:
            raise ConfigError("algorithms is empty: no token could ever be accepted")
        for alg in self.algorithms:
            if alg not in ASYMMETRIC:
                raise ConfigError(
                    f"algorithm {alg!r} is not allowed: use asymmetric ones"
                    f" ({', '.join(ASYMMETRIC)}); 'none' and HMAC never verify access tokens"
                )
        if jwks_url is not None:
            check_endpoint_url(jwks_url, what="jwks_url", allow_insecure_http=allow_insecure_http)
        else:
            check_endpoint_url(issuer, what="issuer", allow_insecure_http=allow_insecure_http)
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        #: Plain http to the issuer allowed (for what else talks to it: RFC 9728 metadata,
        #: FastAPI's OpenAPI token URL).
        self.allow_insecure_http = allow_insecure_http
        self.leeway = options.seconds(leeway, "leeway")
        self._times = TimeRules(leeway=self.leeway)
        self.require_at_jwt_typ = bool(require_at_jwt_typ)
        self.required_claims = options.claim_names(required_claims, "required_claims")
        self._required = frozenset(self.required_claims)
        self.scope_claims = options.claim_names(scope_claims, "scope_claims")
        #: A string scope claim, when the token has one, is where its scopes are.
        self._scope_first = self.scope_claims[:1] == ("scope",)
        #: Header segments (base64url, as bytes) already decoded and checked: an issuer
        #: uses a handful, so each is read once.
        self._headers: dict[bytes, _Header] = {}
        self.max_token_length = options.count(max_token_length, "max_token_length", positive=True)
        self.clock: Clock = clock or SystemClock()
        self._signers = {alg: signature_algorithm(alg) for alg in self.algorithms}
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
            max_age=options.seconds(jwks_max_age, "jwks_max_age", positive=True),
            cooldown=options.seconds(jwks_cooldown, "jwks_cooldown"),
        )
        #: The issuer's revocation list, when followed (``revocations``).
        self.revocations = revocation_watch(
            revocations, issuer=issuer, jwks=self.jwks, drivers=drivers, ctx=ctx, clock=self.clock
        )
        if self.revocations is not None:
            self.revocations.on_change = self._drop_revoked
        self.cache = (
            VerifiedTokenCache(
                options.count(max_cached_tokens, "max_cached_tokens"),
                options.seconds(cache_max_age, "cache_max_age"),
                self.clock,
            )
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
            try:
                hit = self.cache.get(token)
            except TypeError:  # unhashable: a list, a dict... anything but a token
                raise _not_a_string(token) from None
            if hit is not None:
                return hit  # a revoked one was dropped when the list named it
        parsed = self._parse(token)
        key = await self.jwks.key_async(parsed[0].kid, parsed[0].alg)
        if self.revocations is not None:
            await self.revocations.ensure_async()
        return self._finish(token, parsed, key)

    def verify_sync(self, token: str) -> AccessToken:
        """Blocking twin of :meth:`verify`."""
        if self.cache is not None:
            try:
                hit = self.cache.get(token)
            except TypeError:  # unhashable: a list, a dict... anything but a token
                raise _not_a_string(token) from None
            if hit is not None:
                return hit  # a revoked one was dropped when the list named it
        parsed = self._parse(token)
        key = self.jwks.key_sync(parsed[0].kid, parsed[0].alg)
        if self.revocations is not None:
            self.revocations.ensure_sync()
        return self._finish(token, parsed, key)

    # -- the checks ----------------------------------------------------------------------

    def _parse(self, token: str) -> _Parsed:
        """The token's parts, its header checked; InvalidToken when it is malformed."""
        parsed = read_compact(token, self.max_token_length, self._headers)
        # Anything the fast path leaves -- a new header, a malformed token -- is read by the
        # reference parser, which accepts it or says what is wrong.
        return parsed if parsed is not None else self._parse_fully(token)

    def _parse_fully(self, token: str) -> _Parsed:
        try:
            parsed = parse_compact(token, max_length=self.max_token_length)
        except MalformedJWS as exc:
            raise InvalidToken(exc.describe("the token")) from None
        header = self._check_header(parsed.header, parsed.header_segment)
        return header, parsed.claims, parsed.signing_input, parsed.signature

    def _check_header(self, header: dict[str, Any], segment: bytes) -> _Header:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._signers:
            raise InvalidToken(
                f"the token's algorithm {str(alg)[:20]!r} is not accepted"
                f" (algorithms: {', '.join(self.algorithms)})"
            )
        typ = header.get("typ")
        if self.require_at_jwt_typ:
            if not isinstance(typ, str) or typ.lower() not in _AT_JWT:
                raise InvalidToken(
                    f"the token is not an access token (typ is not at+jwt: {_shown(typ)};"
                    " for an issuer that does not set it, require_at_jwt_typ=False)"
                )
        elif "typ" in header:  # absent is fine with the check off; null is not a type
            media_type = typ.strip().lower() if isinstance(typ, str) else None
            if media_type is not None and media_type.startswith("application/"):
                media_type = media_type[len("application/") :]
            if media_type is None or media_type in _OTHER_TYPES:
                raise InvalidToken("the token's typ says it is not an access token")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the token's kid is not a string")
        return _Header(header, alg, kid, self._signers[alg], segment)

    def _remember(self, header: _Header, segment: bytes) -> None:
        """Read tokens with this header by the fast path from now on (its signature held)."""
        header.segment = None
        if len(self._headers) < _MAX_HEADERS:
            self._headers.setdefault(segment, header)

    def _finish(self, token: str, parsed: _Parsed, key: Any) -> AccessToken:
        """Check the signature, then the claims: the AccessToken, or InvalidToken."""
        header, claims, signing_input, signature = parsed
        try:
            valid = header.signer.verify(signing_input, signature, key)
        except Exception:
            valid = False
        if not valid:
            raise InvalidToken("the token's signature is not valid")
        if header.segment is not None:
            # Only headers of tokens the issuer signed: forged ones cannot fill the table.
            self._remember(header, header.segment)
        access = self._check_claims(claims)
        watch = self.revocations
        if watch is not None:
            generation = watch.generation
            watch.refuse(access)
        if self.cache is not None:
            self.cache.put(token, access)
            if watch is not None and watch.generation != generation:
                # A new list came while this token was checked: judge it by that one too.
                try:
                    watch.refuse(access)
                except InvalidToken:
                    self.cache.drop(token)
                    raise
        return access

    def close(self) -> None:
        """Stop following the revocation list (its background thread); the rest needs no
        closing."""
        if self.revocations is not None:
            self.revocations.close()

    def _drop_revoked(self, revoked: RevokedSet) -> None:
        """Forget the cached tokens a new revocation list names."""
        if self.cache is not None:
            self.cache.drop_where(revoked.names)

    def _check_claims(self, claims: dict[str, Any]) -> AccessToken:
        # This runs for every token not in the cache, so it is written for the common case
        # (every claim there, of the usual type); anything unusual takes the long way, to
        # the same outcome.
        get = claims.get
        if not claims.keys() >= self._required:
            for name in self.required_claims:
                if name not in claims:
                    raise InvalidToken(
                        f"the token has no {name} claim (required_claims names the claims"
                        " a token must have)"
                    )
        if get("iss") != self.issuer:
            raise InvalidToken(
                f"the token was issued by another issuer ({_shown(get('iss'))},"
                f" not {self.issuer!r})"
            )
        aud = get("aud")
        if isinstance(aud, str):
            audience: tuple[str, ...] = (aud,)
            if aud not in self.audiences:
                raise self._other_audience(audience)
        else:
            if not isinstance(aud, list) or not all(isinstance(a, str) for a in aud):
                raise InvalidToken("the token's aud claim is missing or malformed")
            audience = tuple(aud)
            if self.audiences.isdisjoint(audience):
                raise self._other_audience(audience)
        if not self.require_at_jwt_typ and (
            get("typ") == "ID" or any(name in claims for name in _ID_TOKEN_CLAIMS)
        ):
            # Without typ: at+jwt, an ID token for a client that is also this audience
            # would pass for an access token (Keycloak marks its ID tokens typ "ID").
            raise InvalidToken("the token is an ID token, not an access token")

        clock = self.clock
        now = time.time() if type(clock) is SystemClock else clock.now().timestamp()
        try:
            exp = self._times.check(claims, now)[0]
        except ClaimError as exc:
            raise InvalidToken(exc.describe("the token")) from None
        assert exp is not None  # required by the rules

        subject, client_id, jwt_id = get("sub"), get("client_id"), get("jti")
        if not (
            isinstance(subject, str) and isinstance(client_id, str) and isinstance(jwt_id, str)
        ):
            for name in ("sub", "client_id", "azp", "jti"):  # absent is fine; present, a string
                if name in claims and not isinstance(claims[name], str):
                    raise InvalidToken(f"the token's {name} claim is not a string")
            if client_id is None:
                # OpenID Connect's authorized party: the client, for issuers that do not
                # put RFC 9068's client_id in their tokens (Keycloak, Auth0, Azure AD).
                client_id = get("azp")
        scope = get("scope")
        try:
            expires_at = datetime.fromtimestamp(exp, _UTC)
        except (OverflowError, OSError, ValueError):  # past year 9999, or past time_t
            raise InvalidToken("the token's exp claim is out of range") from None
        return AccessToken._verified(
            subject=subject,
            client_id=client_id,
            scopes=(
                split_scope(scope)
                if type(scope) is str and self._scope_first
                else _scopes(claims, self.scope_claims)
            ),
            audience=audience,
            expires_at=expires_at,
            jwt_id=jwt_id,
            issuer=self.issuer,
            claims=MappingProxyType(claims),
        )

    def _other_audience(self, audience: tuple[str, ...]) -> InvalidToken:
        shown = ", ".join(_shown(a) for a in audience[:3]) + (", ..." if len(audience) > 3 else "")
        expected = ", ".join(repr(a) for a in sorted(self.audiences))
        return InvalidToken(f"the token is for another audience ({shown}, not {expected})")

    def __repr__(self) -> str:
        return f"JWTVerifier(issuer={self.issuer!r}, audience={sorted(self.audiences)!r})"
