"""gRPC servers: interceptors that verify the caller's token and check per-method scopes.

::

    interceptor = TokenInterceptor(verifier, scopes={"/orders.Orders/Get": ["orders:read"]})
    server = grpc.server(ThreadPoolExecutor(), interceptors=[interceptor])
    # grpc.aio: grpc.aio.server(interceptors=[AioTokenInterceptor(verifier, scopes=...)])

    def Get(self, request, context):
        token = access_token()              # the verified AccessToken of this call

Every call must carry ``authorization: Bearer <token>`` metadata; a call without one,
or with a token that does not verify, is aborted ``UNAUTHENTICATED``, one without the
method's scopes ``PERMISSION_DENIED`` -- the details say why (``invalid_token: ...``,
``insufficient_scope: ...``), never the token. ``scopes`` maps full method names to the
scopes they need; methods not in it need ``default_scopes`` (none by default: any valid
token). Tokens bound to a DPoP key or a certificate are refused: gRPC calls carry no
proof of possession here. When the issuer cannot be reached the call is aborted
``UNAVAILABLE``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import AuthError, ConfigError, InsufficientScope, InvalidToken
from ._integration import TokenVerifier, check_scopes, scope_names
from .access_token import AccessToken
from .rfc6750 import bearer_token

try:
    import grpc
    import grpc.aio
except ImportError:  # pragma: no cover - depends on the install
    raise ConfigError("gRPC integration needs grpcio: pip install 'authkestra[grpc]'") from None

__all__ = ["AioTokenInterceptor", "TokenInterceptor", "access_token"]

_current: contextvars.ContextVar[AccessToken | None] = contextvars.ContextVar(
    "authkestra_grpc_access_token", default=None
)


def access_token() -> AccessToken:
    """The verified token of the call being handled (in a servicer behind an interceptor)."""
    found = _current.get()
    if found is None:
        raise ConfigError("no verified token: add TokenInterceptor to the server")
    return found


class _Rules:
    """Which scopes each method needs, and what a refusal says."""

    def __init__(
        self, scopes: Mapping[str, Iterable[str]] | None, default_scopes: Iterable[str]
    ) -> None:
        self.scopes = {
            method: scope_names(list(needed), f"scopes[{method!r}]")
            for method, needed in (scopes or {}).items()
        }
        self.default = scope_names(list(default_scopes), "default_scopes")

    def needed(self, method: str) -> tuple[str, ...]:
        return self.scopes.get(method, self.default)

    @staticmethod
    def token_of(metadata: Iterable[tuple[str, Any]]) -> str:
        values = [v for k, v in metadata if k.lower() == "authorization"]
        if len(values) != 1 or not isinstance(values[0], str):
            raise InvalidToken("the call needs one authorization: Bearer <token> metadata")
        token = bearer_token(values[0])
        if token is None:
            raise InvalidToken("the call needs one authorization: Bearer <token> metadata")
        return token

    @staticmethod
    def check(access: AccessToken, needed: tuple[str, ...]) -> None:
        cnf = access.claims.get("cnf")
        if cnf is not None:
            raise InvalidToken("the token is bound to a key or certificate: not usable over gRPC")
        check_scopes(access, needed)

    @staticmethod
    def status(error: AuthError) -> tuple[Any, str]:
        if isinstance(error, InsufficientScope):
            return grpc.StatusCode.PERMISSION_DENIED, f"insufficient_scope: {error}"
        if isinstance(error, InvalidToken):
            return grpc.StatusCode.UNAUTHENTICATED, f"invalid_token: {error}"
        return grpc.StatusCode.UNAVAILABLE, "temporarily_unavailable: cannot verify tokens now"


def _wrap(handler: Any, guard: Callable[[Any, bool], Any]) -> Any:
    """``handler`` (an RpcMethodHandler) with its behaviour replaced by
    ``guard(behaviour, streams_responses)``, whatever its kind."""
    for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        behaviour = getattr(handler, kind)
        if behaviour is not None:
            return handler._replace(**{kind: guard(behaviour, kind.endswith("_stream"))})
    return handler


class TokenInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """The interceptor of a sync ``grpc.server``; see the module."""

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        scopes: Mapping[str, Iterable[str]] | None = None,
        default_scopes: Iterable[str] = (),
    ) -> None:
        if not callable(getattr(verifier, "verify_sync", None)):
            raise ConfigError("TokenInterceptor: give a verifier (JWTVerifier, ...)")
        self.verifier: Any = verifier
        self.rules = _Rules(scopes, default_scopes)

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        needed = self.rules.needed(handler_call_details.method)
        metadata = tuple(handler_call_details.invocation_metadata or ())

        def admit(context: Any) -> AccessToken:
            try:
                access: AccessToken = self.verifier.verify_sync(self.rules.token_of(metadata))
                self.rules.check(access, needed)
            except AuthError as exc:
                context.abort(*self.rules.status(exc))
            return access

        def guard(behaviour: Any, streams: bool) -> Any:
            def guarded(request: Any, context: Any) -> Any:
                reset = _current.set(admit(context))
                try:
                    return behaviour(request, context)
                finally:
                    _current.reset(reset)

            def guarded_stream(request: Any, context: Any) -> Any:
                reset = _current.set(admit(context))
                try:
                    yield from behaviour(request, context)
                finally:
                    _current.reset(reset)

            return guarded_stream if streams else guarded

        return _wrap(handler, guard)


class AioTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """The interceptor of a ``grpc.aio.server``; see the module."""

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        scopes: Mapping[str, Iterable[str]] | None = None,
        default_scopes: Iterable[str] = (),
    ) -> None:
        if not callable(getattr(verifier, "verify", None)):
            raise ConfigError("AioTokenInterceptor: give a verifier (JWTVerifier, ...)")
        self.verifier = verifier
        self.rules = _Rules(scopes, default_scopes)

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        needed = self.rules.needed(handler_call_details.method)
        metadata = tuple(handler_call_details.invocation_metadata or ())

        async def admit(context: Any) -> None:
            try:
                access = await self.verifier.verify(self.rules.token_of(metadata))
                self.rules.check(access, needed)
            except AuthError as exc:
                await context.abort(*self.rules.status(exc))
            _current.set(access)  # the call's own task: nothing to reset

        def guard(behaviour: Any, streams: bool) -> Any:
            async def guarded(request: Any, context: Any) -> Any:
                await admit(context)
                return await behaviour(request, context)

            async def guarded_stream(request: Any, context: Any) -> Any:
                await admit(context)
                async for answer in behaviour(request, context):
                    yield answer

            return guarded_stream if streams else guarded

        return _wrap(handler, guard)
