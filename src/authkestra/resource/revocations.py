"""Revocation that reaches the API: the issuer's revocation list, kept fresh in the background.

A JWT is verified without asking its issuer, so a token revoked (or a token of a client
disabled) since it was issued would be accepted until it expires. With
``JWTVerifier(revocations=True)`` the verifier also holds the issuer's signed
revocation list (``GET /revocations`` of ``authkestra serve``, found through the
``revocation_list_endpoint`` of its metadata) and refuses every token it names -- by
``jti``, or by ``client_id`` for a disabled client -- cached tokens included:

- the list is fetched once before the first verification (a failure then is a
  ``NetworkError``/``ProviderError``: the API answers 503 rather than accept tokens
  it was asked to check), then again every ``refresh`` seconds by a background
  thread while requests keep using the one held (single flight and back-off from
  the refresh engine of the JWKS cache); each new list drops the cached tokens it
  names, so a cached token costs nothing more;
- a refresh that fails keeps the list held serving (stale-on-error) and is tried
  again after ``refresh`` seconds; a list older than its own ``exp`` is logged;
- the list's signature is checked with the issuer's keys (the verifier's JWKS cache),
  its ``typ``, ``iss`` and ``exp`` too; at most ``max_bytes`` of it are read;
- with ``redis=`` (a redis-py client of the server's Redis), a background thread
  listens on the server's channel and fetches the list the moment something is
  revoked: refusal within milliseconds instead of within ``refresh`` seconds.

Measured by ``bench/revocation_delay.py``: the delay from revoke to refusal, and the cost
of a cached verification with and without a list held.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._clock import Clock
from .._io.drivers import Drivers
from .._io.refresh import Entry, RefreshingCache
from .._jose.algorithms import ASYMMETRIC
from .._jose.compact import MalformedJWS, parse_compact
from .._jose.signing import verify_signature
from .._protocol.actions import Call, Operation
from .._protocol.context import ProtocolContext
from .._protocol.discovery import discover, get_document
from .._protocol.responses import raise_for_failure
from .._protocol.revocations import CHANNEL, METADATA_MEMBER, REVOCATIONS_TYP, client_digest
from .._protocol.urls import check_endpoint_url
from ..errors import AuthError, ConfigError, InvalidToken, MalformedResponse

if TYPE_CHECKING:
    from .access_token import AccessToken
    from .jwks import JWKSCache

__all__ = ["Revocations"]

logger = logging.getLogger("authkestra")

_KEY = "revocations"


class Revocations:
    """How a verifier follows its issuer's revocation list.

    Args:
        url: the list's URL; by default the ``revocation_list_endpoint`` of the
            issuer's metadata.
        refresh: seconds between two fetches (the most a revocation takes to reach
            this API without ``redis``).
        redis: a redis-py client of the server's Redis: fetch at once when the
            server says something was revoked.
        max_bytes: the most of the list read (about 30 bytes per revoked token).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        refresh: float = 5.0,
        redis: Any | None = None,
        max_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        if isinstance(refresh, bool) or not isinstance(refresh, (int, float)) or refresh < 0.5:
            raise ConfigError("revocations: refresh must be at least 0.5 seconds")
        if not isinstance(max_bytes, int) or max_bytes < 1024:
            raise ConfigError("revocations: max_bytes must be an int of at least 1024")
        self.url = url
        self.refresh = float(refresh)
        self.redis = redis
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"Revocations(url={self.url!r}, refresh={self.refresh})"


@dataclasses.dataclass(frozen=True)
class RevokedSet:
    """One list, as read: revoked token ids, digests of disabled clients' ids, and when it
    stops being current (wall clock)."""

    jtis: frozenset[str]
    clients: frozenset[str]
    #: Not part of what the list says: a list rendered anew with the same names is the same.
    expires_at: float = dataclasses.field(compare=False)

    def names(self, access: AccessToken) -> bool:
        """True if ``access`` is revoked, or of a disabled client."""
        if access.jwt_id in self.jtis:
            return True
        return (
            bool(self.clients)
            and access.client_id is not None
            and (client_digest(access.client_id) in self.clients)
        )


