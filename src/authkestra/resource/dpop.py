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
RFC 7638 thumbprint is ``cnf.jkt``. Server nonces (§8) are not used.
"""

from __future__ import annotations

import collections
import hmac
import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .._clock import Clock, SystemClock
from .._protocol.dpop import access_token_hash
from ..errors import ConfigError, InvalidToken
from ._jwt import parse_compact
from .access_token import AccessToken
from .jwks import ALGORITHM_KEYS

__all__ = [
    "DPOP_ALGORITHMS",
    "DPoPChecker",
    "InvalidDPoPProof",
    "ReplayCache",
    "bound_thumbprint",
    "check_dpop",
]

#: Algorithms a proof may be signed with: asymmetric only.
DPOP_ALGORITHMS = ("ES256", "EdDSA", "Ed25519", "RS256", "PS256")
#: JWK members that only a private (or symmetric) key has.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MAX_PROOF_LENGTH = 8192
_MAX_JTI_LENGTH = 256
_MIN_RSA_BITS = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidDPoPProof(InvalidToken):
    """The DPoP proof is missing, malformed or wrong for this request (RFC 9449 §7.1).

    A resource server answers 401 with ``WWW-Authenticate: DPoP error="invalid_dpop_proof"``.
    """

    error = "invalid_dpop_proof"


class ReplayCache:
    """The ``jti`` of proofs seen lately, each forgotten when its proof could no longer pass.

    Bounded: past ``max_entries`` the oldest entry is dropped (a proof that old is,
    with the default window, a few seconds from stale anyway).
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
            while len(self._seen) >= self.max_entries:
                self._seen.popitem(last=False)
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


def _normal_url(url: str) -> tuple[str, str, int | None, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidDPoPProof("the DPoP proof's htu is not a URL") from None
    scheme = parts.scheme.lower()
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    return scheme, (parts.hostname or "").lower(), port, parts.path or "/"


def _public_key(jwk: object, alg: str) -> Any:
    from joserfc.jwk import ECKey, OKPKey, RSAKey

    if not isinstance(jwk, dict):
        raise InvalidDPoPProof("the DPoP proof has no jwk header")
    if _PRIVATE_MEMBERS.intersection(jwk):
        raise InvalidDPoPProof("the DPoP proof's jwk is not a public key")
    kty, curves = ALGORITHM_KEYS[alg]
    if jwk.get("kty") != kty or (curves is not None and jwk.get("crv") not in curves):
        raise InvalidDPoPProof(f"the DPoP proof's jwk is not a key for {alg}")
    if "alg" in jwk and jwk["alg"] != alg:
        raise InvalidDPoPProof("the DPoP proof's jwk is for another algorithm")
    if kty == "RSA":
        n = jwk.get("n")
        if not isinstance(n, str) or len(n) * 6 < _MIN_RSA_BITS - 6:
            raise InvalidDPoPProof("the DPoP proof's RSA key is too small")
    key_types: dict[str, Any] = {"EC": ECKey, "OKP": OKPKey, "RSA": RSAKey}
    key_type = key_types[kty]
    try:
        return key_type.import_key(jwk)
    except Exception:
        raise InvalidDPoPProof("the DPoP proof's jwk is not a valid key") from None


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidDPoPProof(f"the DPoP proof's {name} is missing or not a number")
    return float(value)


def check_dpop(
    access_token: AccessToken,
    raw_token: str,
    proof: str | None,
    *,
    method: str,
    url: str,
    now: float,
    replay: ReplayCache,
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
        parsed = parse_compact(proof, max_length=_MAX_PROOF_LENGTH)
    except InvalidDPoPProof:
        raise
    except InvalidToken as exc:
        raise InvalidDPoPProof(
            "the DPoP proof is malformed: " + exc.message.replace("the token", "it")
        ) from None
    header, claims = parsed.header, parsed.claims

    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() != "dpop+jwt":
        raise InvalidDPoPProof("the DPoP proof's typ is not dpop+jwt")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in set(algorithms) or alg not in ALGORITHM_KEYS:
        raise InvalidDPoPProof(f"the DPoP proof's algorithm {str(alg)[:20]!r} is not accepted")
    key = _public_key(header.get("jwk"), alg)
    from .._jose import jws_registry

    try:
        valid = (
            jws_registry(alg).algorithms[alg].verify(parsed.signing_input, parsed.signature, key)
        )
    except Exception:
        valid = False
    if not valid:
        raise InvalidDPoPProof("the DPoP proof's signature is not valid")

    if claims.get("htm") != method.upper():
        raise InvalidDPoPProof("the DPoP proof is for another HTTP method (htm)")
    htu = claims.get("htu")
    if not isinstance(htu, str) or _normal_url(htu) != _normal_url(url):
        raise InvalidDPoPProof("the DPoP proof is for another URL (htu)")
    iat = _number(claims, "iat")
    if iat > now + leeway:
        raise InvalidDPoPProof("the DPoP proof was made in the future (iat)")
    if iat < now - max_age - leeway:
        raise InvalidDPoPProof("the DPoP proof is too old (iat)")
    ath = claims.get("ath")
    if not isinstance(ath, str) or not hmac.compare_digest(
        ath.encode("ascii", "replace"), access_token_hash(raw_token).encode("ascii")
    ):
        raise InvalidDPoPProof("the DPoP proof is for another access token (ath)")
    if not hmac.compare_digest(str(key.thumbprint()).encode(), jkt.encode("ascii", "replace")):
        raise InvalidDPoPProof("the DPoP proof's key is not the one the token is bound to")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI_LENGTH:
        raise InvalidDPoPProof("the DPoP proof's jti is missing or malformed")
    # Last, so that a proof refused for another reason does not use up its jti.
    if not replay.add(jti, now=now, expires_at=iat + max_age + 2 * leeway):
        raise InvalidDPoPProof("the DPoP proof was used before (jti)")
    return jkt


class DPoPChecker:
    """:func:`check_dpop` with its settings, a clock and the replay set it needs.

    ::

        checker = DPoPChecker()
        checker.check(access, raw_token, request.headers.get("DPoP"), method="GET", url=url)
    """

    def __init__(
        self,
        *,
        max_age: float = 60.0,
        leeway: float = 5.0,
        algorithms: Iterable[str] = DPOP_ALGORITHMS,
        max_remembered_proofs: int = 100_000,
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
        self.replay = ReplayCache(max_remembered_proofs)

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
            url=url,
            now=self.clock.now().timestamp(),
            replay=self.replay,
            max_age=self.max_age,
            leeway=self.leeway,
            algorithms=self.algorithms,
        )

    def __repr__(self) -> str:
        return f"DPoPChecker(max_age={self.max_age!r}, algorithms={list(self.algorithms)!r})"
