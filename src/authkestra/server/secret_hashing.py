"""Client secrets are stored only as HMAC-SHA256 under a server key; compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

__all__ = ["SecretHasher"]


class SecretHasher:
    """Hashes and checks client secrets.

    A keyed hash (not a slow password hash) is right here: the secrets are 256
    random bits, so there is nothing to brute-force, and the token endpoint must
    stay fast. The key keeps a stolen database from being checked offline.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the secret hashing key must be at least 16 bytes")
        self._key = key
        # Compared against when the client is unknown, so that costs what a known one costs.
        self._decoy = self.hash(secrets.token_urlsafe(32))

    def hash(self, secret: str) -> str:
        return hmac.new(self._key, secret.encode("utf-8"), hashlib.sha256).hexdigest()

    def matches(self, secret: str, hashes: Iterable[str]) -> bool:
        """True if ``secret`` matches one of ``hashes``; every hash is compared, always."""
        candidate = self.hash(secret)
        found = False
        compared = 0
        for stored in hashes:
            found |= hmac.compare_digest(candidate, stored)
            compared += 1
        if compared == 0:
            hmac.compare_digest(candidate, self._decoy)
        return found

    def __repr__(self) -> str:
        return "SecretHasher(<key>)"
