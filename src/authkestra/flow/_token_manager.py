"""Tokens kept per process: served from memory, fetched once, renewed ahead of expiry.

Every ``get_token`` call lands here. The hot path is a dict lookup and a clock
read. Everything else happens once per token lifetime:

- **one fetch in flight** per key: the first caller that needs a token leads
  (:class:`~authkestra.flow._single_flight.Flight`), every other thread or
  coroutine waits for its outcome, token or error;
- **refresh ahead**: past its renewal point (75-85% of the lifetime) a token is
  still served at once while one background fetch replaces it;
- **back-off**: after a failed fetch, no new fetch starts for a growing,
  jittered interval; callers that have no usable token get the failure again
  at once instead of hammering the server;
- **shared backends**: before asking the server, the leader looks in the
  :class:`~authkestra.cache.TokenCache` and, if other processes share it, takes
  its lock so one process in the fleet fetches and the others adopt its token.
  A backend that fails is logged and bypassed, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from .._clock import Clock
from .._protocol.actions import Call, Operation, Sleep
from .._protocol.lifetime import plan_lifetime
from .._protocol.token_request import TokenRequestSpec
from ..cache.base import CachedToken, TokenCache
from ..errors import AuthError, NetworkError
from ..token import Token
from ._drivers import AsyncDriver, SyncDriver
from ._single_flight import Flight
from .events import TokenEvent, TokenEventHook, TokenEventKind

__all__ = ["TokenManager", "cache_key", "fresh_copy"]

logger = logging.getLogger("authkestra")

#: Back-off after failed fetches: 1 s, doubling, at most 60 s, with jitter.
FAILURE_BACKOFF_BASE = 1.0
FAILURE_BACKOFF_MAX = 60.0


def cache_key(where: str, spec: TokenRequestSpec, *, dpop_jkt: str | None = None) -> str:
    """A stable hash of everything that identifies a token; never the secret.

    ``dpop_jkt``: the thumbprint of the DPoP key the flow proves possession of;
    a token bound to one key is useless with another, so it is part of the key.
    """
    parts: list[object] = [
        where,
        spec.client_id,
        spec.auth_method.value,
        sorted(spec.scopes),
        spec.audience,
        sorted(spec.resources),
        list(spec.extra_params),
    ]
    if dpop_jkt is not None:
        parts.append(["dpop", dpop_jkt])
    material = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


class _Entry:
    """A usable token and its deadlines on the monotonic clock."""

    __slots__ = ("record", "refresh_at", "token", "usable_until")

    def __init__(self, record: CachedToken, clock: Clock) -> None:
        # Store times are wall-clock (shared across machines); convert once to monotonic.
        offset = clock.monotonic() - clock.now().timestamp()
        self.record = record
        self.token = record.token
        self.refresh_at = record.refresh_after + offset
        self.usable_until = record.expires_at + offset


class _Slot:
    """The state of one cache key."""

    __slots__ = (
        "entry",
        "failures",
        "flight",
        "generation",
        "last_error",
        "lock",
        "not_before",
        "stale",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entry: _Entry | None = None
        #: Counts the tokens this slot has held: a forced refresh waits for a newer one.
        self.generation = 0
        self.flight: Flight | None = None
        self.failures = 0
        self.not_before = 0.0
        self.last_error: AuthError | None = None
        #: An access token reported bad (a 401): never adopted again from a backend.
        self.stale: str | None = None


class TokenManager:
    """Serves tokens for one flow. Internal: the flow is the public face."""

    def __init__(
        self,
        *,
        fetch: Callable[[TokenRequestSpec], Operation[Token]],
        sync_driver: SyncDriver,
        async_driver: AsyncDriver,
        cache: TokenCache,
        clock: Clock,
        default_ttl: float,
        wait_timeout: float,
        client_id: str,
        on_event: TokenEventHook | None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._fetch = fetch
        self._sync = sync_driver
        self._async = async_driver
        self.cache = cache
        self.clock = clock
        self.default_ttl = default_ttl
        self.wait_timeout = wait_timeout
        self.client_id = client_id
        self.on_event = on_event
        self.rng = rng
        self._slots: dict[str, _Slot] = {}
        self._slots_lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the hot path ------------------------------------------------------------------

    def slot(self, key: str) -> _Slot:
        """The state of ``key``, made on first use and kept for the manager's life."""
        slot = self._slots.get(key)
        if slot is None:
            with self._slots_lock:
                slot = self._slots.setdefault(key, _Slot())
        return slot

    def cached(self, key: str, spec: TokenRequestSpec, *, in_async: bool) -> Token | None:
        """The token to serve right now without waiting, or None."""
        slot = self._slots.get(key)
        entry = slot.entry if slot is not None else None
        if entry is None:
            return None
        now = self.clock.monotonic()
        if now >= entry.usable_until:
            return None
        if now >= entry.refresh_at and slot is not None:
            flight = slot.flight
            if flight is None or flight.orphaned():
                self._refresh_in_background(slot, key, spec, in_async=in_async)
        if self.on_event is not None:
            self._emit(TokenEventKind.CACHE_HIT, spec, key, entry.token)
        return entry.token

    # -- waiting for a token -------------------------------------------------------------

    def get_sync(self, key: str, spec: TokenRequestSpec, *, force: bool = False) -> Token:
        if not force:
            token = self.cached(key, spec, in_async=False)
            if token is not None:
                return token
        slot = self.slot(key)
        started = slot.generation
        self._emit(TokenEventKind.CACHE_MISS, spec, key)
        while True:
            flight, leader, token = self._join(slot, started, force)
            if token is not None:
                return token
            assert flight is not None
            if leader:
                self._lead_sync(slot, key, spec, flight, background=False, force=force)
            elif not flight.wait_sync(self.wait_timeout):
                raise self._stuck(slot, flight)
            if not flight.abandoned:
                return self._outcome(flight)

    async def get_async(self, key: str, spec: TokenRequestSpec, *, force: bool = False) -> Token:
        if not force:
            token = self.cached(key, spec, in_async=True)
            if token is not None:
                return token
        slot = self.slot(key)
        started = slot.generation
        self._emit(TokenEventKind.CACHE_MISS, spec, key)
        while True:
            flight, leader, token = self._join(slot, started, force)
            if token is not None:
                return token
            assert flight is not None
            if leader:
                await self._lead_async(slot, key, spec, flight, background=False, force=force)
            elif not await flight.wait_async(self.wait_timeout):
                raise self._stuck(slot, flight)
            if not flight.abandoned:
                return self._outcome(flight)

    def _join(
        self, slot: _Slot, started: int, force: bool
    ) -> tuple[Flight | None, bool, Token | None]:
        """Under the slot lock: a usable token, the flight to wait for, or a new flight to lead."""
        with slot.lock:
            now = self.clock.monotonic()
            entry = slot.entry
            # A forced refresh accepts only a token obtained after it was asked for.
            if (
                entry is not None
                and now < entry.usable_until
                and (not force or slot.generation > started)
            ):
                return None, False, entry.token
            current = self._live_flight(slot)
            if current is not None:
                return current, False, None
            if now < slot.not_before and slot.last_error is not None:
                # Backing off: answer with the last failure rather than hammer the server.
                raise fresh_copy(slot.last_error)
            slot.flight = Flight()
            return slot.flight, True, None

    @staticmethod
    def _live_flight(slot: _Slot) -> Flight | None:
        """The slot's flight, unless its leader is gone (we were forked, or its loop closed)."""
        flight = slot.flight
        if flight is not None and flight.orphaned():
            slot.flight = None
            flight.finish(abandoned=True)
            return None
        return flight

    def _stuck(self, slot: _Slot, flight: Flight) -> NetworkError:
        """A leader that outlived every deadline will not finish: let the next caller start anew."""
        with slot.lock:
            if slot.flight is flight:
                slot.flight = None
        flight.finish(abandoned=True)
        return NetworkError("timed out waiting for the token request in flight")

    @staticmethod
    def _outcome(flight: Flight) -> Token:
        if flight.error is not None:
            raise fresh_copy(flight.error)
        assert isinstance(flight.value, Token)
        return flight.value

    # -- leading a fetch -------------------------------------------------------------------

    def _lead_sync(
        self,
        slot: _Slot,
        key: str,
        spec: TokenRequestSpec,
        flight: Flight,
        *,
        background: bool,
        force: bool,
    ) -> None:
        try:
            record, source = self._sync.run(self._acquire(slot, key, spec, force=force))
        except AuthError as exc:
            self._failed(slot, key, spec, flight, exc, background=background)
        except BaseException:
            self._abandon(slot, flight)
            raise
        else:
            self._succeeded(
                slot=slot, key=key, spec=spec, flight=flight, record=record, source=source
            )

    async def _lead_async(
        self,
        slot: _Slot,
        key: str,
        spec: TokenRequestSpec,
        flight: Flight,
        *,
        background: bool,
        force: bool,
    ) -> None:
        with contextlib.suppress(RuntimeError):  # trio has no asyncio loop to close on us
            flight.loop = asyncio.get_running_loop()
        try:
            record, source = await self._async.run(self._acquire(slot, key, spec, force=force))
        except AuthError as exc:
            self._failed(slot, key, spec, flight, exc, background=background)
        except BaseException:
            # Cancelled: the followers retry on their own rather than inherit a cancellation.
            self._abandon(slot, flight)
            raise
        else:
            self._succeeded(
                slot=slot, key=key, spec=spec, flight=flight, record=record, source=source
            )

    def _refresh_in_background(
        self, slot: _Slot, key: str, spec: TokenRequestSpec, *, in_async: bool
    ) -> None:
        with slot.lock:
            if self._live_flight(slot) is not None or self.clock.monotonic() < slot.not_before:
                return
            flight = slot.flight = Flight()
        loop: asyncio.AbstractEventLoop | None = None
        if in_async:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None  # trio: renew in a thread instead
        if loop is not None:
            flight.loop = loop
            task = loop.create_task(
                self._lead_async(slot, key, spec, flight, background=True, force=False)
            )
            self._tasks.add(task)  # a strong reference, or the loop may drop the task
            task.add_done_callback(self._tasks.discard)
        else:
            thread = threading.Thread(
                target=self._lead_sync,
                args=(slot, key, spec, flight),
                kwargs={"background": True, "force": False},
                name="authkestra-refresh",
                daemon=True,
            )
            thread.start()

    def _acquire(
        self, slot: _Slot, key: str, spec: TokenRequestSpec, *, force: bool
    ) -> Operation[tuple[CachedToken, str]]:
        """Find a usable token in the backend, or fetch one (once for the fleet) and store it."""
        cache = self.cache
        started_wall = self.clock.now().timestamp()

        def usable(record: CachedToken | None) -> bool:
            if record is None or record.token.access_token == slot.stale:
                return False
            if record.obtained_at > started_wall:
                return True  # written after we asked: the freshest there is
            return not force and self.clock.now().timestamp() < record.refresh_after

        def load() -> CachedToken | None:
            return cache.load(key)

        record = yield from self._cache_call(load, "read")
        if usable(record):
            assert record is not None
            return record, "cache"

        deadline = self.clock.monotonic() + self.wait_timeout
        pause = 0.02
        while True:
            lock: Any = cache.lock(key, self.wait_timeout)
            held = yield from self._cache_call(lock.__enter__, "lock")
            if held is None:
                lock = None  # the backend failed: fetch without its lock
            if held is None or held:
                try:
                    if lock is not None:
                        record = yield from self._cache_call(load, "read")
                        if usable(record):
                            assert record is not None
                            return record, "cache"
                    return (yield from self._fetch_and_store(key, spec)), "network"
                finally:
                    if lock is not None:
                        # Released inline, so it is released even if this operation is abandoned.
                        try:
                            lock.__exit__(None, None, None)
                        except Exception as exc:
                            logger.warning(
                                "authkestra: token cache lock release failed (%s)",
                                type(exc).__name__,
                            )
            # Another process is fetching: wait for its token to appear in the backend.
            yield Sleep(pause)
            pause = min(pause * 2, 0.5)
            record = yield from self._cache_call(load, "read")
            if usable(record):
                assert record is not None
                return record, "cache"
            if self.clock.monotonic() >= deadline:
                logger.warning(
                    "authkestra: no token from the process holding the cache lock; fetching"
                )
                return (yield from self._fetch_and_store(key, spec)), "network"

    def _fetch_and_store(self, key: str, spec: TokenRequestSpec) -> Operation[CachedToken]:
        token = yield from self._fetch(spec)
        record = plan_lifetime(
            token, self.clock.now().timestamp(), default_ttl=self.default_ttl, rng=self.rng
        )
        yield from self._cache_call(lambda: self.cache.save(key, record), "write")
        return record

    def _cache_call(self, func: Callable[[], Any], what: str) -> Operation[Any]:
        """Run a backend call; on failure log it and answer None (the caller falls back)."""
        try:
            return (yield Call(func, blocking=self.cache.blocking))
        except Exception as exc:
            logger.warning(
                "authkestra: token cache %s failed (%s: %s); continuing without it",
                what,
                type(exc).__name__,
                str(exc)[:200],
            )
            return None

    # -- outcomes --------------------------------------------------------------------------

    def _succeeded(
        self,
        *,
        slot: _Slot,
        key: str,
        spec: TokenRequestSpec,
        flight: Flight,
        record: CachedToken,
        source: str,
    ) -> None:
        entry = _Entry(record, self.clock)
        with slot.lock:
            previous = slot.entry
            slot.entry = entry
            slot.generation += 1
            slot.failures = 0
            slot.not_before = 0.0
            slot.last_error = None
            slot.flight = None
        flight.finish(record.token)
        kind = TokenEventKind.REFRESHED if previous is not None else TokenEventKind.ACQUIRED
        logger.debug(
            "authkestra: token %s for client %r from %s (usable for %.0fs)",
            kind.value,
            self.client_id,
            source,
            entry.usable_until - self.clock.monotonic(),
        )
        self._emit(kind, spec, key, record.token, source=source)

    def _failed(
        self,
        slot: _Slot,
        key: str,
        spec: TokenRequestSpec,
        flight: Flight,
        error: AuthError,
        *,
        background: bool,
    ) -> None:
        with slot.lock:
            slot.failures += 1
            ceiling = min(FAILURE_BACKOFF_MAX, FAILURE_BACKOFF_BASE * 2 ** (slot.failures - 1))
            slot.not_before = self.clock.monotonic() + ceiling * (0.5 + 0.5 * self.rng())
            slot.last_error = error
            slot.flight = None
        flight.finish(error=error)
        kind = TokenEventKind.REFRESH_FAILED if background else TokenEventKind.FETCH_FAILED
        log = logger.warning if background else logger.info
        log(
            "authkestra: token %s for client %r: %s",
            kind.value.replace("_", " "),
            self.client_id,
            error,
        )
        self._emit(kind, spec, key, error=error)

    @staticmethod
    def _abandon(slot: _Slot, flight: Flight) -> None:
        with slot.lock:
            if slot.flight is flight:
                slot.flight = None
        flight.finish(abandoned=True)

    def invalidate(self, key: str, token: Token | None) -> bool:
        """Drop the token for ``key`` (only if it is ``token``, when given); True if dropped."""
        slot = self._slots.get(key)
        if slot is None:
            return False
        with slot.lock:
            entry = slot.entry
            if entry is None or (
                token is not None and entry.token.access_token != token.access_token
            ):
                return False
            slot.entry = None
            slot.stale = entry.token.access_token
            return True

    def _emit(
        self,
        kind: TokenEventKind,
        spec: TokenRequestSpec,
        key: str,
        token: Token | None = None,
        *,
        source: str | None = None,
        error: AuthError | None = None,
    ) -> None:
        hook = self.on_event
        if hook is None:
            return
        event = TokenEvent(
            kind=kind,
            client_id=self.client_id,
            scopes=spec.scopes,
            cache_key=key,
            expires_at=token.expires_at if token is not None else None,
            source=source,
            error=error,
        )
        try:
            hook(event)
        except Exception:
            logger.exception("authkestra: the on_event hook raised; ignored")


def fresh_copy(error: AuthError) -> AuthError:
    """A copy to raise: one exception object raised in many threads would share a traceback."""
    clone = copy.copy(error)
    clone.__traceback__ = None
    clone.__cause__ = error.__cause__
    return clone
