"""``httpx.Auth`` from a flow: bearer header, and one retry with a fresh token on 401.

A DPoP-bound token (RFC 9449) goes as ``Authorization: DPoP ...`` with a
``DPoP`` proof for each request; the API's ``use_dpop_nonce`` challenge is
answered with one retry carrying its nonce.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Iterable
from typing import TYPE_CHECKING, Any

import httpx

from .._protocol.dpop import DPoPState, is_nonce_challenge
from .._protocol.params import ScopesLike
from ..token import Token
from ._header_write import set_authorization

if TYPE_CHECKING:
    from .client_credentials import ClientCredentialsFlow

__all__ = ["BearerAuth"]


def _replayable(request: httpx.Request) -> bool:
    # bytes, str, form and JSON bodies are kept in memory; a streamed body is gone once sent.
    return isinstance(request.stream, httpx.ByteStream)


def _asks_for_nonce(response: httpx.Response) -> bool:
    """A resource server's DPoP nonce challenge (RFC 9449 §9): 401, ``error="use_dpop_nonce"``."""
    return is_nonce_challenge(response.status_code, response.headers.get("www-authenticate"))


def _token_refused(request: httpx.Request, response: httpx.Response) -> bool:
    """A 401 for the token itself, worth one retry with a fresh token.

    Not a nonce challenge (answered on its own), not a body that cannot go
    again, and not a request that reached another origin after a redirect
    (httpx dropped the token there: a fresh one would not be sent either).
    """
    return (
        response.status_code == 401
        and _replayable(request)
        and not _asks_for_nonce(response)
        and "authorization" in response.request.headers
    )


class BearerAuth(httpx.Auth):
    """Made by :meth:`ClientCredentialsFlow.auth`; works with sync and async httpx clients."""

    def __init__(
        self,
        flow: ClientCredentialsFlow,
        scopes: ScopesLike = None,
        *,
        audience: Any,
        resource: str | Iterable[str] | Any | None,
    ) -> None:
        self.flow = flow
        self.scopes = scopes
        # The parameters never change for this object: resolve the cache key once, so a
        # request costs a lookup and a header, nothing more.
        self._key, self._spec = flow._resolve(scopes, audience, resource)
        self._tokens = flow._tokens
        self._slot = flow._tokens.slot(self._key)  # slots live as long as the flow
        self._monotonic = flow.clock.monotonic
        self._dpop: DPoPState | None = flow._dpop
        self._now = flow.clock.now

    def _authorize(self, request: httpx.Request, token: Token) -> None:
        """Set the Authorization header, and a new DPoP proof for a DPoP-bound token."""
        set_authorization(request.headers, token)
        if self._dpop is not None and token.token_type == "DPoP":
            request.headers["DPoP"] = self._dpop.proof(
                request.method,
                str(request.url),
                now=int(self._now().timestamp()),
                access_token=token.access_token,
            )

    def _nonce_retry(self, request: httpx.Request, response: httpx.Response, token: Token) -> bool:
        """Remember the API's DPoP nonce; True if the request should go again with it.

        The nonce belongs to the origin that answered (after redirects, maybe not the
        request's), and only an answer to a request that carried the token is a
        challenge to send it again.
        """
        if self._dpop is None or token.token_type != "DPoP":
            return False
        answered = response.request
        fresh_nonce = self._dpop.observe(str(answered.url), response.headers)
        if (
            fresh_nonce
            and _asks_for_nonce(response)
            and "authorization" in answered.headers
            and _replayable(request)
        ):
            self._authorize(request, token)
            return True
        return False

    def _followed(
        self, request: httpx.Request, response: httpx.Response, token: Token
    ) -> httpx.Request | None:
        """The request httpx redirected to, with a proof of its own, if it deserves one.

        httpx follows redirects inside one auth step, carrying the first request's
        DPoP proof, which names another URL. On a 401 from a redirect on the same
        origin (httpx kept the Authorization header) the redirected request goes
        once more with a proof for its method and URL. Another origin never gets
        the token back.
        """
        final = response.request
        if (
            final is request
            or response.status_code != 401
            or self._dpop is None
            or token.token_type != "DPoP"
            or "authorization" not in final.headers
            or not _replayable(final)
        ):
            return None
        self._authorize(final, token)
        return final

    def _token_now(self) -> Token | None:
        """The cached token while it needs nothing (no renewal, no event hook), else None."""
        entry = self._slot.entry
        if (
            entry is not None
            and self._monotonic() < entry.refresh_at
            and self._tokens.on_event is None
        ):
            return entry.token
        return None

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        tokens, key, spec = self._tokens, self._key, self._spec
        token = (
            self._token_now()
            or tokens.cached(key, spec, in_async=False)
            or tokens.get_sync(key, spec)
        )
        self._authorize(request, token)
        response = yield request
        followed = self._followed(request, response, token)
        if followed is not None:
            request = followed
            response = yield request
        if self._nonce_retry(request, response, token):
            response = yield request
            self._remember_nonce(request, response, token)
        if _token_refused(request, response):
            tokens.invalidate(key, token)
            fresh = tokens.get_sync(key, spec)
            if fresh.access_token != token.access_token:
                self._authorize(request, fresh)
                yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        tokens, key, spec = self._tokens, self._key, self._spec
        token = (
            self._token_now()
            or tokens.cached(key, spec, in_async=True)
            or await tokens.get_async(key, spec)
        )
        self._authorize(request, token)
        response = yield request
        followed = self._followed(request, response, token)
        if followed is not None:
            request = followed
            response = yield request
        if self._nonce_retry(request, response, token):
            response = yield request
            self._remember_nonce(request, response, token)
        if _token_refused(request, response):
            tokens.invalidate(key, token)
            fresh = await tokens.get_async(key, spec)
            if fresh.access_token != token.access_token:
                self._authorize(request, fresh)
                yield request

    def _remember_nonce(
        self, request: httpx.Request, response: httpx.Response, token: Token
    ) -> None:
        if self._dpop is not None and token.token_type == "DPoP":
            self._dpop.observe(str(response.request.url), response.headers)

    def __repr__(self) -> str:
        return f"BearerAuth(client_id={self.flow.client_id!r}, scopes={self.scopes!r})"
