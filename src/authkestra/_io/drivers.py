"""The two drivers: run a protocol operation with blocking I/O or with async I/O.

They differ only in how they wait: everything the operation decides is in
:mod:`authkestra._protocol`.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import httpx

from .._protocol.actions import Action, Call, HttpRequest, Operation, ReadSecret, Sleep
from ..errors import AuthError, ConfigError, NetworkError
from ..secrets import CallableSecret, SecretSource, secret_text
from .transport import AsyncTransport, SyncTransport

__all__ = ["AsyncDriver", "Drivers", "SyncDriver"]

T = TypeVar("T")


def _step(op: Operation[T], value: Any, error: Exception | None) -> tuple[bool, Any]:
    """Advance ``op`` by one action: (False, action) or (True, its return value)."""
    try:
        action = op.throw(error) if error is not None else op.send(value)
    except StopIteration as stop:
        return True, stop.value
    return False, action


def _thrown_in(action: Action, exc: Exception) -> bool:
    """Which failures the operation handles itself: network errors, cache failures."""
    return isinstance(exc, NetworkError) or isinstance(action, Call)


def _source_failed(exc: Exception) -> ConfigError:
    # The source's own message could quote the secret: name the type, chain the cause.
    return ConfigError(f"the client secret source failed ({type(exc).__name__})")


class SyncDriver:
    """Runs operations with ``httpx.Client`` and ``time.sleep``.

    The HTTP client is the injected one, or one made on the first request of
    an operation and closed at its end (an operation served from a cache opens
    no connection at all).
    """

    def __init__(
        self,
        transport: SyncTransport,
        client_factory: Callable[[], httpx.Client],
        client: httpx.Client | None,
        secret_source: SecretSource | None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.transport = transport
        self.client_factory = client_factory
        self.client = client
        self.secret_source = secret_source
        self.sleep = sleep

    def run(self, op: Operation[T]) -> T:
        own: httpx.Client | None = None
        try:
            value: Any = None
            error: Exception | None = None
            while True:
                done, action = _step(op, value, error)
                if done:
                    return action  # type: ignore[no-any-return]
                value, error = None, None
                try:
                    if isinstance(action, HttpRequest):
                        client = self.client
                        if client is None:
                            own = own or self.client_factory()
                            client = own
                        value = self.transport.send(client, action)
                    else:
                        value = self._perform(action)
                except Exception as exc:
                    if not _thrown_in(action, exc):
                        raise
                    error = exc
        finally:
            if own is not None:
                own.close()

    def _perform(self, action: Action) -> Any:
        if isinstance(action, Sleep):
            self.sleep(action.seconds)
            return None
        if isinstance(action, ReadSecret):
            return self._read_secret()
        if isinstance(action, Call):
            return action.func()
        raise TypeError(f"unknown action {action!r}")

    def _read_secret(self) -> str:
        assert self.secret_source is not None
        try:
            value = self.secret_source.read()
            if inspect.isawaitable(value):
                value = self._resolve_awaitable(value)
        except AuthError:
            raise
        except Exception as exc:
            raise _source_failed(exc) from exc
        return secret_text(value)

    @staticmethod
    def _resolve_awaitable(value: Awaitable[Any]) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if inspect.iscoroutine(value):
                value.close()
            raise ConfigError(
                "the client secret source is async and an event loop is running in this"
                " thread: call 'await flow.get_token()' instead of get_token_sync()"
            )

        async def wait() -> Any:
            return await value

        return asyncio.run(wait())


class AsyncDriver:
    """Runs operations with ``httpx.AsyncClient`` and ``anyio.sleep`` (asyncio or trio)."""

    def __init__(
        self,
        transport: AsyncTransport,
        client_factory: Callable[[], httpx.AsyncClient],
        client: httpx.AsyncClient | None,
        secret_source: SecretSource | None,
    ) -> None:
        self.transport = transport
        self.client_factory = client_factory
        self.client = client
        self.secret_source = secret_source

    async def run(self, op: Operation[T]) -> T:
        own: httpx.AsyncClient | None = None
        try:
            value: Any = None
            error: Exception | None = None
            while True:
                done, action = _step(op, value, error)
                if done:
                    return action  # type: ignore[no-any-return]
                value, error = None, None
                try:
                    if isinstance(action, HttpRequest):
                        client = self.client
                        if client is None:
                            own = own or self.client_factory()
                            client = own
                        value = await self.transport.send(client, action)
                    else:
                        value = await self._perform(action)
                except Exception as exc:
                    if not _thrown_in(action, exc):
                        raise
                    error = exc
        finally:
            if own is not None:
                with anyio.CancelScope(shield=True):
                    await own.aclose()

    async def _perform(self, action: Action) -> Any:
        if isinstance(action, Sleep):
            await anyio.sleep(action.seconds)
            return None
        if isinstance(action, ReadSecret):
            return await self._read_secret()
        if isinstance(action, Call):
            if action.blocking:
                return await anyio.to_thread.run_sync(action.func)
            return action.func()
        raise TypeError(f"unknown action {action!r}")

    async def _read_secret(self) -> str:
        source = self.secret_source
        assert source is not None
        try:
            if isinstance(source, CallableSecret) and not source.is_async:
                # A blocking secrets-manager call must not stall the event loop.
                value = await anyio.to_thread.run_sync(source.read)
            else:
                value = source.read()
            if inspect.isawaitable(value):
                value = await value
        except AuthError:
            raise
        except Exception as exc:
            raise _source_failed(exc) from exc
        return secret_text(value)


class Drivers:
    """The sync and async drivers one component (a flow, a verifier) sends through.

    Clients are the injected ones, or made per operation from one SSL context
    (loading the CA bundle costs milliseconds, so it is done once).
    """

    def __init__(
        self,
        *,
        timeout: httpx.Timeout,
        clock: Callable[[], float],
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        secret_source: SecretSource | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self._ssl_context: Any = ssl_context
        self.sync = SyncDriver(
            SyncTransport(timeout, clock), self._new_client, http_client, secret_source
        )
        self.async_ = AsyncDriver(
            AsyncTransport(timeout, clock), self._new_async_client, async_http_client, secret_source
        )

    def _verify(self) -> Any:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    def _new_client(self) -> httpx.Client:
        return httpx.Client(verify=self._verify(), timeout=self.timeout, follow_redirects=False)

    def _new_async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            verify=self._verify(), timeout=self.timeout, follow_redirects=False
        )
