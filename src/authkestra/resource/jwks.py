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

import dataclasses
import logging
import re
import threading
from typing import Any

from .._clock import Clock
from .._io.drivers import Drivers
from .._io.refresh import Entry, RefreshingCache
from .._jose.algorithms import PRIVATE_MEMBERS, fits
from .._jose.keys import Key, UnusableKey, import_public_jwk
from .._json import parse_json_object
from .._protocol.actions import HttpRequest, Operation
from .._protocol.context import ProtocolContext
from .._protocol.discovery import discover
from .._protocol.responses import raise_for_failure
from .._protocol.retry import send_with_retries
from ..errors import AuthError, InvalidToken, MalformedResponse

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


#: The one key of a JWKS cache's refreshing store: an issuer has one key set.
_KEY_SET = "jwks"


class JWKSCache:
    """Keys of one issuer, shared by every verification (sync and async).

    The key set lives in a :class:`~authkestra._io.refresh.RefreshingCache`: one
    fetch in flight, refreshed ahead in the background after ``max_age``, kept
    serving when a refresh fails (tried again after ``cooldown``). What is this
    cache's own: a token whose ``kid`` the set lacks makes it fetch the set again
    -- at most once per ``cooldown`` after the last such fetch.
    """

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
        self.ctx = ctx
        self.clock = clock
        self.max_age = max_age
        self.cooldown = cooldown
        #: When a fetch a request waited for (the first one, or one for a kid the set did not
        #: have) last began: unknown kids are refetched at most once per cooldown after it.
        #: Scheduled refreshes do not count: one made a moment before the issuer rotates
        #: its key must not leave the new key's tokens refused for a cooldown.
        self._last_kid_fetch = float("-inf")
        self._lock = threading.Lock()
        self.fetches = 0
        longest = ctx.policy.total_timeout + 5
        self.store: RefreshingCache[str, KeySet] = RefreshingCache(
            fetch=self._fetch,
            sync_driver=drivers.sync,
            async_driver=drivers.async_,
            clock=clock.monotonic,
            wait_timeout=longest,
            max_flight=longest,
            backoff=lambda _failures, _error: cooldown,
            what="key set request",
            on_failed=self._failed,
        )

    @property
    def keys(self) -> KeySet | None:
        """The key set held now (fresh or not), or None before the first fetch."""
        entry = self.store.current(_KEY_SET)
        return entry.value if entry is not None else None

    # -- getting a key -----------------------------------------------------------------

    def key_sync(self, kid: str | None, alg: str) -> Key:
        """The issuer's key for a token's ``kid`` and ``alg``; InvalidToken if it has none."""
        keys = self.store.cached(_KEY_SET, in_async=False)
        key = keys.find(kid, alg) if keys is not None else None
        if key is None and self._may_fetch(keys):
            keys = self.store.get_sync(_KEY_SET, force=keys is not None, stale_ok=True)
        return key if key is not None else self._pick(keys, kid, alg)

    async def key_async(self, kid: str | None, alg: str) -> Key:
        """:meth:`key_sync` for coroutines."""
        keys = self.store.cached(_KEY_SET, in_async=True)
        key = keys.find(kid, alg) if keys is not None else None
        if key is None and self._may_fetch(keys):
            keys = await self.store.get_async(_KEY_SET, force=keys is not None, stale_ok=True)
        return key if key is not None else self._pick(keys, kid, alg)

    def _may_fetch(self, keys: KeySet | None) -> bool:
        """Whether a request may wait for a fetch: the first one, one in flight already (or
        lost), or a refetch for an unknown kid once the cooldown since the last has passed."""
        with self._lock:
            if self.store.fetch_pending(_KEY_SET):
                return True
            now = self.clock.monotonic()
            if keys is not None and now - self._last_kid_fetch < self.cooldown:
                return False
            self._last_kid_fetch = now
            return True

    @staticmethod
    def _pick(keys: KeySet | None, kid: str | None, alg: str) -> Key:
        assert keys is not None  # fetched, or the fetch raised: no key set is no answer
        key = keys.find(kid, alg)
        if key is None:
            raise keys.missing(kid, alg)
        return key

    def wait_idle(self, timeout: float) -> bool:
        """Block until no fetch is in flight (a background refresh included); False on timeout."""
        return self.store.wait_idle(_KEY_SET, timeout)

    def _failed(self, _key: str, error: AuthError, _background: bool) -> None:
        logger.warning("authkestra: fetching the JWKS of %s failed: %s", self.issuer, error)

    # -- fetching (sans-I/O) -------------------------------------------------------------

    def _fetch(self, _key: str, _force: bool) -> Operation[Entry[KeySet]]:
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
        max_age = self.max_age
        match = _MAX_AGE.search(response.headers.get("cache-control", ""))
        if match:
            # Honour a shorter max-age, within reason; never longer than ours.
            max_age = min(self.max_age, max(self.cooldown, float(match.group(1))))
        # Kept until replaced: a refresh that fails leaves these keys serving.
        return Entry(keys, self.clock.monotonic() + max_age, float("inf"))
