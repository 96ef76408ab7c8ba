"""Reading a DPoP proof (RFC 9449 §4.2, §4.3): one strict check for token endpoint and APIs.

Sans-I/O: the caller hands in the ``DPoP`` header value, the request it came
with (method and URL), the time, and whatever else it requires: the access
token (then ``ath`` must match), the thumbprint the token is bound to, a nonce
check. The answer is the :class:`CheckedProof`, or :class:`ProofError` whose
reason fits an ``error_description``. Replay sets and nonce issuance stay
with the callers: they are state, kept differently on each side.

Checked: one compact JWS, strictly encoded (base64url without padding, JSON
objects without duplicate members, no ``crit``); ``typ`` is ``dpop+jwt``;
``alg`` is an asymmetric algorithm from the allow-list, never ``none`` or
HMAC; ``jwk`` is a public key of the type and curve ``alg`` needs (RSA of
2048 bits or more); the signature verifies with it (joserfc's algorithms);
``jti`` is present; ``htm`` is the request's method and ``htu`` its URL, both
sides put through :func:`normalized_htu`; ``iat`` is within the window; then
``ath``, the key's thumbprint and the nonce when the caller asks for them.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .dpop import access_token_hash
from .responses import parse_json_object

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
#: The key type and curves each algorithm needs (None: any size checked separately).
_KEY_TYPES: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "ES256": ("EC", ("P-256",)),
    "EdDSA": ("OKP", ("Ed25519", "Ed448")),
    "Ed25519": ("OKP", ("Ed25519",)),
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
}
#: JWK members only a private (or symmetric) key has.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: A proof longer than this is refused before anything is decoded.
MAX_PROOF_LENGTH = 8192
MAX_JTI_LENGTH = 256
_MIN_RSA_BITS = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


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


def _decode(segment: str, what: str) -> bytes:
    # Strict base64url: the alphabet only, no padding, no impossible length.
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise ProofError(f"the DPoP proof is malformed: its {what} is not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json(segment: str, what: str) -> dict[str, Any]:
    if not segment:
        raise ProofError(f"the DPoP proof is malformed: its {what} is empty")
    try:
        return parse_json_object(_decode(segment, what))
    except ValueError:
        raise ProofError(f"the DPoP proof is malformed: its {what} is not a JSON object") from None


def _split(proof: object) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, claims, signing input and signature of a compact JWS; ProofError if malformed."""
    if not isinstance(proof, str):
        raise ProofError("the DPoP proof is malformed: it is not text")
    proof = proof.strip(" \t")
    if not proof:
        raise ProofError("the DPoP proof is malformed: it is empty")
    if len(proof) > MAX_PROOF_LENGTH:
        raise ProofError(f"the DPoP proof is malformed: it is over {MAX_PROOF_LENGTH} characters")
    parts = proof.split(".")
    if len(parts) != 3:
        raise ProofError("the DPoP proof is malformed: it is not a compact JWS (three parts)")
    header = _json(parts[0], "header")
    claims = _json(parts[1], "payload")
    # An empty signature is read here and refused below: "none" is not an accepted alg.
    signature = _decode(parts[2], "signature")
    if "crit" in header or header.get("b64") is False:
        # RFC 7515 §4.1.11: extensions not implemented here make the proof invalid.
        raise ProofError("the DPoP proof is malformed: it uses critical header extensions")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def _public_key(jwk: object, alg: str) -> Any:
    """The joserfc key for the header's ``jwk``: public, of the type ``alg`` needs."""
    from joserfc.jwk import ECKey, OKPKey, RSAKey

    if not isinstance(jwk, dict):
        raise ProofError("the DPoP proof has no jwk header")
    if _PRIVATE_MEMBERS.intersection(jwk):
        raise ProofError("the DPoP proof's jwk is not a public key")
    kty, curves = _KEY_TYPES[alg]
    if jwk.get("kty") != kty or (curves is not None and jwk.get("crv") not in curves):
        raise ProofError(f"the DPoP proof's jwk is not a key for {alg}")
    if "alg" in jwk and jwk["alg"] != alg:
        raise ProofError("the DPoP proof's jwk is for another algorithm")
    if kty == "RSA" and _modulus_bits(jwk.get("n")) < _MIN_RSA_BITS:
        # Before the import, which would warn about a small key on every such proof.
        raise ProofError(
            f"the DPoP proof's RSA key needs a modulus of {_MIN_RSA_BITS} bits or more"
        )
    importers: dict[str, Any] = {"EC": ECKey, "OKP": OKPKey, "RSA": RSAKey}
    try:
        key = importers[kty].import_key(jwk)
        private = bool(key.is_private)
    except Exception:  # joserfc and cryptography refuse bad members in many ways
        raise ProofError("the DPoP proof's jwk is not a valid key") from None
    if private:
        raise ProofError("the DPoP proof's jwk is not a public key")
    return key


