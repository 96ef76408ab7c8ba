"""Keys in and out of joserfc, with one policy: EC, OKP or RSA, and RSA of 2048 bits or more.

Parsing a key costs from microseconds (EC public) to tens of milliseconds
(an RSA private key): callers parse once and keep the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from joserfc.jwk import ECKey, JWKRegistry, OctKey, OKPKey, RSAKey

from . import base64url
from .algorithms import ALGORITHMS, MIN_RSA_BITS, PRIVATE_MEMBERS

__all__ = [
    "Key",
    "UnusableKey",
    "generate_key",
    "hmac_key",
    "import_jwk",
    "import_key_object",
    "import_pem",
    "import_public_jwk",
    "rsa_modulus_bits",
]

Key = ECKey | OKPKey | RSAKey
_IMPORTERS: dict[str, Any] = {"EC": ECKey, "OKP": OKPKey, "RSA": RSAKey}


class UnusableKey(ValueError):
    """A key that cannot be used here, and why. The reason never quotes key material."""


def rsa_modulus_bits(modulus: object) -> int:
    """The size of a JWK's base64url modulus ``n``, in bits (0 when it is not one)."""
    if not isinstance(modulus, str):
        return 0
    try:
        return int.from_bytes(base64url.decode(modulus), "big").bit_length()
    except ValueError:
        return 0


def import_jwk(data: Mapping[str, Any]) -> Key:
    """A key from a JWK (public or private) of kty EC, OKP or RSA; RSA of 2048 bits or more."""
    kty = data.get("kty")
    importer = _IMPORTERS.get(kty) if isinstance(kty, str) else None
    if importer is None:
        raise UnusableKey(f"a key of kty {kty!r}: use EC, OKP or RSA")
    if kty == "RSA":
        # Before joserfc, which would warn about a small key on every import.
        bits = rsa_modulus_bits(data.get("n"))
        if bits < MIN_RSA_BITS:
            raise UnusableKey(f"an RSA key of {bits} bits: at least {MIN_RSA_BITS} are needed")
    try:
        key: Key = importer.import_key(dict(data))
    except Exception as exc:  # joserfc and cryptography refuse bad members in many ways
        raise UnusableKey(f"a {kty} key could not be read ({type(exc).__name__})") from None
    return key


def import_public_jwk(data: object) -> Key:
    """A public key from a JWK; UnusableKey for a private or symmetric one, or a bad one."""
    if not isinstance(data, Mapping):
        raise UnusableKey("a key is not a JSON object")
    if PRIVATE_MEMBERS.intersection(data):
        raise UnusableKey("a key holds private or symmetric key material: give public keys only")
    key = import_jwk(data)
    if key.is_private:
        raise UnusableKey("a key is private: give public keys only")
    return key


def import_pem(pem: bytes) -> Key:
    """A key (public or private, unencrypted) from PEM text: EC, Ed25519/Ed448 or RSA."""
    from cryptography.hazmat.primitives import serialization

    loaded: Any
    try:
        loaded = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        try:
            loaded = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):  # not PEM, not a key, or encrypted
            raise UnusableKey("not a PEM EC, Ed25519 or RSA key") from None
    return import_key_object(loaded)


def import_key_object(key_object: Any) -> Key:
    """A joserfc key for a ``cryptography`` key (public or private); UnusableKey otherwise."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(key_object, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        key_type = "EC"
    elif isinstance(key_object, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        if key_object.key_size < MIN_RSA_BITS:
            bits = key_object.key_size
            raise UnusableKey(f"an RSA key of {bits} bits: at least {MIN_RSA_BITS} are needed")
        key_type = "RSA"
    elif isinstance(
        key_object,
        (
            ed25519.Ed25519PublicKey,
            ed25519.Ed25519PrivateKey,
            ed448.Ed448PublicKey,
            ed448.Ed448PrivateKey,
        ),
    ):
        key_type = "OKP"
    else:
        raise UnusableKey("not an EC, Ed25519 or RSA key")
    key: Key = JWKRegistry.import_key(key_object, key_type)  # type: ignore[assignment]
    return key


def generate_key(alg: str, parameters: Mapping[str, Any] | None = None) -> Key:
    """A new private key for ``alg`` (RSA: 2048 bits; EdDSA: Ed25519)."""
    spec = ALGORITHMS.get(alg)
    params: Any = dict(parameters or {})
    if spec is None or spec.kty == "oct":
        raise UnusableKey(f"no key can be made for the algorithm {alg!r}")
    generated: Any
    if spec.kty == "RSA":
        generated = RSAKey.generate_key(MIN_RSA_BITS, params, private=True)
    else:
        assert spec.curves is not None
        importer: Any = ECKey if spec.kty == "EC" else OKPKey
        generated = importer.generate_key(spec.curves[0], params, private=True)
    key: Key = generated
    return key


def hmac_key(secret: str) -> OctKey:
    """The key an HMAC algorithm signs with: the secret's UTF-8 bytes (``client_secret_jwt``)."""
    key: OctKey = OctKey.import_key(secret.encode("utf-8"))
    return key
