"""``requests`` auth from a flow: bearer header, and one retry with a fresh token on 401.

A DPoP-bound token (RFC 9449) goes as ``Authorization: DPoP ...`` with a
``DPoP`` proof made for each request sent, retries included; the API's
``use_dpop_nonce`` challenge is answered with one retry carrying its nonce.
A request is sent again only when its body can be: bytes, text or none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._protocol.dpop import DPoPState, is_nonce_challenge
from .._protocol.params import ScopesLike
from ..errors import ConfigError
from ..token import Token

try:
    import requests
    from requests.auth import AuthBase
    from requests.cookies import extract_cookies_to_jar
except ImportError:  # pragma: no cover - depends on the install
    raise ConfigError(
        "flow.requests_auth() needs requests: pip install 'authkestra[requests]'"
    ) from None

if TYPE_CHECKING:
    from .client_credentials import ClientCredentialsFlow

__all__ = ["RequestsBearerAuth"]


def _replayable(request: requests.PreparedRequest) -> bool:
    # A file or generator body was consumed by the first attempt: it cannot be sent again.
    return isinstance(request.body, (bytes, str, type(None)))


def _asks_for_nonce(response: requests.Response) -> bool:
    return is_nonce_challenge(response.status_code, response.headers.get("WWW-Authenticate"))


class RequestsBearerAuth(AuthBase):
    """Made by :meth:`ClientCredentialsFlow.requests_auth`."""

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
        self.options = {"audience": audience, "resource": resource}
        self._dpop: DPoPState | None = flow._dpop

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.flow.get_token_sync(self.scopes, **self.options)
        self._authorize(request, token)
        first = request

        def on_response(response: requests.Response, **kwargs: Any) -> requests.Response:
            return self._on_response(response, token, first, kwargs)

        request.register_hook("response", on_response)
        return request

    def _proves(self, token: Token) -> bool:
        return self._dpop is not None and token.token_type == "DPoP"

    def _authorize(self, request: requests.PreparedRequest, token: Token) -> None:
        """Set the Authorization header, and a new DPoP proof for a DPoP-bound token."""
        request.headers["Authorization"] = token.authorization
        if self._dpop is not None and token.token_type == "DPoP":
            request.headers["DPoP"] = self._dpop.proof(
                request.method or "GET",
                request.url or "",
                now=int(self.flow.clock.now().timestamp()),
                access_token=token.access_token,
            )
        else:
            request.headers.pop("DPoP", None)

    def _observe(self, response: requests.Response) -> bool:
        """Remember the API's ``DPoP-Nonce``; True when it sent one."""
        assert self._dpop is not None
        return self._dpop.observe(response.request.url or "", response.headers)

    def _on_response(
        self,
        response: requests.Response,
        token: Token,
        first: requests.PreparedRequest,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        request = response.request
        proves = self._proves(token)
        if response.is_redirect:
            if proves:
                # requests builds the next hop from these requests, and does not call the auth
                # again: a proof names one method and URL and is good once, so it must not go
                # along. The next hop is answered 401 for lack of one, and proved below.
                request.headers.pop("DPoP", None)
                first.headers.pop("DPoP", None)
            return response
        fresh_nonce = proves and self._observe(response)
        # requests drops Authorization on a redirect to another host: never put it back.
        if (
            response.status_code != 401
            or "Authorization" not in request.headers
            or not _replayable(request)
        ):
            return response
        unproved = "DPoP" not in request.headers  # its proof was dropped at a redirect
        if proves and (unproved or (fresh_nonce and _asks_for_nonce(response))):
            response = self._resend(response, token, kwargs)
            self._observe(response)
            if response.status_code != 401:
                return response
        if _asks_for_nonce(response):
            return response  # answered once already, or there is no nonce to answer with
        self.flow.invalidate(self.scopes, token=token, **self.options)
        fresh = self.flow.get_token_sync(self.scopes, **self.options)
        if fresh.access_token == token.access_token:
            return response
        return self._resend(response, fresh, kwargs)

    def _resend(
        self, response: requests.Response, token: Token, kwargs: dict[str, Any]
    ) -> requests.Response:
        """Send ``response``'s request again with ``token`` (and a new proof), as requests'
        digest auth does: on the same connection, cookies the answer set included."""
        response.content  # noqa: B018 - read the body so the connection can be reused
        response.close()
        retry = response.request.copy()
        if retry._cookies is not None:
            extract_cookies_to_jar(retry._cookies, response.request, response.raw)
            retry.prepare_cookies(retry._cookies)
        # Sent straight through the adapter, so no hook runs for it: the retries stay the
        # ones counted in _on_response (one for a nonce or a proof, one for a fresh token).
        retry.hooks = {"response": []}
        self._authorize(retry, token)
        new_response: requests.Response = response.connection.send(retry, **kwargs)
        new_response.history = [*response.history, response]
        new_response.request = retry
        return new_response

    def __repr__(self) -> str:
        return f"RequestsBearerAuth(client_id={self.flow.client_id!r}, scopes={self.scopes!r})"
