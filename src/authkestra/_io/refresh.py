"""The refresh-ahead cache: values kept per key, fetched once, renewed before they run out.

The client's tokens, an API's key sets and its introspection answers all live in
one of these. Per key it keeps one :class:`Entry` (the value, when to renew it,
until when it may be served) and:

- **one fetch in flight**: the first caller that needs a value leads
  (:class:`~authkestra._io.flight.Flight`); every other thread or coroutine waits
  for its outcome, value or error. A leader that is cancelled abandons the flight
  (its followers try again themselves); one that can never finish -- we were
  forked, its event loop closed, or it has run longer than any fetch can
  (``max_flight``) -- is given up for lost;
- **refresh ahead**: past ``refresh_at`` a value is still served at once while one
  background fetch (an asyncio task, else a thread) replaces it; if that fails the
  value keeps serving until ``usable_until``;
- **back-off**: after a failed fetch no new fetch starts for ``backoff(failures,
  error)`` seconds; callers with no usable value get the failure again at once
  instead of hammering the server.

What a value is and how it is fetched belong to the owner: ``fetch(key, force)``
is a sans-I/O operation (:mod:`authkestra._protocol`), run by the sync or the
async driver, that gives the :class:`Entry`. ``force`` asks for a value newer
than the one the caller has seen. Hooks report hits, misses, values obtained and
failures (for events and logs); the hit hook is the only one on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Callable, Generator, Hashable
from typing import Any, Generic, TypeVar

from .._protocol.actions import Operation
from ..errors import AuthError, NetworkError
from .drivers import AsyncDriver, SyncDriver
from .flight import Flight, fresh_copy

__all__ = ["Entry", "RefreshingCache", "Slot"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Entry(Generic[V]):
    """A value and its deadlines on the cache's monotonic clock. Owners may subclass it."""

    __slots__ = ("refresh_at", "usable_until", "value")

    def __init__(self, value: V, refresh_at: float, usable_until: float) -> None:
        self.value = value
        self.refresh_at = refresh_at
        self.usable_until = usable_until


class Slot(Generic[V]):
    """The state of one key, kept (unless evicted) for the cache's life."""

    __slots__ = ("entry", "failures", "flight", "generation", "last_error", "lock", "not_before")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entry: Entry[V] | None = None
        #: Counts the values this slot has held: a forced fetch waits for a newer one.
        self.generation = 0
        self.flight: Flight | None = None
        self.failures = 0
        self.not_before = float("-inf")
        self.last_error: AuthError | None = None


@dataclasses.dataclass(frozen=True)
class _Step:
    """What a get needs its driver to do: lead ``flight`` (fetch), or wait for it."""

    slot: Slot[Any]
    key: Any
    flight: Flight
    leads: bool
    force: bool


@dataclasses.dataclass(frozen=True)
class _Done:
    """A get's outcome: the value."""

    value: Any


def _advance(steps: Generator[_Step, Any, Any], answer: Any) -> _Step | _Done:
    """The next thing a get needs of its driver, or its outcome."""
    try:
        return steps.send(answer)
    except StopIteration as done:
        return _Done(done.value)


