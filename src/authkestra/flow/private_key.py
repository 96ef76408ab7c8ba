"""Loading the private key a client signs its assertions (or DPoP proofs) with."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._protocol.client_assertion import AssertionKey
from ..errors import ConfigError

__all__ = ["PrivateKeyLike", "load_private_key"]

PrivateKeyLike = str | bytes | os.PathLike[str] | dict[str, Any] | Any


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

    ES256/ES384/ES512 by curve, EdDSA, RS256 by default for RSA (PS256 and others
    with ``alg``). The key id comes from ``key_id``, else from a JWK's ``kid``.
    """
    try:
        from joserfc.jwk import ECKey, OKPKey, RSAKey

        from .._jose.algorithms import default_algorithm, fits
        from .._jose.keys import UnusableKey, import_jwk, import_pem
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("private keys need joserfc: pip install 'authkestra[keys]'") from None

    material = _read(value)
    key: Any
    try:
        if isinstance(material, (ECKey, OKPKey, RSAKey)):
            key = material
        else:
            jwk = _jwk(material)
            key = import_jwk(jwk) if jwk is not None else import_pem(_bytes(material))
            if jwk is not None:
                key_id = key_id or jwk.get("kid")
                alg = alg or jwk.get("alg")
    except UnusableKey as exc:
        # Never the key's text: the reason names the kind of problem only.
        raise ConfigError(f"the private key could not be read: {exc}") from None
    if not key.is_private:
        raise ConfigError("private_key is a public key: give the client's private key")
    kty = key.key_type
    curve = key.as_dict(private=False).get("crv")
    chosen = alg or default_algorithm(kty, curve)
    if chosen is None or not fits(chosen, kty, curve):
        raise ConfigError(f"signing algorithm {chosen!r} does not fit a {kty} {curve or ''} key")
    return AssertionKey(key, chosen, key_id)


def _jwk(material: Any) -> dict[str, Any] | None:
    """The JWK ``material`` is (a dict, or JSON text of one), or None when it is not JSON."""
    if isinstance(material, dict):
        return material
    if isinstance(material, (str, bytes)) and material.lstrip()[:1] in ("{", b"{"):
        try:
            data = json.loads(material)
        except (ValueError, RecursionError):
            raise ConfigError("the private key JWK is not valid JSON") from None
        if isinstance(data, dict):
            return data
    if isinstance(material, (str, bytes)):
        return None
    raise ConfigError(
        f"private_key must be a path, PEM or JWK text, a JWK dict or a joserfc key,"
        f" not {type(material).__name__}"
    )


def _bytes(material: str | bytes) -> bytes:
    return material if isinstance(material, bytes) else material.encode("utf-8")
