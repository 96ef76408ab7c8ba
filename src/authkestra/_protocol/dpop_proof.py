"""Reading a DPoP proof (RFC 9449 §4.2, §4.3): one strict check for token endpoint and APIs.

Sans-I/O: the caller hands in the ``DPoP`` header value, the request it came
with (method and URL), the time, and whatever else it requires: the access
token (then ``ath`` must match), the thumbprint the token is bound to, a nonce
check. The answer is the :class:`CheckedProof`, or :class:`ProofError` whose
reason fits an ``error_description``. Replay sets and nonce issuance stay
with the callers: they are state, kept differently on each side.

Checked: one compact JWS, read by the strict reader of
:mod:`authkestra._jose.compact` (base64url without padding, strict JSON
objects, no ``crit``); ``typ`` is ``dpop+jwt``;
``alg`` is an asymmetric algorithm from the allow-list, never ``none`` or
HMAC; ``jwk`` is a public key of the type and curve ``alg`` needs (RSA of
2048 bits or more); the signature verifies with it (joserfc's algorithms);
``jti`` is present; ``htm`` is the request's method and ``htu`` its URL, both
sides put through :func:`normalized_htu`; ``iat`` is within the window; then
``ath``, the key's thumbprint and the nonce when the caller asks for them.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .._jose.algorithms import ALGORITHMS, PRIVATE_MEMBERS, fits
from .._jose.claims import ClaimError, TimeRules
from .._jose.compact import CompactJWS, MalformedJWS, parse_compact
from .dpop import access_token_hash

__all__ = [
    "DPOP_PROOF_ALGS",
    "MAX_JTI_LENGTH",
    "MAX_PROOF_LENGTH",
    "CheckedProof",
    "ProofError",
    "normalized_htu",
    "read_proof",
]

#: Algorithms a proof may be signed with: asymmetric only.
DPOP_PROOF_ALGS = ("ES256", "EdDSA", "Ed25519", "RS256", "PS256")
#: A proof longer than this is refused before anything is decoded.
MAX_PROOF_LENGTH = 8192
MAX_JTI_LENGTH = 256
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ProofError(Exception):
    """The proof does not pass; ``reason`` says why, ``use_nonce`` when a nonce is what it lacks."""

    def __init__(self, reason: str, *, use_nonce: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.use_nonce = use_nonce


@dataclasses.dataclass(frozen=True)
class CheckedProof:
    """A proof that passed: its key's RFC 7638 thumbprint, its ``jti`` and ``iat``, its claims."""

    jkt: str
    jti: str
    iat: float
    claims: Mapping[str, Any]


def normalized_htu(url: str) -> str:
    """``url`` as ``htu`` values are compared: no query, fragment or userinfo, scheme and host
    lower-cased, the default port dropped, an empty path as ``/`` (RFC 3986 §6.2.3).

    ValueError when the port is not a port.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


def _split(proof: object) -> CompactJWS:
    """The proof's parts, by the strict reader; ProofError if it is malformed."""
    if isinstance(proof, str):
        proof = proof.strip(" \t")
    try:
        return parse_compact(proof, max_length=MAX_PROOF_LENGTH)
    except MalformedJWS as exc:
        raise ProofError(f"the DPoP proof is malformed: {exc.describe('it', 'its')}") from None


def _public_key(jwk: object, alg: str) -> Any:
    """The joserfc key for the header's ``jwk``: public, of the type ``alg`` needs."""
    from .._jose.keys import UnusableKey, import_public_jwk

    if not isinstance(jwk, dict):
        raise ProofError("the DPoP proof has no jwk header")
    if PRIVATE_MEMBERS.intersection(jwk):
        raise ProofError("the DPoP proof's jwk is not a public key")
    if not fits(alg, jwk.get("kty"), jwk.get("crv")):
        raise ProofError(f"the DPoP proof's jwk is not a key for {alg}")
    if not fits(alg, jwk.get("kty"), jwk.get("crv"), jwk.get("alg")):
        raise ProofError("the DPoP proof's jwk is for another algorithm")
    try:
        return import_public_jwk(jwk)
    except UnusableKey as exc:
        raise ProofError(f"the DPoP proof's jwk is not a valid key ({exc})") from None


