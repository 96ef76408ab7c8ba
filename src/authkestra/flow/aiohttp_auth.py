"""``aiohttp`` client middleware from a flow's token: one retry with a fresh token on 401,
DPoP included.

::

    async with aiohttp.ClientSession(middlewares=(flow.aiohttp_middleware(["read"]),)) as s:
        async with s.get("https://api.example.com/orders") as answer: ...

The decisions are :mod:`authkestra._protocol.api_auth`'s, as for httpx and requests;
this module reads and writes aiohttp's objects for it. aiohttp calls a client
middleware for each request it sends, redirects included, so each call sees one hop:
the token is set, the answer read, and the request sent again when the decision asks
(a new token after a 401, a DPoP nonce). A request whose body cannot be sent twice (a
stream) is never retried. Needs aiohttp 3.12 or later (client middlewares).
"""

from __future__ import annotations

from typing import Any

from .._protocol.api_auth import Renew, advance, after_answer, authorize, needs_decision
from ..errors import ConfigError
from ..token import Token
from .token_source import TokenSource

try:
    from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
    from aiohttp.payload import BytesPayload
except ImportError:  # pragma: no cover - depends on the install
    raise ConfigError(
        "flow.aiohttp_middleware() needs aiohttp 3.12 or later: pip install 'authkestra[aiohttp]'"
    ) from None

__all__ = ["AiohttpBearerMiddleware"]


class _Aiohttp:
    """What the decision needs of aiohttp (:class:`~authkestra._protocol.api_auth.HttpLibrary`)."""

    @staticmethod
    def method(request: ClientRequest) -> str:
        return str(request.method)

    @staticmethod
    def url(request: ClientRequest) -> str:
        return str(request.url.with_fragment(None))

    @staticmethod
    def replayable(request: ClientRequest) -> bool:
        # Bytes (and no body) can be sent again; a stream was used up by the first attempt.
        body: Any = request.body
        return body is None or isinstance(body, (bytes, BytesPayload)) or not body

    @staticmethod
    def has_authorization(request: ClientRequest) -> bool:
        return "Authorization" in request.headers

    @staticmethod
    def set_credentials(request: ClientRequest, token: Token, proof: str | None) -> None:
        request.headers["Authorization"] = token.authorization
        if proof is not None:
            request.headers["DPoP"] = proof
        else:
            request.headers.pop("DPoP", None)

    @staticmethod
    def drop_proof(request: ClientRequest) -> None:
        request.headers.pop("DPoP", None)

    @staticmethod
    def status(response: tuple[ClientRequest, ClientResponse]) -> int:
        return response[1].status

    @staticmethod
    def header(response: tuple[ClientRequest, ClientResponse], name: str) -> str | None:
        return response[1].headers.get(name)

    @staticmethod
    def request_of(response: tuple[ClientRequest, ClientResponse]) -> ClientRequest:
        return response[0]

    @staticmethod
    def is_redirect(response: tuple[ClientRequest, ClientResponse]) -> bool:
        return False  # aiohttp calls the middleware again for the redirect's request


AIOHTTP = _Aiohttp()


class AiohttpBearerMiddleware:
    """Made by :meth:`ClientCredentialsFlow.aiohttp_middleware`: an aiohttp client middleware."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        token = await self.source.get_async()
        authorize(AIOHTTP, request, token, self.source)
        response = await handler(request)
        if not needs_decision(response.status, token):
            return response
        decision = after_answer(AIOHTTP, request, (request, response), token, self.source)
        answer: Any = None
        while (action := advance(decision, answer)) is not None:
            if isinstance(action, Renew):
                answer = await self.source.renew_async(action.stale)
                continue
            response.release()
            authorize(AIOHTTP, action.request, action.token, self.source)
            response = await handler(action.request)
            answer = (action.request, response)
        return response

    def __repr__(self) -> str:
        return f"AiohttpBearerMiddleware(scopes={self.source.scopes!r})"
