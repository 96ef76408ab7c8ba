"""Loading the private key a client signs its assertions with (``private_key_jwt``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._protocol.client_assertion import AssertionKey
from ..errors import ConfigError

__all__ = ["PrivateKeyLike", "load_private_key"]

PrivateKeyLike = str | bytes | os.PathLike[str] | dict[str, Any] | Any

#: Which algorithm each kind of key signs with, unless told otherwise.
_DEFAULT_ALG = {
    "P-256": "ES256",
    "P-384": "ES384",
    "P-521": "ES512",
    "Ed25519": "EdDSA",
    "RSA": "RS256",
}
_ALLOWED = {
    "EC": {"ES256", "ES384", "ES512"},
    "OKP": {"EdDSA", "Ed25519"},
    "RSA": {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
}


def _read(value: PrivateKeyLike) -> Any:
    """Key material from a path, PEM or JWK text, a JWK dict, or a key object."""
    if isinstance(value, os.PathLike) or (
        isinstance(value, str)
        and "\n" not in value
        and not value.lstrip().startswith(("{", "-----"))
    ):
        path = Path(value)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the private key file {str(path)!r}: {exc.strerror}"
            ) from None
    return value


def load_private_key(
    value: PrivateKeyLike, *, key_id: str | None = None, alg: str | None = None
) -> AssertionKey:
    """Parse a private key once (parsing costs milliseconds) and settle its algorithm.

    ES256/ES384/ES512, EdDSA, RS256 by default for RSA (PS256 and others with
    ``alg``). The key id comes from ``key_id``, else from a JWK's ``kid``.
    """
    from joserfc.jwk import ECKey, OKPKey, RSAKey

    material = _read(value)
    key: Any
    try:
        if isinstance(material, (ECKey, OKPKey, RSAKey)):
            key = material
        elif isinstance(material, dict) or (
            isinstance(material, (str, bytes)) and material.lstrip()[:1] in ("{", b"{")
        ):
            data = material if isinstance(material, dict) else json.loads(material)
            importers: dict[str, Any] = {"EC": ECKey, "OKP": OKPKey, "RSA": RSAKey}
            importer = importers.get(str(data.get("kty")))
            if importer is None:
                raise ConfigError("the private key JWK must be of kty EC, OKP or RSA")
            key = importer.import_key(data)
            key_id = key_id or data.get("kid")
            alg = alg or data.get("alg")
        else:
            pem = material if isinstance(material, bytes) else str(material).encode()
            key = _import_pem(pem, (ECKey, OKPKey, RSAKey))
    except ConfigError:
        raise
    except Exception as exc:
        # The message could quote key material: name the type only.
        raise ConfigError(f"the private key could not be read ({type(exc).__name__})") from None
    if not key.is_private:
        raise ConfigError("private_key is a public key: give the client's private key")
    kty = key.key_type
    curve = key.as_dict(private=False).get("crv") if kty != "RSA" else "RSA"
    chosen = alg or _DEFAULT_ALG.get(curve or "")
    if chosen is None or chosen not in _ALLOWED.get(kty, set()):
        raise ConfigError(f"signing algorithm {chosen!r} does not fit a {kty} {curve} key")
    return AssertionKey(key, chosen, key_id)


def _import_pem(pem: bytes, importers: tuple[Any, ...]) -> Any:
    for importer in importers:
        try:
            return importer.import_key(pem)
        except Exception:  # noqa: S112 - try the next key type
            continue
    raise ConfigError("private_key is not a PEM or JWK private key (EC, Ed25519 or RSA)")
