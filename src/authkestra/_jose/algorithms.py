"""The algorithm table: which key each JWS algorithm needs, and the policy around it.

One table for every side: the API's verifier, the server checking client
assertions and DPoP proofs, the client choosing how to sign. An algorithm
names a key type (``kty``) and, for EC and OKP keys, the curves it works on;
RSA keys are any size from :data:`MIN_RSA_BITS` up. HMAC algorithms are in
the table (``client_secret_jwt``) but never in :data:`ASYMMETRIC`: a public
key must never be usable as an HMAC secret.
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "ALGORITHMS",
    "ASYMMETRIC",
    "HMAC",
    "MIN_RSA_BITS",
    "PRIVATE_MEMBERS",
    "Algorithm",
    "algorithms_for_key",
    "default_algorithm",
    "fits",
]

#: The smallest RSA modulus trusted to sign anything (NIST SP 800-131A).
MIN_RSA_BITS = 2048
#: JWK members that only a private (or symmetric) key has.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A JWS algorithm: the key type it needs, and the curves (None: any, or not a curve key)."""

    name: str
    kty: str
    curves: tuple[str, ...] | None = None


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("ES256", "EC", ("P-256",)),
        Algorithm("ES384", "EC", ("P-384",)),
        Algorithm("ES512", "EC", ("P-521",)),
        Algorithm("EdDSA", "OKP", ("Ed25519", "Ed448")),
        Algorithm("Ed25519", "OKP", ("Ed25519",)),  # RFC 9864: EdDSA on Ed25519, by name
        Algorithm("RS256", "RSA"),
        Algorithm("RS384", "RSA"),
        Algorithm("RS512", "RSA"),
        Algorithm("PS256", "RSA"),
        Algorithm("PS384", "RSA"),
        Algorithm("PS512", "RSA"),
        Algorithm("HS256", "oct"),
        Algorithm("HS384", "oct"),
        Algorithm("HS512", "oct"),
    )
}
#: The signature algorithms of public keys, in the order they are listed to people.
ASYMMETRIC = tuple(name for name, a in ALGORITHMS.items() if a.kty != "oct")
#: The HMAC algorithms (a shared secret, ``client_secret_jwt``).
HMAC = tuple(name for name, a in ALGORITHMS.items() if a.kty == "oct")

#: Two names of one algorithm: RFC 9864's Ed25519 is EdDSA on the Ed25519 curve, so an
#: Ed25519-curve key published for one verifies the other.
_SAME_ALGORITHM = {"EdDSA": "Ed25519", "Ed25519": "EdDSA"}
#: What each kind of key signs with when nothing says otherwise.
_DEFAULT = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "Ed25519": "EdDSA"}


def fits(alg: str, kty: object, crv: object = None, key_alg: object = None) -> bool:
    """True when a key of type ``kty`` on curve ``crv`` may verify (or sign) ``alg``.

    ``key_alg`` is the key's own JWK ``alg``, when it names one: the key is then for
    that algorithm only (or its other name, on the Ed25519 curve).
    """
    spec = ALGORITHMS.get(alg)
    if spec is None or spec.kty != kty or (spec.curves is not None and crv not in spec.curves):
        return False
    return (
        key_alg is None
        or key_alg == alg
        or (crv == "Ed25519" and isinstance(key_alg, str) and _SAME_ALGORITHM.get(key_alg) == alg)
    )


def algorithms_for_key(
    kty: object, crv: object = None, key_alg: object = None, *, among: tuple[str, ...] = ASYMMETRIC
) -> tuple[str, ...]:
    """The algorithms of ``among`` a key of this type, curve and JWK ``alg`` may verify."""
    return tuple(alg for alg in among if fits(alg, kty, crv, key_alg))


def default_algorithm(kty: str, crv: str | None) -> str | None:
    """What a private key of this type and curve signs with unless told otherwise."""
    return "RS256" if kty == "RSA" else _DEFAULT.get(crv or "")
