"""The two drivers: run a protocol operation with blocking I/O or with async I/O.

They differ only in how they wait: everything the operation decides is in
:mod:`authkestra._protocol`.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import httpx

from .._protocol.actions import Action, HttpRequest, Operation, ReadSecret, Sleep
from ..errors import AuthError, ConfigError, NetworkError
from ..secrets import CallableSecret, SecretSource, secret_text
from ._transport import AsyncTransport, SyncTransport

__all__ = ["AsyncDriver", "SyncDriver"]

T = TypeVar("T")


def _step(op: Operation[T], value: Any, error: BaseException | None) -> tuple[bool, Any]:
    """Advance ``op`` by one action: (False, action) or (True, its return value)."""
    try:
        action = op.throw(error) if error is not None else op.send(value)
    except StopIteration as stop:
        return True, stop.value
    return False, action


def _source_failed(exc: Exception) -> ConfigError:
    # The source's own message could quote the secret: name the type, chain the cause.
    return ConfigError(f"the client secret source failed ({type(exc).__name__})")


class SyncDriver:
    """Runs operations with ``httpx.Client`` and ``time.sleep``."""

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
        context: AbstractContextManager[httpx.Client] = (
            nullcontext(self.client) if self.client is not None else self.client_factory()
        )
        with context as client:
            value: Any = None
            error: NetworkError | None = None
            while True:
                done, action = _step(op, value, error)
                if done:
                    return action  # type: ignore[no-any-return]
                value, error = None, None
                try:
                    value = self._perform(client, action)
                except NetworkError as exc:
                    error = exc  # the operation decides whether to retry

    def _perform(self, client: httpx.Client, action: Action) -> Any:
        if isinstance(action, HttpRequest):
            return self.transport.send(client, action)
        if isinstance(action, Sleep):
            self.sleep(action.seconds)
            return None
        if isinstance(action, ReadSecret):
            return self._read_secret()
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
        context: AbstractAsyncContextManager[httpx.AsyncClient] = (
            _AsyncNull(self.client) if self.client is not None else self.client_factory()
        )
        async with context as client:
            value: Any = None
            error: NetworkError | None = None
            while True:
                done, action = _step(op, value, error)
                if done:
                    return action  # type: ignore[no-any-return]
                value, error = None, None
                try:
                    value = await self._perform(client, action)
                except NetworkError as exc:
                    error = exc

    async def _perform(self, client: httpx.AsyncClient, action: Action) -> Any:
        if isinstance(action, HttpRequest):
            return await self.transport.send(client, action)
        if isinstance(action, Sleep):
            await anyio.sleep(action.seconds)
            return None
        if isinstance(action, ReadSecret):
            return await self._read_secret()
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


class _AsyncNull(AbstractAsyncContextManager[httpx.AsyncClient]):
    """An injected client: used as is, closed by its owner."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __aenter__(self) -> httpx.AsyncClient:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        return None
