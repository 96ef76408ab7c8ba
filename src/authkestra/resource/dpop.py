"""DPoP on the resource server (RFC 9449 §7): the proof that comes with a bound access token.

A token whose claims hold ``cnf.jkt`` is bound to a key: it is only accepted with
a ``DPoP`` header carrying a fresh proof signed by that key, for this request.
:func:`check_dpop` checks one proof; :class:`DPoPChecker` holds the settings, the
clock and the replay set a server keeps between requests.

Checked (RFC 9449 §4.3, §7.1): one compact JWS; ``typ`` is ``dpop+jwt``; ``alg`` is
an asymmetric one from the allow-list (never ``none`` or HMAC); ``jwk`` is a public
key of the kind ``alg`` needs; the signature verifies with it; ``htm`` is the
request's method and ``htu`` its URL (without query and fragment, scheme and host
compared case-insensitively); ``iat`` is within ``max_age`` (plus ``leeway``); the
``jti`` was not seen before; ``ath`` is the hash of the access token; the key's
RFC 7638 thumbprint is ``cnf.jkt``. Server nonces (§8) are not used. The proof
is read by :func:`authkestra._protocol.dpop_proof.read_proof`, the reader the
token endpoint uses too; the replay set is this side's.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable, Mapping
from typing import Protocol
from urllib.parse import urlsplit

from .._clock import Clock, SystemClock
from .._protocol.dpop_proof import DPOP_PROOF_ALGS, ProofError, read_proof
from ..errors import AuthError, ConfigError, InvalidToken
from .access_token import AccessToken

__all__ = [
    "DPOP_ALGORITHMS",
    "DPoPChecker",
    "InvalidDPoPProof",
    "ReplayCache",
    "ReplaySetFull",
    "ReplayStore",
    "bound_thumbprint",
    "check_dpop",
]

#: Algorithms a proof may be signed with: asymmetric only.
DPOP_ALGORITHMS = DPOP_PROOF_ALGS


class InvalidDPoPProof(InvalidToken):
    """The DPoP proof is missing, malformed or wrong for this request (RFC 9449 §7.1).

    A resource server answers 401 with ``WWW-Authenticate: DPoP error="invalid_dpop_proof"``.
    """

    error = "invalid_dpop_proof"


class ReplayStore(Protocol):
    """Where the ``jti`` of accepted proofs are remembered: in memory, or shared.

    :class:`ReplayCache` serves one process; several processes or machines
    serving one API share :class:`~authkestra.resource.redis_replay.RedisReplayCache`,
    so a proof accepted by one is refused by all.
    """

    def add(self, jti: str, *, now: float, expires_at: float) -> bool:
        """Remember ``jti`` until ``expires_at``; False if it is remembered already."""
        ...


class ReplaySetFull(AuthError):
    """The replay set is full of proofs still in their window: none can be accepted now.

    Forgetting a live proof would let it be replayed, so a full set refuses instead;
    the integrations answer 503 (``temporarily_unavailable``).
    """


class ReplayCache:
    """The ``jti`` of proofs seen lately, each forgotten when its proof could no longer pass.

    Bounded: past ``max_entries`` proofs that are all still within their window,
    new proofs are refused (:class:`ReplaySetFull`) until the oldest expire --
    never accepted unchecked. Size it for the proofs an API sees per window.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ConfigError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, jti: str, *, now: float, expires_at: float) -> bool:
        """Remember ``jti`` until ``expires_at``; False if it is already remembered."""
        with self._lock:
            # Entries go in with a fixed window, so the oldest expire first.
            while self._seen:
                oldest, expiry = next(iter(self._seen.items()))
                if expiry > now:
                    break
                del self._seen[oldest]
            if jti in self._seen:
                return False
            if len(self._seen) >= self.max_entries:
                raise ReplaySetFull("too many DPoP proofs in the last minute: try again shortly")
            self._seen[jti] = expires_at
            return True


def bound_thumbprint(access_token: AccessToken) -> str | None:
    """``cnf.jkt`` of the token (None when it is not DPoP-bound); InvalidToken if malformed."""
    cnf = access_token.claims.get("cnf")
    if cnf is None:
        return None
    if not isinstance(cnf, Mapping):
        raise InvalidToken("the token's cnf claim is not an object")
    jkt = cnf.get("jkt")
    if jkt is None:
        return None
    if not isinstance(jkt, str) or not jkt:
        raise InvalidToken("the token's cnf.jkt is not a string")
    return jkt


