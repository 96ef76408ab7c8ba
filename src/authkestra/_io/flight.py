"""One fetch in flight (a token, a key set, an answer), awaited by threads and coroutines alike."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import threading
from collections.abc import Callable
from typing import Any

import anyio

from ..errors import AuthError

__all__ = ["Flight", "fresh_copy"]


def _waker(callback: Callable[[], None]) -> Callable[[], None]:
    """A thread-safe way to run ``callback`` in the current event loop (asyncio or trio)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        import trio

        token = trio.lowlevel.current_trio_token()

        def wake_trio() -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(callback)

        return wake_trio

    def wake_asyncio() -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(callback)

    return wake_asyncio


class Flight:
    """The outcome of one fetch (a token, a key set), shared by every caller that waits for it.

    The leader calls :meth:`finish` exactly once; followers wait with
    :meth:`wait_sync` (threads) or :meth:`wait_async` (coroutines, any loop).
    ``abandoned`` means the leader was cancelled before it had an outcome:
    followers then try again themselves.
    """

    def __init__(self, started: float = 0.0) -> None:
        #: When it began (the cache's monotonic clock): a leader past the longest a fetch
        #: can take (an event loop that stopped running it) is given up for lost.
        self.started = started
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._wakers: list[Callable[[], None]] = []
        self.value: Any = None
        self.error: AuthError | None = None
        self.abandoned = False
        #: Who leads it: a leader in another process (we were forked) or on a closed
        #: event loop will never finish it.
        self.pid = os.getpid()
        self.loop: asyncio.AbstractEventLoop | None = None

    def orphaned(self) -> bool:
        """True when no one is left to finish this flight."""
        if self._done.is_set():
            return False
        return self.pid != os.getpid() or (self.loop is not None and self.loop.is_closed())

    def finish(
        self, value: Any = None, error: AuthError | None = None, *, abandoned: bool = False
    ) -> None:
        with self._lock:
            if self._done.is_set():  # given up for lost already: the first outcome stands
                return
            self.value, self.error, self.abandoned = value, error, abandoned
            self._done.set()
            wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()

    def wait_sync(self, timeout: float) -> bool:
        """Block until finished; False on timeout."""
        return self._done.wait(timeout)

    async def wait_async(self, within: float) -> bool:
        """Wait without blocking the event loop; False on timeout."""
        if self._done.is_set():
            return True
        event = anyio.Event()
        wake = _waker(event.set)
        with self._lock:
            if self._done.is_set():
                return True
            self._wakers.append(wake)
        with anyio.move_on_after(within):
            await event.wait()
        return self._done.is_set()

    @property
    def done(self) -> bool:
        """True once it has an outcome (or was given up)."""
        return self._done.is_set()


def fresh_copy(error: AuthError) -> AuthError:
    """A copy to raise: one exception object raised in many threads would share a traceback."""
    clone = copy.copy(error)
    clone.__traceback__ = None
    clone.__cause__ = error.__cause__
    return clone