def _modulus_bits(n: object) -> int:
    """The size of an RSA modulus given as base64url, 0 when it is not one."""
    if not isinstance(n, str) or not _SEGMENT.fullmatch(n) or len(n) % 4 == 1:
        return 0
    return int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big").bit_length()


def _verify(alg: str, signing_input: bytes, signature: bytes, key: Any) -> None:
    from .._jose import jws_registry

    try:
        valid = jws_registry(alg).algorithms[alg].verify(signing_input, signature, key)
    except Exception:  # a signature of the wrong length or shape is simply not valid
        valid = False
    if valid is not True:
        raise ProofError("the DPoP proof's signature is not valid")


def _jti(claims: Mapping[str, Any]) -> str:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise ProofError("the DPoP proof's jti is missing or malformed")
    try:
        jti.encode("utf-8")  # a lone surrogate from a JSON escape could not be stored
    except UnicodeEncodeError:
        raise ProofError("the DPoP proof's jti is missing or malformed") from None
    return jti


def _iat(claims: Mapping[str, Any], now: float, max_age: float, max_future: float) -> float:
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, (int, float)):
        raise ProofError("the DPoP proof's iat is missing or not a number")
    try:
        iat = float(iat)  # an integer of 400 digits does not fit: OverflowError
    except OverflowError:
        raise ProofError("the DPoP proof's iat is missing or not a number") from None
    if not math.isfinite(iat):
        raise ProofError("the DPoP proof's iat is missing or not a number")
    if iat > now + max_future:
        raise ProofError("the DPoP proof was made in the future (iat)")
    if iat < now - max_age:
        raise ProofError("the DPoP proof is too old (iat)")
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
    header, claims, signing_input, signature = _split(proof)
    typ = header.get("typ")
    # Media type names are case-insensitive (RFC 7515 §4.1.9).
    if not isinstance(typ, str) or typ.lower() != "dpop+jwt":
        raise ProofError("the DPoP proof's typ is not dpop+jwt")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in _KEY_TYPES or alg not in set(algorithms):
        raise ProofError("the DPoP proof's algorithm is not accepted")
    key = _public_key(header.get("jwk"), alg)
    _verify(alg, signing_input, signature, key)
    thumbprint = str(key.thumbprint())
    # Before the claims: a proof by any other key says nothing more to this token's holder.
    if jkt is not None and not _same(jkt, thumbprint):
        raise ProofError("the DPoP proof's key is not the one the token is bound to")

    jti = _jti(claims)
    if claims.get("htm") != method.upper():
        raise ProofError("the DPoP proof is for another HTTP method (htm)")
    if not _htu_matches(claims.get("htu"), url):
        raise ProofError("the DPoP proof is for another URL (htu)")
    iat = _iat(claims, now, max_age, max_future)
    if access_token is not None and not _same(claims.get("ath"), _ath(access_token)):
        raise ProofError("the DPoP proof is for another access token (ath)")
    if nonce_is_valid is not None:
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not nonce_is_valid(nonce):
            reason = "the DPoP proof must carry the nonce of the DPoP-Nonce header"
            raise ProofError(reason, use_nonce=True)
    return CheckedProof(thumbprint, jti, iat, claims)
