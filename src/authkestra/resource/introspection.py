"""``IntrospectionVerifier``: checks opaque tokens by asking the issuer (RFC 7662)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from .._clock import Clock, SystemClock
from .._io.refresh import Entry, RefreshingCache
from .._jose.claims import ClaimError, TimeRules
from .._json import parse_json_object
from .._protocol.actions import HttpRequest, HttpResponse, Operation, ReadSecret
from .._protocol.client_auth import AuthMethod, check_client_id
from .._protocol.discovery import discover
from .._protocol.redact import Redactor
from .._protocol.responses import raise_for_failure
from .._protocol.retry import send_with_retries
from .._protocol.scope import split_scope
from .._protocol.token_request import build_authenticated_post
from .._protocol.urls import check_endpoint_url
from ..errors import AuthError, ConfigError, InvalidToken, MalformedResponse
from ..secrets import Secret, SecretLike, to_secret_source
from . import _options as options
from ._issuer_io import issuer_io
from .access_token import AccessToken

__all__ = ["IntrospectionVerifier"]

#: The client authentication methods the verifier can send (named in a ConfigError below).
_AUTH_METHODS = (AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST)


class IntrospectionVerifier:
    """Verifies tokens with the issuer's introspection endpoint (RFC 7662).

    ::

        verifier = IntrospectionVerifier(
            issuer="https://auth.example.com", client_id="orders-api", client_secret=secret,
            audience="https://orders.example.com",
        )
        token = await verifier.verify(bearer)

    The API authenticates to the endpoint as a client, with ``client_secret_basic``
    (the default) or ``client_secret_post`` (``client_secret`` may be a str, a
    :class:`~authkestra.Secret`, a source or a callable, as for
    :class:`~authkestra.ClientCredentialsFlow`). Error messages never contain
    the secret or the token being introspected. An active answer's ``exp`` and
    ``nbf``, when given, are checked too, within ``leeway`` seconds of clock skew.

    One request per token at a time: concurrent checks of one token share one
    introspection request. Active answers are remembered for ``cache_ttl``
    seconds (short: a revoked token is accepted at most that long), never past
    the token's ``exp``; refusals (inactive, expired, another audience) for
    ``negative_cache_ttl`` seconds, so a replayed dead token does not cost a
    request each time. Failures to reach the endpoint are not remembered. At
    most ``max_cached_tokens`` tokens are remembered (the oldest go first);
    ``cache_ttl=0`` and ``negative_cache_ttl=0`` turn either off.
    """

    def __init__(
        self,
        introspection_url: str | None = None,
        *,
        issuer: str | None = None,
        client_id: str,
        client_secret: SecretLike,
        auth_method: str | AuthMethod = AuthMethod.CLIENT_SECRET_BASIC,
        audience: str | Iterable[str] | None = None,
        cache_ttl: float = 30.0,
        negative_cache_ttl: float = 5.0,
        leeway: float = 30.0,
        max_cached_tokens: int = 10_000,
        max_token_length: int = 16_384,
        timeout: float | httpx.Timeout = 5.0,
        allow_insecure_http: bool = False,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        if introspection_url is None and issuer is None:
            raise ConfigError("give introspection_url, or issuer to discover it")
        for what, url in (("introspection_url", introspection_url), ("issuer", issuer)):
            if url is not None:
                check_endpoint_url(url, what=what, allow_insecure_http=allow_insecure_http)
        check_client_id(client_id)
        self.auth_method = AuthMethod.parse(auth_method)
        if self.auth_method not in _AUTH_METHODS:
            raise ConfigError(
                "introspection supports auth_method 'client_secret_basic' or"
                f" 'client_secret_post', not {self.auth_method.value!r}"
            )
        source = to_secret_source(client_secret)
        if source is None:
            raise ConfigError("introspection needs client_secret")
        if isinstance(client_secret, (str, Secret)) and not client_secret:
            raise ConfigError("client_secret is empty")
        self.url = introspection_url
        self.issuer = issuer
        self.client_id = client_id
        if audience is None:
            self.audiences: frozenset[str] | None = None
        else:
            self.audiences = frozenset(options.audience_names(audience))
        self.max_token_length = options.count(max_token_length, "max_token_length", positive=True)
        self.cache_ttl = options.seconds(cache_ttl, "cache_ttl")
        self.negative_cache_ttl = options.seconds(negative_cache_ttl, "negative_cache_ttl")
        self.leeway = options.seconds(leeway, "leeway")
        #: An active answer's exp and nbf, when it gives them (iat is the issuer's business).
        self._times = TimeRules(leeway=self.leeway, require=(), names=("exp", "nbf"))
        self.clock: Clock = clock or SystemClock()
        self._ctx, self._drivers = issuer_io(
            clock=self.clock,
            timeout=timeout,
            max_body=64 * 1024,
            allow_insecure_http=allow_insecure_http,
            http_client=http_client,
            async_http_client=async_http_client,
            secret_source=source,
        )
        drivers = self._drivers
        self._answers: RefreshingCache[str, AccessToken] = RefreshingCache(
            fetch=self._fetch,
            sync_driver=drivers.sync,
            async_driver=drivers.async_,
            clock=self.clock.monotonic,
            wait_timeout=self._ctx.policy.total_timeout + 5,
            backoff=self._remember_refusal,
            max_slots=max(1, options.count(max_cached_tokens, "max_cached_tokens")),
            what="introspection request",
        )

    async def verify(self, token: str) -> AccessToken:
        """The token as the issuer describes it, or :class:`~authkestra.InvalidToken`."""
        return await self._answers.get_async(_checked(token, self.max_token_length))

    def verify_sync(self, token: str) -> AccessToken:
        """Blocking twin of :meth:`verify`."""
        return self._answers.get_sync(_checked(token, self.max_token_length))

    def _fetch(self, token: str, _force: bool) -> Operation[Entry[AccessToken]]:
        """Ask the endpoint about ``token``; the answer, kept for at most ``cache_ttl``."""
        answer = yield from self._introspect(token)
        access = self._accept(answer)
        left = access.expires_at.timestamp() - self.clock.now().timestamp()
        until = self.clock.monotonic() + max(0.0, min(self.cache_ttl, left))
        return Entry(access, until, until)

    def _remember_refusal(self, _failures: int, error: AuthError) -> float:
        """How long a failed check of one token is answered from memory."""
        return self.negative_cache_ttl if isinstance(error, InvalidToken) else 0.0

    def _introspect(self, token: str) -> Operation[dict[str, Any]]:
        ctx = self._ctx
        url = self.url
        if url is None:
            assert self.issuer is not None
            metadata = yield from discover(self.issuer, ctx, require="introspection_endpoint")
            url = self.url = metadata.endpoint
        secret: str = yield ReadSecret()
        # Per call: what the endpoint may echo back into an error message.
        redact = Redactor([token])
        redact.add(secret, client_id=self.client_id)
        target = url

        def request(deadline: float) -> HttpRequest:
            return build_authenticated_post(
                target,
                [("token", token), ("token_type_hint", "access_token")],
                client_id=self.client_id,
                secret=secret,
                auth_method=self.auth_method,
                form_encode_basic=True,
                deadline=deadline,
                max_body=ctx.max_body,
                user_agent=ctx.user_agent,
            )

        response = yield from send_with_retries(
            request, ctx.policy, ctx.clock, what="introspection request"
        )
        what = "the introspection endpoint"
        shown = _masked(response, redact)
        raise_for_failure(shown, redact, what=what)
        try:
            return parse_json_object(response.body)
        except ValueError as exc:
            # The reason may quote a member name: not one that held a credential.
            reason = exc if shown is response else "the body is not a valid JSON object"
            raise MalformedResponse(
                f"{what} sent an invalid answer: {reason}", status_code=response.status_code
            ) from None

    def _accept(self, answer: dict[str, Any]) -> AccessToken:
        if answer.get("active") is not True:
            raise InvalidToken("the issuer says the token is not active")
        now = self.clock.now()
        try:
            exp, _iat = self._times.check(answer, now.timestamp())
        except ClaimError as exc:
            if exc.problem in ("not a number", "out of range"):
                reason = f"the introspection answer has a malformed {exc.claim}"
            else:
                reason = exc.describe("the token")
            raise InvalidToken(reason) from None
        if exp is not None:
            try:
                expires_at = datetime.fromtimestamp(exp, timezone.utc)
            except (OverflowError, OSError, ValueError):  # past year 9999, or past time_t
                raise InvalidToken("the introspection answer's exp is out of range") from None
        else:
            expires_at = now + timedelta(seconds=self.cache_ttl)
        if self.issuer is not None and "iss" in answer and answer["iss"] != self.issuer:
            raise InvalidToken("the token was issued by another issuer")
        aud = answer.get("aud")
        audience = (
            (aud,)
            if isinstance(aud, str)
            else tuple(a for a in aud if isinstance(a, str))
            if isinstance(aud, list)
            else ()
        )
        if self.audiences is not None and not self.audiences.intersection(audience):
            raise InvalidToken("the token is for another audience")
        scope = answer.get("scope", "")
        if isinstance(scope, list) and all(isinstance(s, str) for s in scope):
            scope = " ".join(scope)  # some servers send an array
        if not isinstance(scope, str):
            raise MalformedResponse(
                "the introspection answer has a malformed scope", status_code=200
            )
        return AccessToken(
            subject=answer.get("sub") if isinstance(answer.get("sub"), str) else None,
            client_id=answer.get("client_id") if isinstance(answer.get("client_id"), str) else None,
            scopes=split_scope(scope),
            audience=audience,
            expires_at=expires_at,
            jwt_id=answer.get("jti") if isinstance(answer.get("jti"), str) else None,
            issuer=answer.get("iss") if isinstance(answer.get("iss"), str) else self.issuer,
            claims=answer,
        )

    def __repr__(self) -> str:
        return f"IntrospectionVerifier(url={self.url!r}, client_id={self.client_id!r})"


def _checked(token: str, max_length: int) -> str:
    """``token`` if it can be a bearer token (RFC 6750 §2.1); refused unasked otherwise."""
    if not isinstance(token, str) or not token or len(token) > max_length:
        raise InvalidToken("no token, or a token too long to be one")
    if any(ord(ch) < 0x21 or ord(ch) > 0x7E for ch in token):
        raise InvalidToken("the token has characters a bearer token cannot have")
    return token


def _masked(response: HttpResponse, redact: Redactor) -> HttpResponse:
    """``response`` with the credentials it echoes masked, for error messages to quote.

    Masked before any excerpt is cut, so no part of a credential survives a cut.
    """
    text = response.body.decode("utf-8", "surrogateescape")
    body = redact(text).encode("utf-8", "surrogateescape")
    headers = {name: redact(value) for name, value in response.headers.items()}
    if body == response.body and headers == dict(response.headers):
        return response
    return dataclasses.replace(response, body=body, headers=headers)
