"""``requests`` auth from a flow: bearer header, and one retry with a fresh token on 401."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._protocol.params import ScopesLike
from ..errors import ConfigError

try:
    import requests
    from requests.auth import AuthBase
except ImportError:  # pragma: no cover - depends on the install
    raise ConfigError(
        "flow.requests_auth() needs requests: pip install 'authkestra[requests]'"
    ) from None

if TYPE_CHECKING:
    from .client_credentials import ClientCredentialsFlow

__all__ = ["RequestsBearerAuth"]

_RETRIED = "_authkestra_retried"


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

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.flow.get_token_sync(self.scopes, **self.options)
        request.headers["Authorization"] = token.authorization
        if not getattr(request, _RETRIED, False):
            sent_with = token

            def on_response(response: requests.Response, **kwargs: Any) -> requests.Response:
                return self._retry_on_401(response, sent_with, **kwargs)

            request.register_hook("response", on_response)
        return request

    def _retry_on_401(
        self, response: requests.Response, token: Any, **kwargs: Any
    ) -> requests.Response:
        request = response.request
        # A file or generator body was consumed by the first attempt: it cannot be sent again.
        if response.status_code != 401 or not isinstance(request.body, (bytes, str, type(None))):
            return response
        self.flow.invalidate(self.scopes, token=token, **self.options)
        fresh = self.flow.get_token_sync(self.scopes, **self.options)
        if fresh.access_token == token.access_token:
            return response
        response.content  # noqa: B018 - read the body so the connection can be reused
        response.close()
        retry = request.copy()
        setattr(retry, _RETRIED, True)
        retry.headers["Authorization"] = fresh.authorization
        retry.hooks = {"response": []}
        new_response: requests.Response = response.connection.send(retry, **kwargs)
        new_response.history.append(response)
        new_response.request = retry
        return new_response

    def __repr__(self) -> str:
        return f"RequestsBearerAuth(client_id={self.flow.client_id!r}, scopes={self.scopes!r})"
