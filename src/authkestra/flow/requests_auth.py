"""``requests`` auth from a flow's token: one retry with a fresh token on 401, DPoP included.

The decisions are :mod:`authkestra._protocol.api_auth`'s, as for httpx; this
module reads and writes requests' objects for it. requests calls the auth once
per call and then a response hook for every answer, redirects included: the
hook drives the decision, and sends what it asks for again on the same
connection (as requests' own digest auth does).
"""

from __future__ import annotations

from typing import Any

from .._protocol.api_auth import Renew, advance, after_answer, authorize, needs_decision
from ..errors import ConfigError
from ..token import Token
from .token_source import TokenSource

try:
    import requests
    from requests.auth import AuthBase
    from requests.cookies import extract_cookies_to_jar
except ImportError:  # pragma: no cover - depends on the install
    raise ConfigError(
        "flow.requests_auth() needs requests: pip install 'authkestra[requests]'"
    ) from None

__all__ = ["RequestsBearerAuth"]


class _Requests:
    """What the decision needs of requests (:class:`~authkestra._protocol.api_auth.HttpLibrary`)."""

    @staticmethod
    def method(request: requests.PreparedRequest) -> str:
        return request.method or "GET"

    @staticmethod
    def url(request: requests.PreparedRequest) -> str:
        return request.url or ""

    @staticmethod
    def replayable(request: requests.PreparedRequest) -> bool:
        # A file or generator body was consumed by the first attempt: it cannot be sent again.
        return isinstance(request.body, (bytes, str, type(None)))

    @staticmethod
    def has_authorization(request: requests.PreparedRequest) -> bool:
        return "Authorization" in request.headers

    @staticmethod
    def set_credentials(request: requests.PreparedRequest, token: Token, proof: str | None) -> None:
        request.headers["Authorization"] = token.authorization
        if proof is not None:
            request.headers["DPoP"] = proof
        else:
            request.headers.pop("DPoP", None)

    @staticmethod
    def drop_proof(request: requests.PreparedRequest) -> None:
        request.headers.pop("DPoP", None)

    @staticmethod
    def status(response: requests.Response) -> int:
        return response.status_code

    @staticmethod
    def header(response: requests.Response, name: str) -> str | None:
        value: str | None = response.headers.get(name)
        return value

    @staticmethod
    def request_of(response: requests.Response) -> requests.PreparedRequest:
        return response.request

    @staticmethod
    def is_redirect(response: requests.Response) -> bool:
        return bool(response.is_redirect)


REQUESTS = _Requests()


class RequestsBearerAuth(AuthBase):
    """Made by :meth:`ClientCredentialsFlow.requests_auth`."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.source.get_sync()
        authorize(REQUESTS, request, token, self.source)
        sent = request

        def on_response(response: requests.Response, **kwargs: Any) -> requests.Response:
            if not needs_decision(response.status_code, token):
                return response
            return self._decide(sent, response, token, kwargs)

        request.register_hook("response", on_response)
        return request

    def _decide(
        self,
        sent: requests.PreparedRequest,
        response: requests.Response,
        token: Token,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        decision = after_answer(REQUESTS, sent, response, token, self.source)
        answer: Any = None
        while (action := advance(decision, answer)) is not None:
            if isinstance(action, Renew):
                answer = self.source.renew_sync(action.stale)
            else:
                answer = response = self._resend(response, action.request, action.token, kwargs)
        return response

    def _resend(
        self,
        response: requests.Response,
        request: requests.PreparedRequest,
        token: Token,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        """Send ``request`` again with ``token`` (and a new proof), on the connection that
        answered ``response``, with the cookies that answer set."""
        response.content  # noqa: B018 - read the body so the connection can be reused
        response.close()
        retry = request.copy()
        if retry._cookies is not None:
            extract_cookies_to_jar(retry._cookies, response.request, response.raw)
            retry.prepare_cookies(retry._cookies)
        # Sent straight through the adapter, so no hook runs for it: the decision that asked
        # for it gets the answer, and the retries stay the ones it counts.
        retry.hooks = {"response": []}
        authorize(REQUESTS, retry, token, self.source)
        new_response: requests.Response = response.connection.send(retry, **kwargs)
        new_response.history = [*response.history, response]
        new_response.request = retry
        return new_response

    def __repr__(self) -> str:
        return f"RequestsBearerAuth(scopes={self.source.scopes!r})"
