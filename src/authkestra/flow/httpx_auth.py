"""``httpx.Auth`` from a flow: bearer header, and one retry with a fresh token on 401."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Iterable
from typing import TYPE_CHECKING, Any

import httpx

from .._protocol.params import ScopesLike
from ..token import Token

if TYPE_CHECKING:
    from .client_credentials import ClientCredentialsFlow

__all__ = ["BearerAuth"]


def _replayable(request: httpx.Request) -> bool:
    # bytes, str, form and JSON bodies are kept in memory; a streamed body is gone once sent.
    return isinstance(request.stream, httpx.ByteStream)


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
        request.headers["Authorization"] = token.authorization
        response = yield request
        if response.status_code == 401 and _replayable(request):
            tokens.invalidate(key, token)
            fresh = tokens.get_sync(key, spec)
            if fresh.access_token != token.access_token:
                request.headers["Authorization"] = fresh.authorization
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
        request.headers["Authorization"] = token.authorization
        response = yield request
        if response.status_code == 401 and _replayable(request):
            tokens.invalidate(key, token)
            fresh = await tokens.get_async(key, spec)
            if fresh.access_token != token.access_token:
                request.headers["Authorization"] = fresh.authorization
                yield request

    def __repr__(self) -> str:
        return f"BearerAuth(client_id={self.flow.client_id!r}, scopes={self.scopes!r})"
