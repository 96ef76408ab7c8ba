"""Federated client authentication: a trusted issuer's JWT as a client's assertion.

A workload proves who it is with what its platform issued it -- a Kubernetes
service-account token, a GitHub Actions OIDC token, a SPIFFE JWT-SVID -- sent as
an RFC 7523 ``client_assertion`` together with its ``client_id``. The client is
registered with no secret and no key: it is bound to a trusted issuer (by name)
and a subject. The assertion must be:

1. from that issuer (``iss``, exactly the registered URL) about that subject
   (``sub``, exactly);
2. for this server: ``aud`` holds the issuer's configured audience or, by
   default, this server's issuer identifier or token endpoint;
3. current: ``exp`` required and not past, ``nbf``/``iat`` not in the future, no
   longer-lived than the issuer's maximum (``exp - iat``, and ``exp - now``),
   with the server's leeway for clock skew;
4. signed, with an asymmetric algorithm the key fits, by a key of the issuer's
   key set -- fetched from its ``jwks_uri`` (``--jwks-url``, or its metadata's)
   through the JWKS cache verifiers use (refreshed ahead, unknown kids refetched
   at most once per cooldown, stale keys kept serving through an outage) over a
   transport that refuses private and loopback addresses (SSRF);
5. new: a ``jti`` is accepted once per client until the assertion expires. An
   assertion without a ``jti`` (Kubernetes before 1.29 issues none) cannot be
   told from a replay: it is accepted until it expires, like the platform's own
   use of it -- keep its lifetime short and its audience this server's only.

Every refusal is the one ``invalid_client`` the other client authentications get;
what was wrong goes to the audit log (never the assertion).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import httpx

from .._clock import SystemClock
from .._jose.algorithms import ASYMMETRIC
from .._jose.claims import ClaimError, TimeRules
from .._jose.compact import CompactJWS
from .._jose.signing import verify_signature
from ..errors import AuthError
from ..resource._issuer_io import issuer_io
from ..resource.jwks import JWKSCache
from .jwks_uri import AsyncGuardedTransport, GuardedTransport
from .oauth_request import ClientAssertion
from .shared_state import AssertionReplayCache
from .store import ClientRecord, Store, TrustedIssuerRecord

__all__ = ["FederatedRefusal", "TrustedIssuers", "forget_issuers"]

logger = logging.getLogger("authkestra.server")

MAX_JTI_CHARS = 256
#: Refetch a key set for an unknown kid at most this often per issuer.
KID_COOLDOWN = 10.0
FETCH_TIMEOUT = httpx.Timeout(5.0)
MAX_FETCH_BYTES = 64 * 1024


#: Every instance of this process: an issuer added or removed here is seen at once.
_ALL: weakref.WeakSet[TrustedIssuers] = weakref.WeakSet()


def forget_issuers() -> None:
    """Read the trusted issuers from the store again, in every part of this process."""
    for issuers in list(_ALL):
        issuers.forget()


class FederatedRefusal(Exception):
    """Why a federated assertion is refused: for the audit log, never for the caller."""


class TrustedIssuers:
    """The trusted issuers (read from the store, briefly cached) and their key sets."""

    def __init__(
        self,
        store: Store,
        *,
        server_issuer: str,
        token_endpoint: str,
        replay: AssertionReplayCache,
        default_max_lifetime: int,
        leeway: int,
        cache_seconds: float,
        keys_max_age: float,
        allow_insecure: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.audiences = (server_issuer, token_endpoint)
        self.replay = replay
        self.default_max_lifetime = default_max_lifetime
        self.leeway = leeway
        self.cache_seconds = cache_seconds
        self.keys_max_age = max(keys_max_age, KID_COOLDOWN)
        self.allow_insecure = allow_insecure
        self.clock = clock
        self._all: tuple[float, dict[str, TrustedIssuerRecord]] | None = None
        self._key_sets: dict[tuple[str, str, str | None], JWKSCache] = {}
        self._lock = threading.Lock()
        _ALL.add(self)

    # -- the issuers -----------------------------------------------------------------------

    def _records(self) -> dict[str, TrustedIssuerRecord]:
        """Every trusted issuer by name: read from the store, kept ``cache_seconds``."""
        now = time.monotonic()
        held = self._all
        if held is not None and now - held[0] < self.cache_seconds:
            return held[1]
        records = {record.name: record for record in self.store.issuers()}
        self._all = (now, records)
        return records

    def issuer(self, name: str) -> TrustedIssuerRecord | None:
        return self._records().get(name)

    def issuer_of(self, iss: object) -> TrustedIssuerRecord | None:
        """The trusted issuer whose tokens carry ``iss``, if one is."""
        if not isinstance(iss, str):
            return None
        return next((r for r in self._records().values() if r.issuer == iss), None)

    def forget(self) -> None:
        """Read the issuers from the store again (one was just added or removed)."""
        self._all = None

    def key_set(self, record: TrustedIssuerRecord) -> JWKSCache:
        """The issuer's key set cache, made on first use and kept while its URLs stay."""
        place = (record.name, record.issuer, record.jwks_url)
        found = self._key_sets.get(place)
        if found is None:
            with self._lock:
                found = self._key_sets.get(place)
                if found is None:
                    found = self._key_sets[place] = self._new_key_set(record)
        return found

    def _new_key_set(self, record: TrustedIssuerRecord) -> JWKSCache:
        clock = SystemClock()
        insecure = self.allow_insecure
        # The verifiers' way of talking to an issuer, over the SSRF-guarded transport;
        # redirects are not followed: each hop would escape the address check.
        ctx, drivers = issuer_io(
            clock=clock,
            timeout=FETCH_TIMEOUT,
            max_body=MAX_FETCH_BYTES,
            allow_insecure_http=insecure,
            http_client=httpx.Client(
                transport=GuardedTransport(allow_insecure=insecure), follow_redirects=False
            ),
            async_http_client=httpx.AsyncClient(
                transport=AsyncGuardedTransport(allow_insecure=insecure), follow_redirects=False
            ),
        )
        return JWKSCache(
            issuer=record.issuer,
            jwks_url=record.jwks_url,
            drivers=drivers,
            ctx=ctx,
            clock=clock,
            max_age=self.keys_max_age,
            cooldown=KID_COOLDOWN,
        )

    # -- the check -------------------------------------------------------------------------

    def check(self, client: ClientRecord, assertion: ClientAssertion) -> None:
        """Accept ``assertion`` for ``client`` (bound to a trusted issuer), or
        :class:`FederatedRefusal` saying why (blocking: it may fetch the issuer's keys)."""
        name = client.federated_issuer
        record = self.issuer(name) if name is not None else None
        if record is None:
            raise FederatedRefusal(f"trusted issuer {name!r} not registered")
        claims = assertion.claims
        if claims.get("iss") != record.issuer:
            raise FederatedRefusal(f"assertion not issued by trusted issuer {record.name!r}")
        if claims.get("sub") != client.federated_subject:
            raise FederatedRefusal("assertion subject is not the client's")
        exp = self.verify(record, assertion.jws)
        jti = claims.get("jti")
        if jti is None:
            return  # nothing to remember it by: see the module docstring
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
            raise FederatedRefusal(f"assertion jti is not a string of 1-{MAX_JTI_CHARS} characters")
        if not self.replay.first_use(client.client_id, jti, exp + self.leeway):
            raise FederatedRefusal("assertion replayed (its jti is spent)")

    def verify(self, record: TrustedIssuerRecord, jws: CompactJWS) -> float:
        """A token of ``record`` checked -- audience, times, signature -- and its ``exp``;
        else :class:`FederatedRefusal` (blocking: it may fetch the issuer's keys)."""
        self._check_audience(record, jws.claims.get("aud"))
        exp = self._check_times(record, jws.claims)
        self._check_signature(record, jws)
        return exp

    def _check_audience(self, record: TrustedIssuerRecord, aud: Any) -> None:
        wanted = (record.audience,) if record.audience else self.audiences
        given = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(value, str) and value in wanted for value in given):
            raise FederatedRefusal(f"assertion aud is not {' or '.join(wanted)}")

    def _check_times(self, record: TrustedIssuerRecord, claims: dict[str, Any]) -> float:
        longest = record.max_lifetime or self.default_max_lifetime
        rules = TimeRules(leeway=self.leeway, max_ahead=longest)
        try:
            exp, iat = rules.check(claims, self.clock())
        except ClaimError as exc:
            raise FederatedRefusal(exc.describe("the assertion")) from None
        assert exp is not None  # required by the rules
        if iat is not None and exp - iat > longest:
            raise FederatedRefusal(f"assertion lives longer than {longest} s (exp - iat)")
        return float(exp)

    def _check_signature(self, record: TrustedIssuerRecord, jws: CompactJWS) -> None:
        alg = jws.header.get("alg")
        kid = jws.header.get("kid")
        if not isinstance(alg, str) or alg not in ASYMMETRIC:
            raise FederatedRefusal(f"assertion alg {alg!r} is not an asymmetric signature")
        if kid is not None and not isinstance(kid, str):
            raise FederatedRefusal("assertion kid is not a string")
        try:
            key = self.key_set(record).key_sync(kid, alg)
        except AuthError as exc:  # no such key, or the issuer's keys cannot be had
            raise FederatedRefusal(f"no key of {record.name!r} for it: {exc}") from None
        if not verify_signature(alg, jws.signing_input, jws.signature, key):
            raise FederatedRefusal("bad assertion signature")
