"""The two drivers: run a protocol operation with blocking I/O or with async I/O.

They differ only in how they wait: everything the operation decides is in
:mod:`authkestra._protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread
import httpx

from .._protocol.actions import Action, Call, HttpRequest, Operation, ReadSecret, Sleep
from ..errors import AuthError, ConfigError, NetworkError
from ..secrets import CallableSecret, SecretSource, secret_text
from .transport import AsyncTransport, SyncTransport

__all__ = ["AsyncDriver", "Drivers", "SyncDriver"]

T = TypeVar("T")
C = TypeVar("C", httpx.Client, httpx.AsyncClient)


class _Run:
    """One operation being run: the action it asks for, and what came of the last one."""

    __slots__ = ("action", "error", "op", "value")

    def __init__(self, op: Operation[Any]) -> None:
        self.op = op
        self.action: Any = None
        self.value: Any = None
        self.error: Exception | None = None

    def next(self) -> bool:
        """Hand the last outcome in; True with the next ``action``, False (the operation's
        result in ``value``) once it is done."""
        try:
            if self.error is not None:
                self.action = self.op.throw(self.error)
            else:
                self.action = self.op.send(self.value)
        except StopIteration as stop:
            self.value = stop.value
            return False
        self.value = self.error = None
        return True

    def failed(self, exc: Exception) -> None:
        """The action raised: thrown into the operation when it handles such failures
        itself (network errors, cache failures), raised to the caller otherwise."""
        if not (isinstance(exc, NetworkError) or isinstance(self.action, Call)):
            raise exc
        self.error = exc


class _Client(Generic[C]):
    """An operation's HTTP client: the injected one, or one made on first use (``made``,
    for the driver to close: an operation served from a cache opens no connection)."""

    __slots__ = ("factory", "injected", "made")
    injected: C | None
    factory: Callable[[], C]
    made: C | None

    def __init__(self, injected: C | None, factory: Callable[[], C]) -> None:
        self.injected = injected
        self.factory = factory
        self.made = None

    def __call__(self) -> C:
        if self.injected is not None:
            return self.injected
        if self.made is None:
            self.made = self.factory()
        return self.made


def _source_failed(source: SecretSource, exc: Exception) -> ConfigError:
    # The source's own message could quote the secret: name the type, chain the cause.
    error: type[ConfigError] = getattr(source, "error", ConfigError)
    return error(f"the {source.what} source failed ({type(exc).__name__})")


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
        with self._session() as client:
            run = _Run(op)
            while run.next():
                try:
                    run.value = self._perform(run.action, client)
                except Exception as exc:
                    run.failed(exc)
            return run.value  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def _session(self) -> Iterator[Callable[[], httpx.Client]]:
        """The operation's HTTP client: the injected one, or one made on first use and
        closed at the end (an operation served from a cache opens no connection)."""
        client = _Client(self.client, self.client_factory)
        try:
            yield client
        finally:
            if client.made is not None:
                client.made.close()

    def _perform(self, action: Action, client: Callable[[], httpx.Client]) -> Any:
        if isinstance(action, HttpRequest):
            return self.transport.send(client(), action)
        if isinstance(action, Sleep):
            self.sleep(action.seconds)
            return None
        if isinstance(action, ReadSecret):
            return self._read_secret()
        if isinstance(action, Call):
            return action.func()
        raise TypeError(f"unknown action {action!r}")

    def _read_secret(self) -> str:
        source = self.secret_source
        assert source is not None
        try:
            value = source.read()
            if inspect.isawaitable(value):
                value = self._resolve_awaitable(value, source.what)
        except AuthError:
            raise
        except Exception as exc:
            raise _source_failed(source, exc) from exc
        return secret_text(value, source)

    @staticmethod
    def _resolve_awaitable(value: Awaitable[Any], what: str) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if inspect.iscoroutine(value):
                value.close()
            raise ConfigError(
                f"the {what} source is async and an event loop is running in this"
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
        async with self._session() as client:
            run = _Run(op)
            while run.next():
                try:
                    run.value = await self._perform(run.action, client)
                except Exception as exc:
                    run.failed(exc)
            return run.value  # type: ignore[no-any-return]

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
        """:meth:`SyncDriver._session` for async clients."""
        client = _Client(self.client, self.client_factory)
        try:
            yield client
        finally:
            if client.made is not None:
                with anyio.CancelScope(shield=True):
                    await client.made.aclose()

    async def _perform(self, action: Action, client: Callable[[], httpx.AsyncClient]) -> Any:
        if isinstance(action, HttpRequest):
            return await self.transport.send(client(), action)
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
            raise _source_failed(source, exc) from exc
        return secret_text(value, source)


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