class RevocationWatch:
    """A verifier's copy of its issuer's revocation list (internal: ``JWTVerifier`` holds it).

    Fetched before the first verification; from then on a background thread fetches it
    every ``refresh`` seconds (and, with Redis, when the server says so), and each
    list that differs from the one held is handed to ``on_change`` (the verifier drops
    the cached tokens it names). The hot path -- a cached token -- pays nothing.
    """

    def __init__(
        self,
        options: Revocations,
        *,
        issuer: str,
        jwks: JWKSCache,
        drivers: Drivers,
        ctx: ProtocolContext,
        clock: Clock,
    ) -> None:
        if options.url is not None:
            check_endpoint_url(
                options.url, what="revocations url", allow_insecure_http=ctx.allow_insecure_http
            )
        self.options = options
        self.issuer = issuer
        self.url = options.url
        self.jwks = jwks
        self.ctx = dataclasses.replace(ctx, max_body=options.max_bytes)
        self.clock = clock
        self.current: RevokedSet | None = None
        #: Bumped with each new list: a token verified across a change is checked again.
        self.generation = 0
        self.on_change: Callable[[RevokedSet], None] | None = None
        self.fetches = 0
        longest = ctx.policy.total_timeout + 5
        self.store: RefreshingCache[str, RevokedSet] = RefreshingCache(
            fetch=self._fetch,
            sync_driver=drivers.sync,
            async_driver=drivers.async_,
            clock=clock.monotonic,
            wait_timeout=longest,
            max_flight=longest,
            backoff=lambda _failures, _error: options.refresh,
            what="revocation list request",
            on_failed=self._failed,
        )
        self._started = False
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._pubsub: Any = None

    # -- what the verifier calls -------------------------------------------------------

    def refuse(self, access: AccessToken) -> None:
        """InvalidToken if the list held names ``access`` (by jti, or its client)."""
        current = self.current
        if current is None or not current.names(access):
            return
        if access.jwt_id in current.jtis:
            raise InvalidToken("the token was revoked")
        raise InvalidToken("the token's client is disabled at the issuer")

    def ensure_sync(self) -> None:
        """Hold a list (fetched now if there is none yet) and keep it fresh from now on."""
        if self.current is None:
            self._take(self.store.get_sync(_KEY, stale_ok=True))
            self._start()

    async def ensure_async(self) -> None:
        """:meth:`ensure_sync` for coroutines."""
        if self.current is None:
            self._take(await self.store.get_async(_KEY, stale_ok=True))
            self._start()

    def close(self) -> None:
        """Stop the background fetches (and listening on Redis)."""
        self._stop.set()
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.close()

    # -- keeping it fresh --------------------------------------------------------------

    def _take(self, revoked: RevokedSet) -> None:
        same = revoked == self.current
        self.current = revoked  # a later expiry, at least
        if same:
            return  # nothing new to refuse: the cached tokens stay
        self.generation += 1
        if self.on_change is not None:
            self.on_change(revoked)

    def _refresh_now(self) -> None:
        with contextlib.suppress(AuthError):  # logged by the engine; the list held serves on
            self._take(self.store.get_sync(_KEY, force=True, stale_ok=True))
        current = self.current
        if current is not None and self.clock.now().timestamp() > current.expires_at:
            logger.warning(
                "authkestra: the revocation list of %s has expired and cannot be refreshed;"
                " still refusing what it names",
                self.issuer,
            )

    def _start(self) -> None:
        with self._start_lock:
            if self._started:
                return
            self._started = True
        poll = threading.Thread(target=self._poll, name="authkestra-revocations", daemon=True)
        poll.start()
        if self.options.redis is not None:
            listen = threading.Thread(
                target=self._listen, name="authkestra-revocations-redis", daemon=True
            )
            listen.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.options.refresh):
            self._refresh_now()

    def _listen(self) -> None:
        redis: Any = self.options.redis
        try:
            pubsub = self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(CHANNEL)
            for message in pubsub.listen():
                if self._stop.is_set():
                    return
                if message.get("type") == "message":
                    self._refresh_now()
        except Exception as exc:
            if self._stop.is_set():
                return  # closed
            logger.warning(
                "authkestra: listening for revocations on Redis stopped (%s); the list is"
                " still fetched every %g s",
                type(exc).__name__,
                self.options.refresh,
            )

    # -- fetching (sans-I/O) -----------------------------------------------------------

    def _fetch(self, _key: str, _force: bool) -> Operation[Entry[RevokedSet]]:
        self.fetches += 1
        url = self.url
        ctx = self.ctx
        if url is None:
            metadata = yield from discover(self.issuer, ctx, require=METADATA_MEMBER)
            url = self.url = metadata.endpoint
        response = yield from get_document(
            url, ctx, what=f"revocation list request {url}", accept="application/jwt"
        )
        what = f"the revocation list {url}"
        raise_for_failure(response, ctx.redact, what=what)
        status = response.status_code

        def malformed(problem: str) -> MalformedResponse:
            return MalformedResponse(f"{what} {problem}", status_code=status)

        if response.truncated:
            raise malformed(f"is longer than {ctx.max_body} bytes (max_bytes)")
        try:
            jws = parse_compact(response.body.decode("ascii"), max_length=ctx.max_body)
        except (UnicodeDecodeError, MalformedJWS):
            raise malformed("is not a signed JWT") from None
        header, claims = jws.header, jws.claims
        alg, kid = header.get("alg"), header.get("kid")
        if header.get("typ") != REVOCATIONS_TYP or alg not in ASYMMETRIC:
            raise malformed(f"is not a JWT of type {REVOCATIONS_TYP} with an asymmetric alg")
        if kid is not None and not isinstance(kid, str):
            raise malformed("has a kid that is not a string")
        key = yield Call(lambda: self.jwks.key_sync(kid, alg))
        if not verify_signature(alg, jws.signing_input, jws.signature, key):
            raise malformed("has a signature that is not the issuer's")
        if claims.get("iss") != self.issuer:
            raise malformed("is not the issuer's (iss)")
        exp = claims.get("exp")
        jtis, clients = claims.get("revoked_jtis"), claims.get("disabled_clients")
        if (
            not isinstance(exp, int)
            or not isinstance(jtis, list)
            or not isinstance(clients, list)
            or not all(isinstance(v, str) for v in (*jtis, *clients))
        ):
            raise malformed("lacks exp, revoked_jtis or disabled_clients")
        if exp <= self.clock.now().timestamp():
            raise malformed("has expired (exp): the issuer serves an old list")
        revoked = RevokedSet(frozenset(jtis), frozenset(clients), float(exp))
        refresh_at = self.clock.monotonic() + self.options.refresh
        return Entry(revoked, refresh_at, float("inf"))  # kept until replaced

    def _failed(self, _key: str, error: AuthError, _background: bool) -> None:
        logger.warning(
            "authkestra: fetching the revocation list of %s failed: %s", self.issuer, error
        )


def for_verifier(
    revocations: bool | str | Revocations | None,
    *,
    issuer: str,
    jwks: JWKSCache,
    drivers: Drivers,
    ctx: ProtocolContext,
    clock: Clock,
) -> RevocationWatch | None:
    """The watch a ``JWTVerifier(revocations=...)`` argument asks for, or None."""
    if revocations is None or revocations is False:
        return None
    if revocations is True:
        options = Revocations()
    elif isinstance(revocations, str):
        options = Revocations(revocations)
    elif isinstance(revocations, Revocations):
        options = revocations
    else:
        raise ConfigError("revocations is True, the list's URL, or a Revocations")
    return RevocationWatch(options, issuer=issuer, jwks=jwks, drivers=drivers, ctx=ctx, clock=clock)
