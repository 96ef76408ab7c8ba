"""``ClientCredentialsFlow``: a service obtains an access token for itself (RFC 6749 §4.4)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from .._clock import Clock, SystemClock
from .._io.drivers import Drivers
from .._protocol.actions import Operation
from .._protocol.client_auth import AuthMethod, check_client_id
from .._protocol.context import ProtocolContext
from .._protocol.discovery import ServerMetadata, discover
from .._protocol.dpop import DPoPState, dpop_key, generate_dpop_key
from .._protocol.params import (
    ScopesLike,
    normalize_extra_params,
    normalize_resources,
    normalize_scopes,
)
from .._protocol.protected_resource import ProtectedResource, discover_protected_resource
from .._protocol.redact import Redactor
from .._protocol.retry import RetryPolicy
from .._protocol.token_exchange import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE, exchange_fields
from .._protocol.token_fetch import AssertionSettings, request_token
from .._protocol.token_request import TokenRequestSpec
from .._protocol.urls import check_endpoint_url
from .._version import __version__
from ..assertions import AssertionLike, to_assertion_source
from ..cache.base import TokenCache
from ..cache.memory import MemoryCache
from ..errors import ConfigError
from ..secrets import SecretLike, SecretSource, to_secret_source
from ..token import Token
from ._token_manager import TokenManager, cache_key
from .client_tls import ClientCertLike, flow_ssl_context
from .environment import flow_arguments_from_env
from .events import TokenEventHook
from .httpx_auth import BearerAuth
from .private_key import PrivateKeyLike, load_private_key
from .token_source import TokenSource

if TYPE_CHECKING:
    from .aiohttp_auth import AiohttpBearerMiddleware
    from .requests_auth import RequestsBearerAuth

__all__ = ["DEFAULT_TIMEOUT", "ClientCredentialsFlow"]

logger = logging.getLogger("authkestra")

#: Connect within 5 s, and no single read, write or pool wait over 10 s.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
#: Token and metadata answers are a few KiB; anything past this is refused.
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024
USER_AGENT = f"authkestra/{__version__}"
#: The most tokens got by exchange a flow keeps (one per subject token and parameters).
MAX_EXCHANGED_TOKENS = 1024

_UNSET: Any = object()


def _method(
    auth_method: str | AuthMethod | None, private_key: object, client_assertion: object
) -> AuthMethod:
    """The method given, or the one the credentials given imply; refused when they clash."""
    if private_key is not None and client_assertion is not None:
        raise ConfigError(
            "give private_key (the client signs) or client_assertion (the platform signs), not both"
        )
    signs = private_key is not None or client_assertion is not None
    if auth_method is None:
        return AuthMethod.PRIVATE_KEY_JWT if signs else AuthMethod.CLIENT_SECRET_BASIC
    method = AuthMethod.parse(auth_method)
    if (method is AuthMethod.PRIVATE_KEY_JWT) != signs:
        raise ConfigError(
            "private_key or client_assertion goes with auth_method='private_key_jwt',"
            " and that method needs one of them"
        )
    return method


def _check_where(
    token_url: str | None,
    issuer: str | None,
    protected_resource: str | None,
    allow_insecure_http: bool,
) -> None:
    """Exactly one of token_url, issuer and protected_resource, each a URL fit for it."""
    if sum(where is not None for where in (token_url, issuer, protected_resource)) != 1:
        raise ConfigError("give exactly one of token_url, issuer and protected_resource")
    if protected_resource is not None:
        check_endpoint_url(
            protected_resource,
            what="protected_resource",
            allow_insecure_http=allow_insecure_http,
        )
    if token_url is not None:
        check_endpoint_url(token_url, what="token_url", allow_insecure_http=allow_insecure_http)
    if issuer is not None:
        check_endpoint_url(issuer, what="issuer", allow_insecure_http=allow_insecure_http)
        if "?" in issuer:
            raise ConfigError("issuer must not contain a query (RFC 8414 §2)")


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
        auth_method: ``"client_secret_basic"`` (the default with a secret),
            ``"client_secret_post"``, ``"client_secret_jwt"``, ``"private_key_jwt"``
            (the default with ``private_key`` or ``client_assertion``), ``"none"``,
            or one of the two TLS methods.
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
        cache: where tokens are shared beyond this flow: a
            :class:`~authkestra.cache.MemoryCache` of its own by default;
            :class:`~authkestra.cache.FileCache` for processes on one machine;
            :class:`~authkestra.cache.RedisCache` for a fleet.
        default_token_ttl: the lifetime assumed for a token whose response has
            no ``expires_in`` and which is not a JWT with an ``exp``.
        on_event: called with a :class:`~authkestra.flow.events.TokenEvent`
            for cache hits and misses, tokens acquired and refreshed, and
            failed fetches (feed your metrics from it).
        private_key: for ``auth_method="private_key_jwt"``: the client's private
            key (a PEM or JWK file path, its text, a JWK dict or a joserfc key;
            EC P-256/384/521, Ed25519 or RSA). Parsed once.
        client_assertion: for ``private_key_jwt`` without a key of the client's own:
            the assertion a platform issues for the workload (a Kubernetes
            projected service-account token, ``AZURE_FEDERATED_TOKEN_FILE``, a
            GitHub Actions OIDC token), sent as the RFC 7523 ``client_assertion``.
            A file path (read again for every token request) or a callable, sync
            or async (called for every token request); see
            :mod:`authkestra.assertions`. One that expires within 10 s is read
            again, never sent; a source with no fresher one raises
            :class:`~authkestra.ClientAssertionError`.
        key_id: the ``kid`` the server knows the key by (default: the JWK's).
        signing_alg: override the key's default algorithm (RSA: ``PS256``, ...).
        assertion_audience: the ``aud`` of client assertions: by default the
            issuer when the flow has one (draft-ietf-oauth-rfc7523bis), else the
            token endpoint; ``"token_endpoint"`` to always use the token
            endpoint URL, or any explicit URL.
        dpop: bind tokens to a key the flow holds (DPoP, RFC 9449): every token
            request carries a proof of possession, and :meth:`auth` sends
            ``Authorization: DPoP ...`` with a proof for each API request. A
            fresh EC P-256 key is made for the flow unless ``dpop_key`` is given.
            A server's ``use_dpop_nonce`` challenge is answered with one retry.
            :meth:`requests_auth` does the same for requests.
        dpop_key: the DPoP private key (as for ``private_key``: ES256 EC P-256
            or EdDSA Ed25519 keys only); giving it turns ``dpop`` on.
        client_cert: a TLS client certificate for the flow's own connections
            (mutual TLS, RFC 8705): a PEM file with certificate and key, or
            ``(cert_path, key_path)``, or ``(cert_path, key_path, key_password)``.
            With ``auth_method="tls_client_auth"`` or
            ``"self_signed_tls_client_auth"`` it authenticates the client; with
            any method, a server that binds tokens to certificates binds them to
            this one (send them with an httpx client presenting the same
            certificate). Loaded once, when the flow is made.
        ca_bundle: a PEM bundle of the CAs that sign the server's certificate
            (a private CA), for the flow's own connections.
        protected_resource: instead of ``token_url`` or ``issuer``: the URL of the API
            the tokens are for (RFC 9728). Its protected resource metadata names its
            authorization server (the first listed), whose metadata gives the token
            endpoint; read once, at the first token request. Metadata describing
            another resource than this URL is refused (§3.3). Tokens are asked for
            with ``resource`` = this URL unless ``resource`` is given.
            :meth:`for_resource` is the short way.
        clock: a time source (tests).

    Tokens are cached: a call returns the cached token until it nears expiry;
    one request is made for any number of concurrent callers; the token is
    renewed in the background at about 80% of its lifetime while callers keep
    getting the current one.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: SecretLike | None = None,
        token_url: str | None = None,
        *,
        issuer: str | None = None,
        scopes: ScopesLike = None,
        auth_method: str | AuthMethod | None = None,
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
        cache: TokenCache | None = None,
        default_token_ttl: float = 300.0,
        on_event: TokenEventHook | None = None,
        private_key: PrivateKeyLike | None = None,
        client_assertion: AssertionLike | None = None,
        key_id: str | None = None,
        signing_alg: str | None = None,
        assertion_audience: str | None = None,
        dpop: bool = False,
        dpop_key: PrivateKeyLike | None = None,
        client_cert: ClientCertLike | None = None,
        ca_bundle: str | Path | None = None,
        protected_resource: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        check_client_id(client_id)
        method = _method(auth_method, private_key, client_assertion)
        source = to_secret_source(client_secret)
        if method.needs_secret and source is None:
            raise ConfigError(f"client_secret is required with auth_method={method.value!r}")
        if not method.needs_secret and source is not None:
            raise ConfigError(
                f"auth_method={method.value!r} sends no secret: do not pass client_secret"
            )
        if client_assertion is not None:
            source = to_assertion_source(client_assertion)
        self._assertion_key = (
            load_private_key(private_key, key_id=key_id, alg=signing_alg)
            if private_key is not None
            else None
        )
        self._dpop = self._dpop_state(dpop, dpop_key)
        ssl_context = flow_ssl_context(
            method,
            client_cert,
            ca_bundle,
            injected=http_client is not None or async_http_client is not None,
        )
        _check_where(token_url, issuer, protected_resource, allow_insecure_http)
        if audience is not None and (not isinstance(audience, str) or not audience):
            raise ConfigError("audience must be a non-empty string")
        if not isinstance(max_response_bytes, int) or max_response_bytes < 1024:
            raise ConfigError("max_response_bytes must be an int of at least 1024")
        if not default_token_ttl > 0:
            raise ConfigError("default_token_ttl must be a positive number of seconds")
        if cache is not None and not isinstance(cache, TokenCache):
            raise ConfigError("cache must be an authkestra.cache.TokenCache")

        self.client_id = client_id
        self.issuer = issuer
        self._assertion_audience = assertion_audience
        self.auth_method = method
        self.scopes = normalize_scopes(scopes)
        self.audience = audience
        self.resources = normalize_resources(
            resource if resource is not None or protected_resource is None else protected_resource
        )
        self.protected_resource = protected_resource
        self._resource_metadata: ProtectedResource | None = None
        self.extra_params = normalize_extra_params(extra_params)
        self.form_encode_basic = form_encode_basic
        self.retry = retry or RetryPolicy()
        self.allow_insecure_http = allow_insecure_http
        self.max_response_bytes = max_response_bytes
        self.clock: Clock = clock or SystemClock()
        self._secret_source: SecretSource | None = source
        self._platform_assertion = client_assertion is not None
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
        drivers = Drivers(
            timeout=self._timeout,
            clock=self.clock.monotonic,
            http_client=http_client,
            async_http_client=async_http_client,
            secret_source=source,
            ssl_context=ssl_context,
        )
        self._sync, self._async = drivers.sync, drivers.async_
        self._where = token_url or issuer or protected_resource or ""
        self._specs: dict[Any, tuple[str, TokenRequestSpec]] = {}
        self._tokens = TokenManager(
            fetch=self._obtain,
            sync_driver=self._sync,
            async_driver=self._async,
            cache=cache if cache is not None else MemoryCache(),
            clock=self.clock,
            default_ttl=default_token_ttl,
            # Long enough for a fetch with all its retries, and a little more.
            wait_timeout=self.retry.total_timeout + 10.0,
            client_id=client_id,
            on_event=on_event,
        )
        # Tokens got by exchange, one per subject token: bounded, callers bring the keys.
        self._exchanged = TokenManager(
            fetch=self._obtain,
            sync_driver=self._sync,
            async_driver=self._async,
            cache=cache if cache is not None else MemoryCache(),
            clock=self.clock,
            default_ttl=default_token_ttl,
            wait_timeout=self.retry.total_timeout + 10.0,
            client_id=client_id,
            on_event=on_event,
            max_tokens=MAX_EXCHANGED_TOKENS,
        )

    @classmethod
    def for_resource(
        cls, url: str, client_id: str, client_secret: SecretLike | None = None, **kwargs: Any
    ) -> ClientCredentialsFlow:
        """A flow for the API at ``url``, which says where its tokens come from (RFC 9728).

        ::

            flow = ClientCredentialsFlow.for_resource("https://api.example.com/reports",
                                                      client_id, secret)

        Nothing is fetched until the first token request; see ``protected_resource``.
        """
        return cls(client_id, client_secret, protected_resource=url, **kwargs)

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

        ``AUTHKESTRA_CLIENT_ASSERTION_FILE``: the file a platform keeps the
        workload's assertion in (``private_key_jwt`` without a key of the
        client's own; read again for every token request).

        Keys and certificates, by path: ``AUTHKESTRA_PRIVATE_KEY_FILE`` (with
        ``AUTHKESTRA_KEY_ID`` and ``AUTHKESTRA_SIGNING_ALG``) for
        ``private_key_jwt``; ``AUTHKESTRA_CLIENT_CERT_FILE`` (and
        ``AUTHKESTRA_CLIENT_KEY_FILE`` when the key is a file of its own) and
        ``AUTHKESTRA_CA_BUNDLE`` for mutual TLS; ``AUTHKESTRA_DPOP=true`` (or
        ``AUTHKESTRA_DPOP_KEY_FILE``) for DPoP. A method that sends no secret
        (``none``, ``private_key_jwt``, the two TLS methods) needs none.
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

    @property
    def resource_metadata(self) -> ProtectedResource | None:
        """The protected resource's metadata once read (``protected_resource`` flows)."""
        return self._resource_metadata

    @property
    def cache(self) -> TokenCache:
        """The token cache backend."""
        return self._tokens.cache

    async def get_token(
        self,
        scopes: ScopesLike = None,
        *,
        audience: str | None = _UNSET,
        resource: str | Iterable[str] | None = _UNSET,
        force_refresh: bool = False,
    ) -> Token:
        """An access token for ``scopes`` (default: the flow's ``scopes``).

        Served from the cache while it is fresh; fetched (once, however many
        callers ask at the same time) when there is none. ``audience`` and
        ``resource`` override the flow's for this call. ``force_refresh``
        skips the cached token and fetches a new one. Raises a subclass of
        :class:`authkestra.AuthError` on failure.
        """
        key = self._resolve(scopes, audience, resource)[0]
        if not force_refresh:
            token = self._tokens.cached(key, in_async=True)
            if token is not None:
                return token
        return await self._tokens.get_async(key, force=force_refresh)

    def get_token_sync(
        self,
        scopes: ScopesLike = None,
        *,
        audience: str | None = _UNSET,
        resource: str | Iterable[str] | None = _UNSET,
        force_refresh: bool = False,
    ) -> Token:
        """Blocking twin of :meth:`get_token`, for scripts, cron jobs and sync web apps."""
        key = self._resolve(scopes, audience, resource)[0]
        if not force_refresh:
            token = self._tokens.cached(key, in_async=False)
            if token is not None:
                return token
        return self._tokens.get_sync(key, force=force_refresh)

    async def exchange(
        self,
        subject_token: str,
        *,
        scopes: ScopesLike = None,
        audience: str | None = _UNSET,
        resource: str | Iterable[str] | None = _UNSET,
        actor_token: str | None = None,
        subject_token_type: str = ACCESS_TOKEN_TYPE,
        actor_token_type: str = ACCESS_TOKEN_TYPE,
        requested_token_type: str | None = ACCESS_TOKEN_TYPE,
        force_refresh: bool = False,
    ) -> Token:
        """A token for calling on, in exchange for ``subject_token`` (RFC 8693 token exchange).

        A service called with ``subject_token`` trades it for a token of its own
        authorization server for the next API (``audience``/``resource``, default the
        flow's) with at most ``scopes`` (default: none asked, the server narrows),
        acting for the subject -- or, with ``actor_token``, showing who acts. The flow
        authenticates as itself, as for :meth:`get_token`, with the same retries and
        errors. The result is cached per subject token (and parameters), renewed ahead
        of expiry while the server allows it, and bounded in number.
        """
        key = self._exchange_key(
            subject_token, scopes=scopes, audience=audience, resource=resource,
            actor_token=actor_token, subject_token_type=subject_token_type,
            actor_token_type=actor_token_type, requested_token_type=requested_token_type,
        )  # fmt: skip
        if not force_refresh:
            token = self._exchanged.cached(key, in_async=True)
            if token is not None:
                return token
        return await self._exchanged.get_async(key, force=force_refresh)

    def exchange_sync(
        self,
        subject_token: str,
        *,
        scopes: ScopesLike = None,
        audience: str | None = _UNSET,
        resource: str | Iterable[str] | None = _UNSET,
        actor_token: str | None = None,
        subject_token_type: str = ACCESS_TOKEN_TYPE,
        actor_token_type: str = ACCESS_TOKEN_TYPE,
        requested_token_type: str | None = ACCESS_TOKEN_TYPE,
        force_refresh: bool = False,
    ) -> Token:
        """Blocking twin of :meth:`exchange`."""
        key = self._exchange_key(
            subject_token, scopes=scopes, audience=audience, resource=resource,
            actor_token=actor_token, subject_token_type=subject_token_type,
            actor_token_type=actor_token_type, requested_token_type=requested_token_type,
        )  # fmt: skip
        if not force_refresh:
            token = self._exchanged.cached(key, in_async=False)
            if token is not None:
                return token
        return self._exchanged.get_sync(key, force=force_refresh)

    def invalidate(
        self,
        scopes: ScopesLike = None,
        *,
        audience: str | None = _UNSET,
        resource: str | Iterable[str] | None = _UNSET,
        token: Token | None = None,
    ) -> bool:
        """Forget the cached token for these parameters, so the next call fetches a new one.

        With ``token``, only if the cached token is still that one (another
        caller may have replaced it already). A token forgotten here is never
        taken back from a shared cache backend. Returns True if a token was dropped.
        """
        key, _spec = self._resolve(scopes, audience, resource)
        return self._tokens.invalidate(key, token)

    def auth(
        self,
        scopes: ScopesLike = None,
        *,
        audience: str | None = _UNSET,
        resource: str | Iterable[str] | None = _UNSET,
    ) -> BearerAuth:
        """An ``httpx.Auth`` for ``httpx.Client`` and ``httpx.AsyncClient``.

        It sets ``Authorization: Bearer ...`` from this flow's cache and, when
        the API answers 401, drops that token and retries the request once with
        a fresh one (if the request body can be sent again). With a DPoP-bound
        token it sends ``Authorization: DPoP ...`` and a ``DPoP`` proof for the
        request's method and URL, and answers the API's ``use_dpop_nonce``
        challenge with one retry carrying the nonce.
        """
        return BearerAuth(self.token_source(scopes, audience=audience, resource=resource))

    def requests_auth(
        self,
        scopes: ScopesLike = None,
        *,
        audience: str | None = _UNSET,
        resource: str | Iterable[str] | None = _UNSET,
    ) -> RequestsBearerAuth:
        """The same as :meth:`auth`, for requests (``pip install 'authkestra[requests]'``).

        DPoP included: a new proof for every request sent, retries too, and one
        retry for the API's ``use_dpop_nonce`` challenge. A request whose body
        cannot be sent again (a file, a generator) is never retried.
        """
        from .requests_auth import RequestsBearerAuth

        return RequestsBearerAuth(self.token_source(scopes, audience=audience, resource=resource))

    def aiohttp_middleware(
        self,
        scopes: ScopesLike = None,
        *,
        audience: str | None = _UNSET,
        resource: str | Iterable[str] | None = _UNSET,
    ) -> AiohttpBearerMiddleware:
        """The same as :meth:`auth`, for ``aiohttp.ClientSession(middlewares=(...,))``
        (``pip install 'authkestra[aiohttp]'``, aiohttp 3.12 or later): the token from
        this flow's cache, renewed ahead of expiry, one retry with a fresh token on 401,
        DPoP proofs and nonces."""
        from .aiohttp_auth import AiohttpBearerMiddleware

        source = self.token_source(scopes, audience=audience, resource=resource)
        return AiohttpBearerMiddleware(source)

    def grpc_call_credentials(
        self,
        scopes: ScopesLike = None,
        *,
        audience: str | None = _UNSET,
        resource: str | Iterable[str] | None = _UNSET,
    ) -> Any:
        """``grpc.CallCredentials`` putting this flow's token on every call of a sync
        channel (``pip install 'authkestra[grpc]'``); see :mod:`authkestra.flow.grpc_auth`."""
        import grpc

        from .grpc_auth import TokenAuthPlugin

        source = self.token_source(scopes, audience=audience, resource=resource)
        return grpc.metadata_call_credentials(TokenAuthPlugin(source), name="authkestra")

    def grpc_aio_interceptor(
        self,
        scopes: ScopesLike = None,
        *,
        audience: str | None = _UNSET,
        resource: str | Iterable[str] | None = _UNSET,
    ) -> Any:
        """A ``grpc.aio`` client interceptor putting this flow's token on every unary call,
        with one retry on ``UNAUTHENTICATED``; see :mod:`authkestra.flow.grpc_auth`."""
        from .grpc_auth import TokenAioInterceptor

        return TokenAioInterceptor(self.token_source(scopes, audience=audience, resource=resource))

    def token_source(
        self,
        scopes: ScopesLike = None,
        *,
        audience: str | None = _UNSET,
        resource: str | Iterable[str] | None = _UNSET,
    ) -> TokenSource:
        """This flow's token for these parameters, as an HTTP integration uses it.

        :meth:`auth` and :meth:`requests_auth` are built on it; so can your own
        integration for another HTTP library (see :class:`~authkestra.flow.TokenSource`).
        """
        key, spec = self._resolve(scopes, audience, resource)
        return TokenSource(self._tokens, key, spec.scopes, clock=self.clock, dpop=self._dpop)

    def __repr__(self) -> str:
        if self.protected_resource is not None:
            where = f"protected_resource={self.protected_resource!r}"
        elif self.issuer is None:
            where = f"token_url={self._token_url!r}"
        else:
            where = f"issuer={self.issuer!r}"
        return (
            f"ClientCredentialsFlow(client_id={self.client_id!r}, {where}, "
            f"auth_method={self.auth_method.value!r}, "
            f"{'assertion' if self._platform_assertion else 'secret'}={self._secret_source!r})"
        )

    # -- internals ---------------------------------------------------------------------

    def _resolve(
        self, scopes: ScopesLike, audience: Any, resource: Any
    ) -> tuple[str, TokenRequestSpec]:
        """The cache key and request spec for these arguments, memoised (the hot path)."""
        try:
            memo = (
                tuple(scopes) if isinstance(scopes, list) else scopes,
                audience,
                tuple(resource) if isinstance(resource, list) else resource,
            )
            found = self._specs.get(memo)
        except TypeError:  # unhashable arguments: compute every time
            memo, found = None, None
        if found is not None:
            return found
        spec = self._spec(scopes, audience, resource)
        jkt = self._dpop.key.thumbprint if self._dpop is not None else None
        resolved = (cache_key(self._where, spec, dpop_jkt=jkt), spec)
        self._tokens.register(*resolved)
        if memo is not None and len(self._specs) < 256:
            self._specs[memo] = resolved
        return resolved

    def _exchange_key(
        self,
        subject_token: object,
        *,
        scopes: ScopesLike,
        audience: Any,
        resource: Any,
        actor_token: object,
        subject_token_type: object,
        actor_token_type: object,
        requested_token_type: object,
    ) -> str:
        """The cache key of an exchange, its spec registered; the tokens given, checked."""
        for name, value in (("subject_token", subject_token), ("actor_token", actor_token)):
            if value is None and name == "actor_token":
                continue
            if not isinstance(value, str) or not value or any(c.isspace() for c in value):
                raise ConfigError(f"{name} must be a token: a non-empty string without spaces")
        for name, value in (
            ("subject_token_type", subject_token_type),
            ("actor_token_type", actor_token_type),
            ("requested_token_type", requested_token_type),
        ):
            if not (value is None and name == "requested_token_type") and (
                not isinstance(value, str) or ":" not in value
            ):
                raise ConfigError(f"{name} must be a token type URI (RFC 8693 §3)")
        assert isinstance(subject_token, str) and isinstance(subject_token_type, str)
        assert isinstance(actor_token_type, str)
        assert requested_token_type is None or isinstance(requested_token_type, str)
        spec = dataclasses.replace(
            self._spec(scopes if scopes is not None else (), audience, resource),
            grant_type=TOKEN_EXCHANGE,
            grant_fields=exchange_fields(
                subject_token,
                subject_token_type,
                actor_token=actor_token if isinstance(actor_token, str) else None,
                actor_token_type=actor_token_type,
                requested_token_type=requested_token_type,
            ),
        )
        jkt = self._dpop.key.thumbprint if self._dpop is not None else None
        key = cache_key(self._where, spec, dpop_jkt=jkt)
        self._exchanged.register(key, spec)
        return key

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
            if self.issuer is None:
                assert self.protected_resource is not None
                found = yield from discover_protected_resource(self.protected_resource, self._ctx)
                self._resource_metadata = found
                self.issuer = found.authorization_servers[0]
                logger.debug(
                    "authkestra: %s names the authorization server %s",
                    self.protected_resource,
                    self.issuer,
                )
            self._metadata = yield from discover(self.issuer, self._ctx)
            token_url = self._token_url = self._metadata.endpoint
            logger.debug("authkestra: discovered token endpoint %s", token_url)
        rotates = bool(self._secret_source and self._secret_source.rotating)
        assertions = AssertionSettings(
            self._assertion_key,
            self._assertion_audience_for(token_url),
            from_platform=self._platform_assertion,
        )
        return (
            yield from request_token(
                spec,
                token_url,
                self._ctx,
                secret_rotates=rotates,
                assertions=assertions,
                dpop=self._dpop,
            )
        )

    @staticmethod
    def _dpop_state(enabled: bool, key: PrivateKeyLike | None) -> DPoPState | None:
        if not isinstance(enabled, bool):
            raise ConfigError("dpop must be True or False")
        if key is not None:
            return DPoPState(dpop_key(load_private_key(key)))
        return DPoPState(generate_dpop_key()) if enabled else None

    @property
    def dpop_thumbprint(self) -> str | None:
        """The RFC 7638 thumbprint (``jkt``) of the flow's DPoP key, or None without DPoP."""
        return self._dpop.key.thumbprint if self._dpop is not None else None

    def _assertion_audience_for(self, token_url: str) -> str:
        if self._assertion_audience is None:
            return self.issuer or token_url
        if self._assertion_audience == "token_endpoint":
            return token_url
        return self._assertion_audience
