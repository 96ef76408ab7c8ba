"""The public keys a ``private_key_jwt`` client signs its assertions with: read, checked, kept.

A key decides which algorithms it verifies: an EC P-256 key ES256 only, an
Ed25519 key EdDSA (or Ed25519), an RSA key (2048 bits or more) RS256..PS512,
narrowed to its JWK ``alg`` when it names one. The ``alg`` of an assertion's
header only picks among those; it never makes a key verify something else.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from collections.abc import Sequence
from typing import Any

from cryptography import x509

from .._jose.algorithms import algorithms_for_key
from .._jose.keys import UnusableKey, import_pem, import_public_jwk
from .mtls import public_jwk

__all__ = [
    "ClientKey",
    "InvalidJwks",
    "ParsedKeySets",
    "jwks_kids",
    "matching_keys",
    "normalize_jwks",
    "parse_jwks",
]

MAX_KEYS = 20


class InvalidJwks(ValueError):
    """A key set (or one of its keys) that cannot serve to verify client assertions."""


@dataclasses.dataclass(frozen=True)
class ClientKey:
    """One parsed public key, its ``kid`` and the algorithms it verifies."""

    kid: str | None
    key: Any
    algorithms: frozenset[str]


def _algorithms(data: dict[str, Any]) -> frozenset[str]:
    """What the key verifies: all its type and curve allow, narrowed to its JWK ``alg``."""
    kty, curve = data["kty"], data.get("crv")
    allowed = algorithms_for_key(kty, curve)
    if not allowed:
        raise InvalidJwks(f"a {kty} key on curve {curve!r}: not a signing key this server uses")
    alg = data.get("alg")
    if alg is None:
        return frozenset(allowed)
    narrowed = algorithms_for_key(kty, curve, alg)
    if not narrowed:
        raise InvalidJwks(f"a key whose alg {alg!r} does not fit a {kty} {curve or ''} key")
    return frozenset(narrowed)


def _parse_key(data: Any, *, check_x5c: bool = False) -> tuple[ClientKey, dict[str, Any]]:
    """A public signing key from a JWK dict: (parsed, its public JWK).

    ``check_x5c`` (registration): an ``x5c`` must hold this key's certificate. When
    keys are only used to verify assertions, ``x5c`` plays no part and is not read.
    """
    if not isinstance(data, dict):
        raise InvalidJwks("a key is not a JSON object")
    if data.get("use", "sig") != "sig":
        raise InvalidJwks(f"a key with use {data.get('use')!r}: signing keys have use 'sig'")
    ops = data.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise InvalidJwks("a key whose key_ops do not include 'verify'")
    kid = data.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 256):
        raise InvalidJwks("a key's kid must be a non-empty string")
    try:
        key = import_public_jwk(data)
    except UnusableKey as exc:
        raise InvalidJwks(str(exc)) from None
    algorithms = _algorithms(data)
    if check_x5c and "x5c" in data:
        _check_x5c(data["x5c"], key.thumbprint())
    public = {
        name: value
        for name, value in data.items()
        if name in ("kty", "crv", "x", "y", "n", "e", "kid", "alg", "use", "key_ops", "x5c")
    }
    return ClientKey(kid, key, algorithms), public


def _check_x5c(chain: Any, thumbprint: str) -> None:
    """An ``x5c`` (RFC 7517 §4.7): base64 DER certificates, the first one for this very key."""
    if not isinstance(chain, list) or not chain or len(chain) > 10:
        raise InvalidJwks("x5c must be a list of 1 to 10 certificates")
    try:
        if not all(isinstance(c, str) for c in chain):
            raise ValueError("not a string")
        first = x509.load_der_x509_certificate(base64.b64decode(chain[0], validate=True))
        same = public_jwk(first).thumbprint() == thumbprint
    except Exception:  # bad base64, bad DER, a key type joserfc does not know
        raise InvalidJwks("x5c holds something that is not a base64 DER certificate") from None
    if not same:
        raise InvalidJwks("the x5c certificate is not for the key it comes with")


def parse_jwks(document: Any, *, strict: bool = True) -> list[ClientKey]:
    """The usable keys of a JWK Set.

    ``strict`` (registration) refuses the whole set for any key it cannot use;
    otherwise (a set fetched from a client's ``jwks_uri``, which may also hold
    encryption keys) such keys are skipped, and only a set with none left is refused.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise InvalidJwks('a JWK Set is a JSON object with a "keys" array')
    entries = document["keys"]
    if strict and not 1 <= len(entries) <= MAX_KEYS:
        raise InvalidJwks(f"a JWK Set of 1 to {MAX_KEYS} keys is needed")
    keys: list[ClientKey] = []
    for entry in entries[: MAX_KEYS * 5]:
        try:
            keys.append(_parse_key(entry)[0])
        except InvalidJwks:
            if strict:
                raise
    if not keys:
        raise InvalidJwks("the JWK Set holds no public signing key this server can use")
    return keys[:MAX_KEYS] if not strict else keys


