"""``httpx.Auth`` from a flow's token: one retry with a fresh token on 401, DPoP included.

The decisions -- what to do after a 401, a DPoP nonce challenge, a redirect --
are :mod:`authkestra._protocol.api_auth`'s; this module only reads and writes
httpx's requests for it, and drives it in httpx's sync and async auth flows.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

import httpx

from .._protocol.api_auth import Renew, advance, after_answer, authorize, needs_decision
from ..token import Token
from ._header_write import set_credentials
from .token_source import TokenSource

__all__ = ["BearerAuth"]


class _Httpx:
    """What the decision needs of httpx (:class:`~authkestra._protocol.api_auth.HttpLibrary`)."""

    @staticmethod
    def method(request: httpx.Request) -> str:
        return request.method

    @staticmethod
    def url(request: httpx.Request) -> str:
        return str(request.url)

    @staticmethod
    def replayable(request: httpx.Request) -> bool:
        # bytes, str, form and JSON bodies are kept in memory; a streamed body is gone once sent.
        return isinstance(request.stream, httpx.ByteStream)

    @staticmethod
    def has_authorization(request: httpx.Request) -> bool:
        return "authorization" in request.headers

    @staticmethod
    def set_credentials(request: httpx.Request, token: Token, proof: str | None) -> None:
        set_credentials(request.headers, token, proof)

    @staticmethod
    def drop_proof(request: httpx.Request) -> None:
        request.headers.pop("DPoP", None)

    @staticmethod
    def status(response: httpx.Response) -> int:
        return response.status_code

    @staticmethod
    def header(response: httpx.Response, name: str) -> str | None:
        value: str | None = response.headers.get(name)
        return value

    @staticmethod
    def request_of(response: httpx.Response) -> httpx.Request:
        return response.request

    @staticmethod
    def is_redirect(response: httpx.Response) -> bool:
        return False  # httpx follows redirects inside one step of the auth flow, or not at all


HTTPX = _Httpx()


class BearerAuth(httpx.Auth):
    """Made by :meth:`ClientCredentialsFlow.auth`; works with sync and async httpx clients."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source
        #: The flow has no DPoP key: authorizing a request is writing its header, no more (the
        #: whole of what authorize() would decide, without its calls, on every request).
        self._bearer_only = not source.can_prove

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        source = self.source
        token = source.current() or source.get_sync()
        if self._bearer_only:
            set_credentials(request.headers, token)
        else:
            authorize(HTTPX, request, token, source)
        response = yield request
        if needs_decision(response.status_code, token):
            retries = self._retries(request, response, token)
            answer: Any = None
            while (step := advance(retries, answer)) is not None:
                answer = source.renew_sync(step.stale) if isinstance(step, Renew) else (yield step)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        source = self.source
        token = source.current() or await source.get_async()
        if self._bearer_only:
            set_credentials(request.headers, token)
        else:
            authorize(HTTPX, request, token, source)
        response = yield request
        if needs_decision(response.status_code, token):
            retries = self._retries(request, response, token)
            answer: Any = None
            while (step := advance(retries, answer)) is not None:
                if isinstance(step, Renew):
                    answer = await source.renew_async(step.stale)
                else:
                    answer = yield step

    def _retries(
        self, request: httpx.Request, response: httpx.Response, token: Token
    ) -> Generator[httpx.Request | Renew, Any, None]:
        """The decision after an answer, with each request to send again authorized here:
        yields those requests (answer: the response) and :class:`Renew` (answer: a token)."""
        decision = after_answer(HTTPX, request, response, token, self.source)
        answer: Any = None
        while (action := advance(decision, answer)) is not None:
            if isinstance(action, Renew):
                answer = yield action
            else:
                authorize(HTTPX, action.request, action.token, self.source)
                answer = yield action.request

    def __repr__(self) -> str:
        return f"BearerAuth(scopes={self.source.scopes!r})"