def _verify(alg: str, jws: CompactJWS, key: Any) -> None:
    from .._jose.signing import verify_signature

    if not verify_signature(alg, jws.signing_input, jws.signature, key):
        raise ProofError("the DPoP proof's signature is not valid")


def _jti(claims: Mapping[str, Any]) -> str:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise ProofError("the DPoP proof's jti is missing or malformed")
    return jti  # encodable: the reader refused lone surrogates


def _iat(claims: Mapping[str, Any], now: float, rules: TimeRules) -> float:
    try:
        _exp, iat = rules.check(claims, now)
    except ClaimError as exc:
        if exc.problem == "in the future":
            raise ProofError("the DPoP proof was made in the future (iat)") from None
        if exc.problem == "too old":
            raise ProofError("the DPoP proof is too old (iat)") from None
        raise ProofError("the DPoP proof's iat is missing or not a number") from None
    assert iat is not None
    return float(iat)


def _same(given: object, expected: str) -> bool:
    """Constant-time comparison of a claimed string with the expected one."""
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def _ath(access_token: str) -> str:
    try:
        return access_token_hash(access_token)
    except UnicodeEncodeError:  # not a token anyone issued: no proof can be for it
        return ""


def _htu_matches(claimed: object, url: str) -> bool:
    if not isinstance(claimed, str):
        return False
    try:
        return normalized_htu(claimed) == normalized_htu(url)
    except ValueError:
        return False


def read_proof(
    proof: object,
    *,
    method: str,
    url: str,
    now: float,
    max_age: float,
    max_future: float,
    algorithms: Iterable[str] = DPOP_PROOF_ALGS,
    access_token: str | None = None,
    jkt: str | None = None,
    nonce_is_valid: Callable[[str], bool] | None = None,
) -> CheckedProof:
    """Check one ``DPoP`` header value for a request; ProofError, and nothing else, if it fails.

    ``iat`` must lie in ``[now - max_age, now + max_future]``. ``algorithms``
    narrows :data:`DPOP_PROOF_ALGS`. With ``access_token``, ``ath`` must be its
    hash; with ``jkt``, the key must have that thumbprint; with
    ``nonce_is_valid``, the ``nonce`` claim must pass it (else the error has
    ``use_nonce``; checked last, so a proof wrong in any other way says so).
    """
    jws = _split(proof)
    header, claims = jws.header, jws.claims
    typ = header.get("typ")
    # Media type names are case-insensitive (RFC 7515 §4.1.9).
    if not isinstance(typ, str) or typ.lower() != "dpop+jwt":
        raise ProofError("the DPoP proof's typ is not dpop+jwt")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS or alg not in set(algorithms):
        raise ProofError("the DPoP proof's algorithm is not accepted")
    key = _public_key(header.get("jwk"), alg)
    _verify(alg, jws, key)
    thumbprint = str(key.thumbprint())
    # Before the claims: a proof by any other key says nothing more to this token's holder.
    if jkt is not None and not _same(jkt, thumbprint):
        raise ProofError("the DPoP proof's key is not the one the token is bound to")

    jti = _jti(claims)
    if claims.get("htm") != method.upper():
        raise ProofError("the DPoP proof is for another HTTP method (htm)")
    if not _htu_matches(claims.get("htu"), url):
        raise ProofError("the DPoP proof is for another URL (htu)")
    rules = TimeRules(leeway=max_future, require=("iat",), names=("iat",), max_age=max_age)
    iat = _iat(claims, now, rules)
    if access_token is not None and not _same(claims.get("ath"), _ath(access_token)):
        raise ProofError("the DPoP proof is for another access token (ath)")
    if nonce_is_valid is not None:
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not nonce_is_valid(nonce):
            reason = "the DPoP proof must carry the nonce of the DPoP-Nonce header"
            raise ProofError(reason, use_nonce=True)
    return CheckedProof(thumbprint, jti, iat, claims)