def _load_text(text: str) -> Any:
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        if "PRIVATE KEY" in stripped:
            raise InvalidJwks("that is a private key: register the public key only")
        try:
            key = import_pem(stripped.encode())
        except UnusableKey:
            raise InvalidJwks("the PEM text is not an EC, Ed25519 or RSA public key") from None
        return {"keys": [key.as_dict(private=False)]}
    try:
        document = json.loads(stripped)
    except (ValueError, RecursionError):
        raise InvalidJwks("not JSON (a JWK Set or a JWK) nor a PEM public key") from None
    if isinstance(document, dict) and "kty" in document and "keys" not in document:
        document = {"keys": [document]}  # a single JWK
    return document


def normalize_jwks(text: str) -> tuple[str, list[str]]:
    """Registration: a JWK Set, one JWK or a PEM public key -> (JWK Set JSON to store, kids).

    Every key is checked (public, a signing key, a usable algorithm); a key
    without ``kid`` gets its RFC 7638 thumbprint; kids must be unique.
    """
    document = _load_text(text)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise InvalidJwks('a JWK Set is a JSON object with a "keys" array')
    if not 1 <= len(document["keys"]) <= MAX_KEYS:
        raise InvalidJwks(f"a JWK Set of 1 to {MAX_KEYS} keys is needed")
    public_keys = []
    for entry in document["keys"]:
        parsed, public = _parse_key(entry, check_x5c=True)
        if parsed.kid is None:
            public["kid"] = parsed.key.thumbprint()
        public_keys.append(public)
    kids = [str(k["kid"]) for k in public_keys]
    if len(set(kids)) != len(kids):
        raise InvalidJwks("two keys share a kid")
    return json.dumps({"keys": public_keys}, separators=(",", ":")), kids


def jwks_kids(text: str | None) -> list[str]:
    """The kids of a stored JWK Set (for display), [] if none or unreadable."""
    if not text:
        return []
    try:
        document = json.loads(text)
        return [str(k.get("kid")) for k in document["keys"] if isinstance(k, dict)]
    except (ValueError, KeyError, TypeError):
        return []


def matching_keys(keys: Sequence[ClientKey], kid: str | None, alg: str) -> list[ClientKey]:
    """The keys that may verify an assertion with this header ``kid`` and ``alg``."""
    pool = [k for k in keys if k.kid == kid] if kid is not None else list(keys)
    return [k for k in pool if alg in k.algorithms]


class ParsedKeySets:
    """Parsed stored JWK Sets, by their text: parsing a key costs more than a look-up."""

    def __init__(self, max_entries: int = 1000) -> None:
        self.max_entries = max_entries
        self._parsed: dict[str, list[ClientKey]] = {}
        self._lock = threading.Lock()

    def keys(self, text: str) -> list[ClientKey]:
        found = self._parsed.get(text)
        if found is None:
            try:
                found = parse_jwks(json.loads(text), strict=False)
            except (ValueError, RecursionError):  # InvalidJwks is a ValueError
                found = []
            with self._lock:
                if len(self._parsed) >= self.max_entries:
                    self._parsed.clear()
                self._parsed[text] = found
        return found
