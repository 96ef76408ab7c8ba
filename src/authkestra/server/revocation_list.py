"""The revocation list: what APIs must refuse before it expires, published every few seconds.

A JWT access token is checked by an API without asking this server, so a revoked
token -- or a token of a client disabled since -- would be accepted until its
``exp``. ``GET /revocations`` publishes, signed by this server's key (a JWT of type
:data:`REVOCATIONS_TYP`, verified with the JWKS), the ``jti`` of every revoked token
still unexpired and the digests of the ids of disabled clients (:func:`client_digest`:
the list is public, and says which tokens to refuse, not which clients there are).
``JWTVerifier(revocations=True)`` fetches it every few seconds and refuses what it names.

The document is rendered at most once per :data:`RENDER_SECONDS` per instance (a
fleet of APIs polling it costs one store read per second), lives
:data:`LIFETIME` seconds, and is advertised as ``revocation_list_endpoint`` in the
server metadata. With Redis, each revocation and each client disabled is also
published on :data:`CHANNEL`, so verifiers subscribed to it fetch the list at once.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any

from .._protocol.revocations import CHANNEL, REVOCATIONS_TYP, client_digest
from .keys import KeyRing
from .store import Store

__all__ = ["LIFETIME", "RevocationPublisher", "announce"]

logger = logging.getLogger("authkestra.server")

#: How long a published list is good for: a verifier that cannot refresh it keeps
#: refusing what it names, and warns, once it is older.
LIFETIME = 300
#: The longest a rendered list is served from memory.
RENDER_SECONDS = 1.0


#: Every publisher of this process: a change made here (CLI, admin API) reaches them all.
_PUBLISHERS: weakref.WeakSet[RevocationPublisher] = weakref.WeakSet()


def announce(what: str) -> None:
    """A token was revoked or a client disabled: every publisher renders anew and nudges."""
    for publisher in list(_PUBLISHERS):
        publisher.changed(what)


class RevocationPublisher:
    """Renders the signed revocation list, and tells a fleet (Redis) when it changed."""

    def __init__(
        self, store: Store, keys: KeyRing, *, issuer: str, redis: Any | None = None
    ) -> None:
        self.store = store
        self.keys = keys
        self.issuer = issuer
        self.redis = redis
        self._rendered: tuple[float, bytes] | None = None
        self._lock = threading.Lock()
        _PUBLISHERS.add(self)

    def document(self) -> bytes:
        """The signed list, rendered at most once a second (blocking: it reads the store)."""
        held = self._rendered
        now = time.monotonic()
        if held is not None and now - held[0] < RENDER_SECONDS:
            return held[1]
        with self._lock:
            held = self._rendered
            if held is not None and time.monotonic() - held[0] < RENDER_SECONDS:
                return held[1]
            body = self._render().encode("ascii")
            self._rendered = (time.monotonic(), body)
            return body

    def _render(self) -> str:
        now = int(time.time())
        jtis = sorted(
            jti for jti, expires_at in self.store.revocations() if expires_at.timestamp() > now
        )
        clients = sorted(client_digest(client_id) for client_id in self.store.disabled_clients())
        claims = {
            "iss": self.issuer,
            "iat": now,
            "exp": now + LIFETIME,
            "revoked_jtis": jtis,
            "disabled_clients": clients,
        }
        return self.keys.sign(claims, typ=REVOCATIONS_TYP)

    def changed(self, what: str) -> None:
        """Something was revoked or disabled: render anew, and nudge the fleet."""
        self._rendered = None
        if self.redis is None:
            return
        try:
            self.redis.publish(CHANNEL, what[:64])
        except Exception as exc:  # a nudge: the list itself is the truth, fetched anyway
            logger.warning(
                "authkestra server: publishing a revocation on Redis failed (%s)",
                type(exc).__name__,
            )
