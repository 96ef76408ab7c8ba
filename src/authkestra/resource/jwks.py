"""The issuer's signing keys: fetched once, refreshed on a bounded schedule, never hammered.

- The key set is fetched on first use (from ``jwks_url``, or from the
  ``jwks_uri`` of the issuer's metadata) and kept for ``max_age`` seconds, less
  if the response's ``Cache-Control: max-age`` says so.
- A token whose ``kid`` is not in the set triggers a refetch -- but at most one
  per ``cooldown`` seconds, so tokens with random ``kid`` values cannot make us
  hammer the issuer.
- When the set is due for its refresh, the keys we have keep serving while it is
  fetched in the background (a thread for blocking callers, a task on the running
  asyncio loop for coroutines): no request waits on a refresh. When the refresh
  fails, they keep serving (an issuer outage does not take the API down) and the
  refresh is tried again after ``cooldown``. Only a request with no usable key
  (the first one, or one whose ``kid`` is new) waits for a fetch.
- Every fetch has timeouts and a size limit, and one fetch serves every
  concurrent caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import threading
from typing import Any

from .._clock import Clock
from .._jose.algorithms import PRIVATE_MEMBERS, fits
from .._jose.keys import Key, UnusableKey, import_public_jwk
from .._json import parse_json_object
from .._protocol.actions import HttpRequest, Operation
from .._protocol.context import ProtocolContext
from .._protocol.discovery import discover
from .._protocol.responses import raise_for_failure
from .._protocol.retry import send_with_retries
from ..errors import AuthError, InvalidToken, MalformedResponse, NetworkError
from ..flow._drivers import Drivers
from ..flow._single_flight import Flight
from ..flow._token_manager import fresh_copy

__all__ = ["JWKSCache", "KeySet"]

logger = logging.getLogger("authkestra")

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class _Entry:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    key: Key


class KeySet:
    """Parsed public verification keys. Unusable keys are skipped, never fatal."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        raw_keys = jwks.get("keys")
        if not isinstance(raw_keys, list):
            raise ValueError("the JWKS has no 'keys' array")
        self.entries: list[_Entry] = []
        for raw in raw_keys[:100]:
            entry = self._parse(raw)
            if entry is not None:
                self.entries.append(entry)
        # A kid may name several keys (of other types: RFC 7517 §4.5); the first one that
        # fits the token's algorithm wins, in the list order.
        self._by_kid: dict[str, list[_Entry]] = {}
        for entry in self.entries:
            if entry.kid is not None:
                self._by_kid.setdefault(entry.kid, []).append(entry)
        #: (kid, alg) -> the key found for it. Only keys found are remembered, so its size is
        #: bounded by the keys and algorithms there are, whatever kids tokens carry.
        self._found: dict[tuple[str | None, str], Key] = {}

    @staticmethod
    def _parse(raw: Any) -> _Entry | None:
        if not isinstance(raw, dict) or raw.get("use") not in (None, "sig"):
            return None
        # Only the public part: an issuer that publishes a private key by mistake still
        # has its tokens verified (the private members are never read).
        public = {k: v for k, v in raw.items() if k not in PRIVATE_MEMBERS or k == "k"}
        try:
            key = import_public_jwk(public)  # "oct" keys never: HS256 forgeries would pass
        except UnusableKey:
            return None
        kid, alg, crv = raw.get("kid"), raw.get("alg"), raw.get("crv")
        return _Entry(
            kid if isinstance(kid, str) else None,
            str(raw["kty"]),
            crv if isinstance(crv, str) else None,
            alg if isinstance(alg, str) else None,
            key,
        )

    def find(self, kid: str | None, alg: str) -> Key | None:
        """The key for ``kid`` that can verify ``alg``; without a kid, the only such key."""
        found = self._found.get((kid, alg))
        if found is None:
            found = self._find(kid, alg)
            if found is not None:
                self._found[(kid, alg)] = found
        return found

    def _fitting(self, kid: str | None, alg: str) -> list[_Entry]:
        entries = self.entries if kid is None else self._by_kid.get(kid, [])
        return [e for e in entries if fits(alg, e.kty, e.crv, e.alg)]

    def _find(self, kid: str | None, alg: str) -> Key | None:
        fitting = self._fitting(kid, alg)
        if kid is not None:
            return fitting[0].key if fitting else None
        return fitting[0].key if len(fitting) == 1 else None  # no kid: only if it is unique

    def missing(self, kid: str | None, alg: str) -> InvalidToken:
        """Why :meth:`find` has no key for ``kid`` and ``alg``, as the error to raise."""
        if kid is None:
            if self._fitting(None, alg):
                return InvalidToken(
                    f"the token has no kid and the issuer's key set has several keys for {alg}"
                )
            return InvalidToken(f"the issuer's key set has no key for {alg}")
        if kid in self._by_kid:
            return InvalidToken(
                f"the token's key (kid) is in the issuer's key set, but not as a key for {alg}"
            )
        return InvalidToken("the token's key (kid) is not in the issuer's key set")

    def kids(self) -> list[str | None]:
        return [e.kid for e in self.entries]


