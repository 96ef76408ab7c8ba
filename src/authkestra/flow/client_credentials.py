"""``ClientCredentialsFlow``: a service obtains an access token for itself (RFC 6749 §4.4)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from .. import __version__
from .._clock import Clock, SystemClock
from .._protocol.actions import Operation
from .._protocol.client_auth import AuthMethod
from .._protocol.context import ProtocolContext
from .._protocol.discovery import ServerMetadata, discover
from .._protocol.params import (
    ScopesLike,
    normalize_extra_params,
    normalize_resources,
    normalize_scopes,
)
from .._protocol.redact import Redactor
from .._protocol.retry import RetryPolicy
from .._protocol.token_exchange import request_token
from .._protocol.token_request import TokenRequestSpec
from .._protocol.urls import check_endpoint_url
from ..errors import ConfigError
from ..secrets import SecretLike, SecretSource, to_secret_source
from ..token import Token
from ._drivers import AsyncDriver, SyncDriver
from ._transport import AsyncTransport, SyncTransport
from .environment import flow_arguments_from_env

__all__ = ["DEFAULT_TIMEOUT", "ClientCredentialsFlow"]

logger = logging.getLogger("authkestra")

#: Connect within 5 s, and no single read, write or pool wait over 10 s.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
#: Token and metadata answers are a few KiB; anything past this is refused.
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024
USER_AGENT = f"authkestra/{__version__}"

_UNSET: Any = object()


class ClientCredentialsFlow:
    """Obtains access tokens for a client, as itself, with the Client Credentials grant.

    ::

        flow = ClientCredentialsFlow(client_id, client_secret, token_url)
        token = await flow.get_token(["read", "write"])   # or flow.get_token_sync(...)
        headers = {"Authorization": f"Bearer {token.access_token}"}

    Args:
        client_id: the client's identifier.
        client_secret: a ``str``, an :class:`authkestra.Secret`, a
            :class:`~authkestra.secrets.SecretSource` (``EnvSecret``,
            ``FileSecret``), or a callable, sync or async, returning the current
            secret. Re-read and retried once on ``invalid_client`` when it can change.
            Not used with ``auth_method="none"``.
        token_url: the token endpoint. Give this or ``issuer``.
        issuer: the authorization server's issuer; the token endpoint is
            discovered from its metadata (RFC 8414, then OpenID Connect
            Discovery) once and kept. The metadata's ``issuer`` must match exactly.
        scopes: default scopes for :meth:`get_token` when it is called without any.
        auth_method: ``"client_secret_basic"`` (default), ``"client_secret_post"`` or ``"none"``.
        audience: an ``audience`` parameter, for servers that use one (Auth0, ...).
        resource: one or more RFC 8707 resource indicators.
        extra_params: further form parameters for every request.
        form_encode_basic: form-encode id and secret before Basic encoding
            (RFC 6749 §2.3.1). Turn off only for servers that do not decode it.
        timeout: seconds, or an ``httpx.Timeout``, for each network operation.
        retry: a :class:`RetryPolicy`; ``RetryPolicy(max_attempts=1)`` disables retries.
        allow_insecure_http: allow ``http://`` to a host other than loopback.
        http_client / async_http_client: your own httpx clients (proxies, CA
            bundles, client certificates). They must not follow redirects
            automatically for the token request to be safe; the flow asks each
            request not to. You close them; the flow does not.
        max_response_bytes: the most the flow reads of any answer.
        clock: a time source (tests).
    """

    def __init__(
        self,
        client_id: str,
        client_secret: SecretLike | None = None,
        token_url: str | None = None,
        *,
        issuer: str | None = None,
        scopes: ScopesLike = None,
        auth_method: str | AuthMethod = AuthMethod.CLIENT_SECRET_BASIC,
        audience: str | None = None,
        resource: str | Iterable[str] | None = None,
        extra_params: Mapping[str, str] | None = None,
        form_encode_basic: bool = True,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        allow_insecure_http: bool = False,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(client_id, str) or not client_id.strip():
            raise ConfigError("client_id must be a non-empty string")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in client_id):
            raise ConfigError("client_id must not contain control characters")
        method = AuthMethod.parse(auth_method)
        source = to_secret_source(client_secret)
        if method.needs_secret and source is None:
            raise ConfigError(f"client_secret is required with auth_method={method.value!r}")
        if not method.needs_secret and source is not None:
            raise ConfigError("auth_method='none' sends no secret: do not pass client_secret")
        if (token_url is None) == (issuer is None):
            raise ConfigError("give exactly one of token_url and issuer")
        if token_url is not None:
            check_endpoint_url(token_url, what="token_url", allow_insecure_http=allow_insecure_http)
        if issuer is not None:
            check_endpoint_url(issuer, what="issuer", allow_insecure_http=allow_insecure_http)
            if "?" in issuer:
                raise ConfigError("issuer must not contain a query (RFC 8414 §2)")
        if audience is not None and (not isinstance(audience, str) or not audience):
            raise ConfigError("audience must be a non-empty string")
        if not isinstance(max_response_bytes, int) or max_response_bytes < 1024:
            raise ConfigError("max_response_bytes must be an int of at least 1024")

        self.client_id = client_id
        self.issuer = issuer
        self.auth_method = method
        self.scopes = normalize_scopes(scopes)
        self.audience = audience
        self.resources = normalize_resources(resource)
        self.extra_params = normalize_extra_params(extra_params)
        self.form_encode_basic = form_encode_basic
        self.retry = retry or RetryPolicy()
        self.allow_insecure_http = allow_insecure_http
        self.max_response_bytes = max_response_bytes
        self.clock: Clock = clock or SystemClock()
        self._secret_source: SecretSource | None = source
        self._token_url = token_url
        self._metadata: ServerMetadata | None = None
        self._ctx = ProtocolContext(
            policy=self.retry,
            clock=self.clock.monotonic,
            wall_clock=self.clock.now,
            max_body=max_response_bytes,
            user_agent=USER_AGENT,
            redact=Redactor(),
            allow_insecure_http=allow_insecure_http,
        )
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._ssl_context: ssl.SSLContext | None = None
        self._sync = SyncDriver(
            SyncTransport(self._timeout, self.clock.monotonic),
            self._new_client,
            http_client,
            source,
        )
        self._async = AsyncDriver(
            AsyncTransport(self._timeout, self.clock.monotonic),
            self._new_async_client,
            async_http_client,
            source,
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ClientCredentialsFlow:
        """Build a flow from ``AUTHKESTRA_*`` environment variables.

        ``AUTHKESTRA_CLIENT_ID``, ``AUTHKESTRA_CLIENT_SECRET`` (or
        ``AUTHKESTRA_CLIENT_SECRET_FILE``), ``AUTHKESTRA_TOKEN_URL`` (or
        ``AUTHKESTRA_ISSUER``), and optionally ``AUTHKESTRA_SCOPES`` (space
        separated), ``AUTHKESTRA_AUTH_METHOD``, ``AUTHKESTRA_AUDIENCE``,
        ``AUTHKESTRA_RESOURCE`` (space separated). A missing one is a
        :class:`ConfigError` naming the variable. Keyword arguments override
        or add to what the environment gives.
        """
        kwargs = flow_arguments_from_env(environ, overrides)
        return cls(**kwargs)

    # -- public API ------------------------------------------------------------------

    @property
    def token_url(self) -> str | None:
        """The token endpoint: given, or discovered (None until the first request)."""
        return self._token_url

    @property
    def metadata(self) -> ServerMetadata | None:
        """The issuer's metadata once discovered, else None."""
        return self._metadata

    async def get_token(
        self,
        scopes: ScopesLike = None,
        *,
        audience: str | None = _UNSET,
        resource: str | Iterable[str] | None = _UNSET,
    ) -> Token:
        """Obtain an access token for ``scopes`` (default: the flow's ``scopes``).

        ``audience`` and ``resource`` override the flow's for this call.
        Raises a subclass of :class:`authkestra.AuthError` on failure.
        """
        spec = self._spec(scopes, audience, resource)
        return await self._async.run(self._obtain(spec))

    def get_token_sync(
        self,
        scopes: ScopesLike = None,
        *,
        audience: str | None = _UNSET,
        resource: str | Iterable[str] | None = _UNSET,
    ) -> Token:
        """Blocking twin of :meth:`get_token`, for scripts, cron jobs and sync web apps."""
        spec = self._spec(scopes, audience, resource)
        return self._sync.run(self._obtain(spec))

    def __repr__(self) -> str:
        where = (
            f"token_url={self._token_url!r}" if self.issuer is None else f"issuer={self.issuer!r}"
        )
        return (
            f"ClientCredentialsFlow(client_id={self.client_id!r}, {where}, "
            f"auth_method={self.auth_method.value!r}, secret={self._secret_source!r})"
        )

    # -- internals ---------------------------------------------------------------------

    def _spec(self, scopes: ScopesLike, audience: Any, resource: Any) -> TokenRequestSpec:
        chosen = normalize_scopes(scopes) if scopes is not None else self.scopes
        if (
            audience is not _UNSET
            and audience is not None
            and (not isinstance(audience, str) or not audience)
        ):
            raise ConfigError("audience must be a non-empty string")
        return TokenRequestSpec(
            client_id=self.client_id,
            auth_method=self.auth_method,
            scopes=chosen,
            audience=self.audience if audience is _UNSET else audience,
            resources=self.resources if resource is _UNSET else normalize_resources(resource),
            extra_params=self.extra_params,
            form_encode_basic=self.form_encode_basic,
        )

    def _obtain(self, spec: TokenRequestSpec) -> Operation[Token]:
        token_url = self._token_url
        if token_url is None:
            assert self.issuer is not None
            self._metadata = yield from discover(self.issuer, self._ctx)
            token_url = self._token_url = self._metadata.token_endpoint
            logger.debug("authkestra: discovered token endpoint %s", token_url)
        rotates = bool(self._secret_source and self._secret_source.rotating)
        return (yield from request_token(spec, token_url, self._ctx, secret_rotates=rotates))

    def _verify(self) -> ssl.SSLContext:
        # Loading the CA bundle costs milliseconds: do it once per flow.
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    def _new_client(self) -> httpx.Client:
        return httpx.Client(verify=self._verify(), timeout=self._timeout, follow_redirects=False)

    def _new_async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            verify=self._verify(), timeout=self._timeout, follow_redirects=False
        )