def check_dpop(
    access_token: AccessToken,
    raw_token: str,
    proof: str | None,
    *,
    method: str,
    url: str,
    now: float,
    replay: ReplayStore,
    max_age: float = 60.0,
    leeway: float = 5.0,
    algorithms: Iterable[str] = DPOP_ALGORITHMS,
) -> str | None:
    """Check the DPoP proof sent with ``access_token``; its ``jkt`` (None: the token is unbound).

    A bound token (``cnf.jkt``) needs a valid proof for this ``method`` and ``url``:
    :class:`InvalidDPoPProof` says what is wrong with it. A proof sent with an
    unbound token is not checked (the caller decides whether that is allowed).
    """
    jkt = bound_thumbprint(access_token)
    if jkt is None:
        return None
    if proof is None:
        raise InvalidDPoPProof("the token is DPoP-bound and no DPoP proof was sent")
    try:
        checked = read_proof(
            proof,
            method=method,
            url=url,
            now=now,
            max_age=max_age + leeway,
            max_future=leeway,
            algorithms=algorithms,
            access_token=raw_token,
            jkt=jkt,
        )
    except ProofError as exc:
        raise InvalidDPoPProof(exc.reason) from None
    # Last, so that a proof refused for another reason does not use up its jti. Kept per
    # key: a client choosing its jti cannot spend another client's.
    expires_at = checked.iat + max_age + 2 * leeway
    if not replay.add(f"{jkt}:{checked.jti}", now=now, expires_at=expires_at):
        raise InvalidDPoPProof("the DPoP proof was used before (jti)")
    return jkt


class DPoPChecker:
    """:func:`check_dpop` with its settings, a clock and the replay set it needs.

    ::

        checker = DPoPChecker()
        checker.check(access, raw_token, request.headers.get("DPoP"), method="GET", url=url)

    ``replay``: where used proofs are remembered -- this process's memory by
    default (``max_remembered_proofs`` of them); a
    :class:`~authkestra.resource.redis_replay.RedisReplayCache` when several
    processes serve the API. ``public_origin``: the ``scheme://host[:port]``
    clients call the API at, when a proxy in front rewrites the scheme or the
    ``Host`` header: proofs' ``htu`` is then compared with that origin and the
    request's path.
    """

    def __init__(
        self,
        *,
        max_age: float = 60.0,
        leeway: float = 5.0,
        algorithms: Iterable[str] = DPOP_ALGORITHMS,
        max_remembered_proofs: int = 100_000,
        replay: ReplayStore | None = None,
        public_origin: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.algorithms = tuple(algorithms)
        for alg in self.algorithms:
            if alg not in DPOP_ALGORITHMS:
                raise ConfigError(
                    f"DPoP algorithm {alg!r} is not allowed: use {', '.join(DPOP_ALGORITHMS)}"
                )
        if max_age <= 0 or leeway < 0:
            raise ConfigError("max_age must be positive and leeway not negative")
        self.max_age = max_age
        self.leeway = leeway
        self.clock: Clock = clock or SystemClock()
        self.replay: ReplayStore = (
            replay if replay is not None else ReplayCache(max_remembered_proofs)
        )
        self.public_origin = _origin(public_origin) if public_origin is not None else None

    def check(
        self,
        access_token: AccessToken,
        raw_token: str,
        proof: str | None,
        *,
        method: str,
        url: str,
    ) -> str | None:
        """The token's ``jkt`` once its proof checks out (None: unbound); InvalidToken if not."""
        return check_dpop(
            access_token,
            raw_token,
            proof,
            method=method,
            url=self._public(url),
            now=self.clock.now().timestamp(),
            replay=self.replay,
            max_age=self.max_age,
            leeway=self.leeway,
            algorithms=self.algorithms,
        )

    def _public(self, url: str) -> str:
        """The URL as the client named it: the request's path on the public origin.

        The URL comes from :func:`~authkestra.resource.presentation.request_url`,
        whose host holds no ``/``, ``?`` or ``#``: its path is the request's.
        """
        if self.public_origin is None:
            return url
        parts = urlsplit(url)
        return f"{self.public_origin}{parts.path or '/'}"

    def __repr__(self) -> str:
        return f"DPoPChecker(max_age={self.max_age!r}, algorithms={list(self.algorithms)!r})"


def _origin(value: str) -> str:
    """``scheme://host[:port]`` from a public origin setting; ConfigError otherwise."""
    parts = urlsplit(value) if isinstance(value, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise ConfigError("public_origin is scheme://host[:port], e.g. https://api.example.com")
    return f"{parts.scheme}://{parts.netloc}"