class JWKSCache:
    """Keys of one issuer, shared by every verification (sync and async)."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks_url: str | None,
        drivers: Drivers,
        ctx: ProtocolContext,
        clock: Clock,
        max_age: float,
        cooldown: float,
    ) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.drivers = drivers
        self.ctx = ctx
        self.clock = clock
        self.max_age = max_age
        self.cooldown = cooldown
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._stale_at = float("-inf")
        self._last_attempt = float("-inf")
        #: The last fetch a request waited for (the first one, or one for a kid the set
        #: did not have): unknown kids are refetched at most once per cooldown after it.
        #: Scheduled refreshes do not count: one made a moment before the issuer rotates
        #: its key must not leave the new key's tokens refused for a cooldown.
        self._last_kid_fetch = float("-inf")
        self._last_error: AuthError | None = None
        self._flight: Flight | None = None
        self._flight_started = float("-inf")
        self._tasks: set[asyncio.Task[None]] = set()
        self.fetches = 0

    # -- deciding --------------------------------------------------------------------

    def _plan(self, kid: str | None, alg: str) -> tuple[Key | None, str]:
        """(key, what to do): "use" it, "wait" for a fetch, or "refresh" then use the key.

        Called when :meth:`_fresh` (the lock-free hot path) found no key.
        """
        with self._lock:
            now = self.clock.monotonic()
            if self._flight is not None and (
                self._flight.orphaned()
                or now - self._flight_started > self.ctx.policy.total_timeout + 5
            ):
                # Its leader is gone (we were forked, or its event loop closed or stopped
                # running it): past the longest a fetch can take, nobody will finish it.
                self._flight.finish(abandoned=True)
                self._flight = None
                self._last_attempt = self._last_kid_fetch = float("-inf")
            cooled = now - self._last_attempt >= self.cooldown
            if self._keys is None:
                if not cooled and self._last_error is not None and self._flight is None:
                    raise fresh_copy(self._last_error)
                return None, "wait"
            key = self._keys.find(kid, alg)
            if key is None:
                if now - self._last_kid_fetch >= self.cooldown or self._flight is not None:
                    return None, "wait"
                raise self._keys.missing(kid, alg)
            if now >= self._stale_at and cooled and self._flight is None:
                return key, "refresh"
            return key, "use"

    def _join(self, *, waited_for: bool) -> tuple[Flight, bool]:
        with self._lock:
            if self._flight is not None:
                return self._flight, False
            self._flight = Flight()
            self._last_attempt = self._flight_started = self.clock.monotonic()
            if waited_for:
                self._last_kid_fetch = self._last_attempt
            return self._flight, True

    def _done(
        self,
        flight: Flight,
        keys: KeySet | None,
        max_age: float | None,
        error: AuthError | None,
        *,
        abandoned: bool = False,
    ) -> None:
        with self._lock:
            if keys is not None:
                self._keys = keys
                self._stale_at = self.clock.monotonic() + (
                    max_age if max_age is not None else self.max_age
                )
                self._last_error = None
            else:
                self._last_error = error
            if self._flight is flight:  # a flight given up for lost may end after another began
                self._flight = None
        flight.finish(keys, error, abandoned=abandoned)
        if error is not None:
            logger.warning("authkestra: fetching the JWKS of %s failed: %s", self.issuer, error)

    def _after_fetch(self, kid: str | None, alg: str) -> Key:
        with self._lock:
            keys, error = self._keys, self._last_error
        if keys is None:
            if error is not None:
                raise fresh_copy(error)
            # Not the token's fault: the fetch we waited for took too long.
            raise NetworkError(f"the keys of {self.issuer} could not be fetched in time")
        key = keys.find(kid, alg)
        if key is None:
            raise keys.missing(kid, alg)
        return key

    # -- getting a key -----------------------------------------------------------------

    def _fresh(self, kid: str | None, alg: str) -> Key | None:
        """The key from the current, unexpired set, without the lock (reading two attributes
        is atomic enough; a refresh racing with us only makes us use the previous set)."""
        keys = self._keys
        if keys is not None and self.clock.monotonic() < self._stale_at:
            return keys.find(kid, alg)
        return None

    def key_sync(self, kid: str | None, alg: str) -> Key:
        key = self._fresh(kid, alg)
        if key is not None:
            return key
        while True:
            key, action = self._plan(kid, alg)
            if action == "use":
                assert key is not None
                return key
            flight, leader = self._join(waited_for=action == "wait")
            if action == "refresh":
                assert key is not None
                if leader:
                    self._refresh_in_thread(flight)
                return key
            if leader:
                self._lead_sync(flight)
            else:
                flight.wait_sync(self.ctx.policy.total_timeout + 5)
                if flight.abandoned:
                    continue  # its leader was cancelled: fetch again ourselves
            return self._after_fetch(kid, alg)

    async def key_async(self, kid: str | None, alg: str) -> Key:
        key = self._fresh(kid, alg)
        if key is not None:
            return key
        while True:
            key, action = self._plan(kid, alg)
            if action == "use":
                assert key is not None
                return key
            flight, leader = self._join(waited_for=action == "wait")
            if action == "refresh":
                assert key is not None
                if leader and not self._refresh_on_loop(flight):
                    await self._lead_async(flight)  # no asyncio loop (trio): refresh here
                return key
            if leader:
                await self._lead_async(flight)
            else:
                await flight.wait_async(self.ctx.policy.total_timeout + 5)
                if flight.abandoned:
                    continue  # its leader was cancelled: fetch again ourselves
            return self._after_fetch(kid, alg)

    def _refresh_in_thread(self, flight: Flight) -> None:
        """Lead ``flight`` in a thread of its own; if none can be started, give it up."""
        thread = threading.Thread(
            target=self._lead_sync, args=(flight,), name="authkestra-jwks", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # no more threads: the next due request tries again
            self._done(flight, None, None, None, abandoned=True)

    def _refresh_on_loop(self, flight: Flight) -> bool:
        """Lead ``flight`` in a task of the running asyncio loop; False without one."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        # Set before the task runs: if the loop closes before it starts, the flight is
        # seen as orphaned (see _plan) instead of waited for.
        flight.loop = loop
        task = loop.create_task(self._lead_async(flight))
        self._tasks.add(task)  # a task nobody holds may be collected before it ends
        task.add_done_callback(self._tasks.discard)
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Block until no fetch is in flight (a background refresh included); False on timeout."""
        with self._lock:
            flight = self._flight
        return flight is None or flight.wait_sync(timeout)

    def _lead_sync(self, flight: Flight) -> None:
        try:
            keys, max_age = self.drivers.sync.run(self._fetch())
        except AuthError as exc:
            self._done(flight, None, None, exc)
        except BaseException:
            self._done(flight, None, None, None, abandoned=True)
            raise
        else:
            self._done(flight, keys, max_age, None)

    async def _lead_async(self, flight: Flight) -> None:
        with contextlib.suppress(RuntimeError):  # trio: no asyncio loop to close on us
            flight.loop = asyncio.get_running_loop()
        try:
            keys, max_age = await self.drivers.async_.run(self._fetch())
        except AuthError as exc:
            self._done(flight, None, None, exc)
        except BaseException:
            self._done(flight, None, None, None, abandoned=True)
            raise
        else:
            self._done(flight, keys, max_age, None)

    # -- fetching (sans-I/O) -------------------------------------------------------------

    def _fetch(self) -> Operation[tuple[KeySet, float | None]]:
        self.fetches += 1
        url = self.jwks_url
        if url is None:
            metadata = yield from discover(self.issuer, self.ctx, require="jwks_uri")
            url = self.jwks_url = metadata.endpoint
        ctx = self.ctx

        def request(deadline: float) -> HttpRequest:
            return HttpRequest(
                "GET",
                url,
                (("Accept", "application/json"), ("User-Agent", ctx.user_agent)),
                None,
                deadline,
                ctx.max_body,
            )

        response = yield from send_with_retries(
            request, ctx.policy, ctx.clock, what=f"JWKS request {url}"
        )
        what = f"the JWKS endpoint {url}"
        raise_for_failure(response, ctx.redact, what=what)
        if response.truncated:
            raise MalformedResponse(
                f"{what} sent more than {ctx.max_body} bytes", status_code=response.status_code
            )
        try:
            keys = KeySet(parse_json_object(response.body))
        except ValueError as exc:
            raise MalformedResponse(
                f"{what} sent an invalid JWKS: {exc}", status_code=response.status_code
            ) from None
        max_age = None
        match = _MAX_AGE.search(response.headers.get("cache-control", ""))
        if match:
            # Honour a shorter max-age, within reason; never longer than ours.
            max_age = min(self.max_age, max(self.cooldown, float(match.group(1))))
        return keys, max_age