class RefreshingCache(Generic[K, V]):
    """Values by key, each fetched once and renewed ahead; see the module docstring."""

    def __init__(
        self,
        *,
        fetch: Callable[[K, bool], Operation[Entry[V]]],
        sync_driver: SyncDriver,
        async_driver: AsyncDriver,
        clock: Callable[[], float],
        wait_timeout: float,
        backoff: Callable[[int, AuthError], float],
        max_flight: float | None = None,
        max_slots: int | None = None,
        what: str = "fetch",
        on_hit: Callable[[K, V], None] | None = None,
        on_miss: Callable[[K], None] | None = None,
        on_obtained: Callable[[K, Entry[V], Entry[V] | None], None] | None = None,
        on_failed: Callable[[K, AuthError, bool], None] | None = None,
    ) -> None:
        self._fetch = fetch
        self._sync = sync_driver
        self._async = async_driver
        self._clock = clock
        self.wait_timeout = wait_timeout
        self._backoff = backoff
        #: The longest a fetch can take: a flight older than this is given up for lost.
        self.max_flight = max_flight if max_flight is not None else wait_timeout
        self.max_slots = max_slots
        self.what = what
        self.on_hit = on_hit
        self._on_miss = on_miss
        self._on_obtained = on_obtained
        self._on_failed = on_failed
        self._slots: dict[K, Slot[V]] = {}
        self._slots_lock = threading.Lock()
        self._tasks: set[asyncio.Task[bool]] = set()

    # -- the hot path ------------------------------------------------------------------

    def slot(self, key: K) -> Slot[V]:
        """The state of ``key``, made on first use."""
        slot = self._slots.get(key)
        if slot is None:
            with self._slots_lock:
                slot = self._slots.get(key)
                if slot is None:
                    if self.max_slots is not None and len(self._slots) >= self.max_slots:
                        self._evict()
                    slot = self._slots[key] = Slot()
        return slot

    def cached(self, key: K, *, in_async: bool) -> V | None:
        """The value to serve right now without waiting, or None; starts a due refresh."""
        slot = self._slots.get(key)
        if slot is None:
            return None
        entry = slot.entry
        if entry is None:
            return None
        now = self._clock()
        if now >= entry.usable_until:
            return None
        if now >= entry.refresh_at:
            flight = slot.flight
            if flight is None or self._lost(flight, now):
                self._refresh_in_background(slot, key, in_async=in_async)
        if self.on_hit is not None:
            self.on_hit(key, entry.value)
        return entry.value

    # -- waiting for a value ---------------------------------------------------------------

    def get_sync(self, key: K, *, force: bool = False, stale_ok: bool = False) -> V:
        """The value for ``key``, fetched if need be.

        ``force``: a value newer than the one held (or fetched anew); ``stale_ok``: if
        that fetch fails (or failed a moment ago), the value held, if any, rather than
        the failure.
        """
        if not force and (value := self.cached(key, in_async=False)) is not None:
            return value
        steps = self._get(key, force, stale_ok)
        step = _advance(steps, None)
        while isinstance(step, _Step):
            leads = step.leads
            answer = self._lead_sync(step) if leads else step.flight.wait_sync(self.wait_timeout)
            step = _advance(steps, answer)
        return step.value  # type: ignore[no-any-return]

    async def get_async(self, key: K, *, force: bool = False, stale_ok: bool = False) -> V:
        """:meth:`get_sync` for coroutines (asyncio or trio)."""
        if not force and (value := self.cached(key, in_async=True)) is not None:
            return value
        steps = self._get(key, force, stale_ok)
        step = _advance(steps, None)
        while isinstance(step, _Step):
            waits = step.flight.wait_async(self.wait_timeout) if not step.leads else None
            step = _advance(steps, await (self._lead_async(step) if waits is None else waits))
        return step.value  # type: ignore[no-any-return]

    def _get(self, key: K, force: bool, stale_ok: bool) -> Generator[_Step, Any, V]:
        """The decisions of a get, for both drivers: lead or wait, until there is an outcome."""
        slot = self.slot(key)
        try:
            return (yield from self._get_fresh(slot, key, force))
        except AuthError:
            entry = slot.entry
            if stale_ok and entry is not None:
                return entry.value
            raise

    def _get_fresh(self, slot: Slot[V], key: K, force: bool) -> Generator[_Step, Any, V]:
        started = slot.generation
        if self._on_miss is not None:
            self._on_miss(key)
        while True:
            flight, leader, value = self._join(slot, started, force)
            if flight is None:
                return value  # type: ignore[no-any-return]
            finished = yield _Step(slot, key, flight, leader, force)
            if not leader and not finished:
                raise self._stuck(slot, flight)
            if not flight.abandoned:
                if flight.error is not None:
                    raise fresh_copy(flight.error)
                return flight.value  # type: ignore[no-any-return]

    def _join(self, slot: Slot[V], started: int, force: bool) -> tuple[Flight | None, bool, Any]:
        """Under the slot lock: a usable value, the flight to wait for, or a new one to lead."""
        with slot.lock:
            now = self._clock()
            entry = slot.entry
            # A forced fetch accepts only a value obtained after it was asked for.
            if (
                entry is not None
                and now < entry.usable_until
                and (not force or slot.generation > started)
            ):
                return None, False, entry.value
            current = self._live_flight(slot, now)
            if current is not None:
                return current, False, None
            if now < slot.not_before and slot.last_error is not None:
                # Backing off: answer with the last failure rather than hammer the server.
                raise fresh_copy(slot.last_error)
            slot.flight = Flight(now)
            return slot.flight, True, None

    def _lost(self, flight: Flight, now: float) -> bool:
        """True when no one will finish ``flight``: we were forked, its loop closed, or it
        has outlived the longest a fetch can take (its event loop stopped running it)."""
        return flight.orphaned() or (not flight.done and now - flight.started > self.max_flight)

    def _live_flight(self, slot: Slot[V], now: float) -> Flight | None:
        """The slot's flight, unless its leader is gone (then it is given up)."""
        flight = slot.flight
        if flight is not None and self._lost(flight, now):
            slot.flight = None
            flight.finish(abandoned=True)
            return None
        return flight

    def _stuck(self, slot: Slot[V], flight: Flight) -> NetworkError:
        """A leader that outlived every deadline will not finish: the next caller starts anew."""
        with slot.lock:
            if slot.flight is flight:
                slot.flight = None
        flight.finish(abandoned=True)
        return NetworkError(f"timed out waiting for the {self.what} in flight")

    def _evict(self) -> None:
        """Under the slots lock: forget the oldest key nobody is fetching for."""
        for key, slot in self._slots.items():
            if slot.flight is None:
                del self._slots[key]
                return

    # -- leading a fetch -------------------------------------------------------------------

    def _lead_sync(self, step: _Step, *, background: bool = False) -> bool:
        try:
            entry = self._sync.run(self._fetch(step.key, step.force))
        except BaseException as exc:
            if not self._settle(step, None, exc, background):
                raise
            return True
        self._settle(step, entry, None, background)
        return True

    async def _lead_async(self, step: _Step, *, background: bool = False) -> bool:
        with contextlib.suppress(RuntimeError):  # trio has no asyncio loop to close on us
            step.flight.loop = asyncio.get_running_loop()
        try:
            entry = await self._async.run(self._fetch(step.key, step.force))
        except BaseException as exc:
            if not self._settle(step, None, exc, background):
                raise
            return True
        self._settle(step, entry, None, background)
        return True

    def _settle(
        self, step: _Step, entry: Entry[V] | None, error: BaseException | None, background: bool
    ) -> bool:
        """Record a fetch's outcome: a value, or a failure (an AuthError: every caller gets
        it); True for those. Anything else -- cancelled, interrupted -- is no outcome: the
        flight is abandoned (its followers try again rather than inherit it); False."""
        if entry is not None:
            self._succeeded(step.slot, step.key, step.flight, entry)
            return True
        if isinstance(error, AuthError):
            self._failed(step.slot, step.key, step.flight, error, background=background)
            return True
        self._abandon(step.slot, step.flight)
        return False

    def _refresh_in_background(self, slot: Slot[V], key: K, *, in_async: bool) -> None:
        with slot.lock:
            now = self._clock()
            if self._live_flight(slot, now) is not None or now < slot.not_before:
                return
            flight = slot.flight = Flight(now)
        step = _Step(slot, key, flight, leads=True, force=False)
        loop: asyncio.AbstractEventLoop | None = None
        if in_async:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None  # trio: renew in a thread instead
        if loop is not None:
            # Set before the task runs: if the loop closes before it starts, the flight is
            # seen as orphaned instead of waited for.
            flight.loop = loop
            task = loop.create_task(self._lead_async(step, background=True))
            self._tasks.add(task)  # a strong reference, or the loop may drop the task
            task.add_done_callback(self._tasks.discard)
            return
        thread = threading.Thread(
            target=self._lead_sync,
            args=(step,),
            kwargs={"background": True},
            name=f"authkestra-{self.what.replace(' ', '-')}",
            daemon=True,
        )
        try:
            thread.start()
        except RuntimeError:  # no more threads: the next due caller tries again
            self._abandon(slot, flight)

    # -- outcomes --------------------------------------------------------------------------

    def _succeeded(self, slot: Slot[V], key: K, flight: Flight, entry: Entry[V]) -> None:
        with slot.lock:
            previous = slot.entry
            slot.entry = entry
            slot.generation += 1
            slot.failures = 0
            slot.not_before = float("-inf")
            slot.last_error = None
            if slot.flight is flight:  # a flight given up for lost may end after another began
                slot.flight = None
        flight.finish(entry.value)
        if self._on_obtained is not None:
            self._on_obtained(key, entry, previous)

    def _failed(
        self, slot: Slot[V], key: K, flight: Flight, error: AuthError, *, background: bool
    ) -> None:
        with slot.lock:
            slot.failures += 1
            slot.not_before = self._clock() + self._backoff(slot.failures, error)
            slot.last_error = error
            if slot.flight is flight:
                slot.flight = None
        flight.finish(error=error)
        if self._on_failed is not None:
            self._on_failed(key, error, background)

    @staticmethod
    def _abandon(slot: Slot[Any], flight: Flight) -> None:
        with slot.lock:
            if slot.flight is flight:
                slot.flight = None
        flight.finish(abandoned=True)

    # -- what owners may ask -----------------------------------------------------------------

    def current(self, key: K) -> Entry[V] | None:
        """The entry held for ``key``, usable or not (no fetch, no refresh)."""
        slot = self._slots.get(key)
        return slot.entry if slot is not None else None

    def fetch_pending(self, key: K) -> bool:
        """True when a fetch for ``key`` is in flight -- or was, and has just been given up
        for lost here: whoever started it still wants the value it never brought."""
        slot = self._slots.get(key)
        if slot is None:
            return False
        with slot.lock:
            if slot.flight is None:
                return False
            self._live_flight(slot, self._clock())
            return True

    def invalidate(self, key: K, matches: Callable[[V], bool] | None = None) -> V | None:
        """Drop the value held for ``key`` (only if ``matches`` it, when given); the dropped one."""
        slot = self._slots.get(key)
        if slot is None:
            return None
        with slot.lock:
            entry = slot.entry
            if entry is None or (matches is not None and not matches(entry.value)):
                return None
            slot.entry = None
            return entry.value

    def wait_idle(self, key: K, timeout: float) -> bool:
        """Block until no fetch for ``key`` is in flight; False on timeout."""
        slot = self._slots.get(key)
        flight = slot.flight if slot is not None else None
        return flight is None or flight.wait_sync(timeout)

    def __len__(self) -> int:
        return len(self._slots)
