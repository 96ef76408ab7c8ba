"""gRPC clients from a flow's token: call credentials (sync channels) and an ``grpc.aio``
interceptor, both with the flow's cache and refresh-ahead.

::

    credentials = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(), flow.grpc_call_credentials(["orders:read"])
    )
    channel = grpc.secure_channel("orders.internal:443", credentials)

    channel = grpc.aio.secure_channel(
        "orders.internal:443", grpc.ssl_channel_credentials(),
        interceptors=[flow.grpc_aio_interceptor(["orders:read"])],
    )

Every call carries ``authorization: Bearer <token>`` metadata. gRPC sends call
credentials over secure channels only (TLS, or ``grpc.local_channel_credentials()`` on
one machine): a token never crosses the network in clear. The aio interceptor retries a
unary call once with a fresh token when the server answers ``UNAUTHENTICATED``.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .token_source import TokenSource

try:
    import grpc
    import grpc.aio
except ImportError:  # pragma: no cover - depends on the install
    raise ConfigError("gRPC integration needs grpcio: pip install 'authkestra[grpc]'") from None

__all__ = ["TokenAioInterceptor", "TokenAuthPlugin"]


class TokenAuthPlugin(grpc.AuthMetadataPlugin):  # type: ignore[misc]
    """The plugin behind :meth:`ClientCredentialsFlow.grpc_call_credentials`."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def __call__(
        self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback
    ) -> None:
        # Called in a gRPC thread: the blocking fetch (only when no fresh token is held)
        # waits there, not in any event loop.
        try:
            token = self.source.get_sync()
        except Exception as exc:  # handed to gRPC, which fails the call with it
            callback((), exc)
            return
        callback((("authorization", token.authorization),), None)

    def __repr__(self) -> str:
        return f"TokenAuthPlugin(scopes={self.source.scopes!r})"


class TokenAioInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """The interceptor :meth:`ClientCredentialsFlow.grpc_aio_interceptor` makes."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        token = await self.source.get_async()
        call = await continuation(self._with_token(client_call_details, token), request)
        if await call.code() != grpc.StatusCode.UNAUTHENTICATED:
            return call
        fresh = await self.source.renew_async(token)
        if fresh.access_token == token.access_token:
            return call
        return await continuation(self._with_token(client_call_details, fresh), request)

    @staticmethod
    def _with_token(details: Any, token: Any) -> Any:
        metadata = [(k, v) for k, v in (details.metadata or ()) if k != "authorization"]
        metadata.append(("authorization", token.authorization))
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout,
            metadata=grpc.aio.Metadata(*metadata),
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )

    def __repr__(self) -> str:
        return f"TokenAioInterceptor(scopes={self.source.scopes!r})"
